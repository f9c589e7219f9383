// conv2d and conv2d_transpose on cpu (oneDNN for float32 and bfloat16, float16 through
// float32, float64 direct loops) against the float64 references of conv_ref.h: every problem
// of the table in every dtype with integer fills (exact), random fills, non-contiguous
// inputs, NaN and Inf, Keras' "same" padding and Conv2DTranspose output sizes, gradients
// (exact against the references, and float64 gradient checks), batch 0, and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "conv_ref.h"
#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/conv.h"
#include "kiln/kernels/conv_impl.h"
#include "matmul_ref.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;
using test::ConvSpec;
using test::kCpu;
using test::Layout;

constexpr test::Tolerance kExact{0, 0};

Tensor integers(const Shape& shape, DType dt, std::uint64_t seed, Layout layout = Layout::contiguous) {
  return test::make_input(test::small_integers(shape.numel(), seed), shape, dt, kCpu, layout);
}

Tensor randoms(const Shape& shape, std::uint64_t seed, DType dt = float64) {
  return test::make_input(test::uniform_values(shape.numel(), -1, 1, seed), shape, dt, kCpu, Layout::contiguous);
}

// conv2d of integer inputs for `s` in `dt`, output poisoned, checked exactly.
void expect_exact_forward(const ConvSpec& s, DType dt, std::uint64_t seed) {
  SCOPED_TRACE(std::string(s.name) + " " + std::string(name(dt)));
  const test::RefGeometry g = test::resolve(s);
  const Tensor x = integers(s.x_shape(), dt, seed), w = integers(s.w_shape(), dt, seed + 1);
  const Tensor b = s.bias ? integers({s.c_out}, dt, seed + 2) : Tensor();
  test::poison_next_allocation(static_cast<std::size_t>(g.y_shape().numel()) * itemsize(dt), kCpu);
  const Tensor y = conv2d(x, w, b, s.options());
  ASSERT_EQ(y.shape(), g.y_shape());
  EXPECT_EQ(y.dtype(), dt);
  EXPECT_TRUE(test::all_close(
      y, test::reference_conv2d(g, test::host_values(x), test::host_values(w), test::values_or_empty(b)), kExact));
}

TEST(ConvCpu, ForwardIsExactForEveryProblemAndDtype) {
  std::uint64_t seed = 1;
  for (const ConvSpec& s : test::kConvSpecs) {
    for (DType dt : test::kFloatDTypes) expect_exact_forward(s, dt, seed += 3);
  }
}

// Gradients of x, w and bias through kiln::backward for an integer upstream gradient.
void expect_exact_backward(const ConvSpec& s, DType dt, std::uint64_t seed) {
  SCOPED_TRACE(std::string(s.name) + " " + std::string(name(dt)));
  const test::RefGeometry g = test::resolve(s);
  Tensor x = integers(s.x_shape(), dt, seed), w = integers(s.w_shape(), dt, seed + 1);
  Tensor b = s.bias ? integers({s.c_out}, dt, seed + 2) : Tensor();
  for (Tensor* t : {&x, &w, &b}) {
    if (t->defined()) t->requires_grad_();
  }
  const Tensor dy = integers(g.y_shape(), dt, seed + 3);
  backward(conv2d(x, w, b, s.options()), dy);
  const std::vector<double> xv = test::host_values(x), wv = test::host_values(w), dyv = test::host_values(dy);
  EXPECT_TRUE(test::all_close(x.grad(), test::reference_backward_data(g, dyv, wv), kExact)) << "dx";
  EXPECT_TRUE(test::all_close(w.grad(), test::reference_backward_filter(g, xv, dyv), kExact)) << "dw";
  if (s.bias) {
    EXPECT_TRUE(test::all_close(b.grad(), test::reference_bias_grad(dyv, s.c_out), kExact)) << "db";
  }
}

TEST(ConvCpu, BackwardIsExactForEveryProblemAndDtype) {
  std::uint64_t seed = 100;
  for (const ConvSpec& s : test::kConvSpecs) {
    for (DType dt : test::kFloatDTypes) expect_exact_backward(s, dt, seed += 4);
  }
}

TEST(ConvCpu, BackwardFillsOnlyTheGradientsAsked) {
  const ConvSpec s{.name = "partial", .n = 2, .h = 5, .w = 6, .c_in = 4, .c_out = 6, .k_h = 3, .k_w = 3,
                   .stride_h = 2, .groups = 2, .padding = "same"};
  const test::RefGeometry g = test::resolve(s);
  const Tensor dy = integers(g.y_shape(), float32, 9);
  const std::vector<double> dyv = test::host_values(dy);
  for (int which = 0; which < 3; ++which) {
    Tensor x = integers(s.x_shape(), float32, 1), w = integers(s.w_shape(), float32, 2);
    Tensor b = integers({s.c_out}, float32, 3);
    (which == 0 ? x : which == 1 ? w : b).requires_grad_();
    backward(conv2d(x, w, b, s.options()), dy);
    EXPECT_EQ(x.grad().defined(), which == 0);
    EXPECT_EQ(w.grad().defined(), which == 1);
    EXPECT_EQ(b.grad().defined(), which == 2);
    const std::vector<double> xv = test::host_values(x), wv = test::host_values(w);
    const Tensor& got = which == 0 ? x.grad() : which == 1 ? w.grad() : b.grad();
    const std::vector<double> expected = which == 0   ? test::reference_backward_data(g, dyv, wv)
                                         : which == 1 ? test::reference_backward_filter(g, xv, dyv)
                                                      : test::reference_bias_grad(dyv, s.c_out);
    ASSERT_TRUE(got.defined()) << which;
    EXPECT_TRUE(test::all_close(got, expected, kExact)) << which;
  }
}

TEST(ConvTransposeCpu, BackwardFillsOnlyTheGradientsAsked) {
  const Conv2dTransposeOptions o{.strides = {2, 2}, .padding = "same", .groups = 2};
  auto inputs = [] {
    return std::vector<Tensor>{integers({2, 3, 4, 4}, float32, 1), integers({4, 3, 3, 2}, float32, 2),
                               integers({4}, float32, 3)};
  };
  std::vector<Tensor> all = inputs();
  for (Tensor& t : all) t.requires_grad_();
  const Tensor y = conv2d_transpose(all[0], all[1], all[2], o);
  const Tensor dy = integers(y.shape(), float32, 4);
  backward(y, dy);
  for (int which = 0; which < 3; ++which) {
    std::vector<Tensor> in = inputs();
    in[static_cast<std::size_t>(which)].requires_grad_();
    backward(conv2d_transpose(in[0], in[1], in[2], o), dy);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(in[static_cast<std::size_t>(j)].grad().defined(), j == which);
    EXPECT_TRUE(test::all_close(in[static_cast<std::size_t>(which)].grad(), all[static_cast<std::size_t>(which)].grad(),
                                kExact)) << which;
  }
}

TEST(ConvCpu, RandomFloat32MatchesFloat64) {
  std::uint64_t seed = 500;
  for (const ConvSpec& s : test::kConvSpecs) {
    SCOPED_TRACE(s.name);
    const test::RefGeometry g = test::resolve(s);
    const Tensor x = randoms(s.x_shape(), ++seed, float32), w = randoms(s.w_shape(), ++seed, float32);
    const Tensor b = randoms({s.c_out}, ++seed, float32);
    const std::vector<double> ref =
        test::reference_conv2d(g, test::host_values(x), test::host_values(w), test::host_values(b));
    EXPECT_TRUE(test::all_close(conv2d(x, w, b, s.options()), ref, {1e-5, 1e-5}));
  }
}

TEST(ConvCpu, NonContiguousInputsWeightsAndBias) {
  // x as the NHWC view of NCHW storage, weights as the OHWI view of HWIO storage, and the
  // test helper's layouts (strided, offset, batch-expanded, last two axes swapped).
  const ConvSpec s{.name = "views", .n = 2, .h = 6, .w = 5, .c_in = 3, .c_out = 4, .k_h = 3, .k_w = 2,
                   .stride_h = 2, .groups = 1, .padding = "same"};
  const test::RefGeometry g = test::resolve(s);
  const Tensor x_nchw = integers({2, 3, 6, 5}, float32, 1), w_hwio = integers({3, 2, 3, 4}, float32, 2);
  std::vector<std::pair<Tensor, Tensor>> cases = {{x_nchw.permute({0, 2, 3, 1}), w_hwio.permute({3, 0, 1, 2})}};
  for (Layout l : test::kAllLayouts) {
    cases.emplace_back(integers(s.x_shape(), float32, 3, l), integers(s.w_shape(), float32, 4, l));
  }
  const Tensor b = integers({9}, float32, 5).slice(0, 0, 9, 2).slice(0, 0, 4);
  for (const auto& [x, w] : cases) {
    SCOPED_TRACE(x.strides().str() + " " + w.strides().str());
    const std::vector<double> ref =
        test::reference_conv2d(g, test::host_values(x), test::host_values(w), test::host_values(b));
    EXPECT_TRUE(test::all_close(conv2d(x, w, b, s.options()), ref, kExact));
  }
}

TEST(ConvCpu, NanAndInfReachExactlyTheWindowsThatSeeThem) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {float32, bfloat16, float64}) {
    SCOPED_TRACE(name(dt));
    std::vector<double> xv(2 * 6 * 6 * 2, 1.0);
    xv[((0 * 6 + 2) * 6 + 3) * 2 + 1] = std::nan("");  // image 0, (2, 3)
    xv[((1 * 6 + 0) * 6 + 0) * 2 + 0] = inf;            // image 1, (0, 0)
    const Tensor x = from_vector(xv, {2, 6, 6, 2}, {.dtype = dt, .device = kCpu});
    const Tensor w = ones({1, 3, 3, 2}, {.dtype = dt, .device = kCpu});
    const std::vector<double> y = conv2d(x, w).to_vector<double>();  // (2, 4, 4, 1)
    for (int n = 0; n < 2; ++n) {
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
          const double v = y[static_cast<std::size_t>((n * 4 + i) * 4 + j)];
          const bool sees_nan = n == 0 && i <= 2 && i >= 0 && j >= 1 && j <= 3;
          const bool sees_inf = n == 1 && i == 0 && j == 0;
          if (sees_nan) EXPECT_TRUE(std::isnan(v)) << n << " " << i << " " << j;
          else if (sees_inf) EXPECT_EQ(v, inf);
          else EXPECT_EQ(v, 18.0) << n << " " << i << " " << j;
        }
      }
    }
  }
}

TEST(ConvCpu, KerasSamePaddingPutsTheOddRowAfter) {
  struct Case {
    std::int64_t in, k, stride, dil, pad_before, pad_after, out;
  };
  // Hand-computed with TensorFlow's rule: out = ceil(in / s), total = (out - 1) s + k_eff - in.
  const Case cases[] = {{6, 4, 1, 1, 1, 2, 6}, {7, 2, 1, 1, 0, 1, 7},  {6, 3, 2, 1, 0, 1, 3},
                        {7, 3, 2, 1, 1, 1, 4}, {7, 4, 2, 1, 1, 2, 4},  {5, 3, 1, 2, 2, 2, 5},
                        {8, 1, 3, 1, 0, 0, 3}, {4, 7, 1, 1, 3, 3, 4},  {224, 7, 2, 1, 2, 3, 112}};
  for (const Case& c : cases) {
    SCOPED_TRACE("in " + std::to_string(c.in) + " k " + std::to_string(c.k) + " s " + std::to_string(c.stride));
    const Tensor x = zeros({1, c.in, 3, 2}, {.device = kCpu}), w = zeros({1, c.k, 1, 2}, {.device = kCpu});
    const ConvGeometry g = detail::conv2d_geometry(
        x, w, Tensor(), {.strides = {c.stride, 1}, .padding = "same", .dilation = {c.dil, 1}});
    EXPECT_EQ(g.pad_top, c.pad_before);
    EXPECT_EQ(g.pad_bottom, c.pad_after);
    EXPECT_EQ(g.out_h, c.out);
    EXPECT_EQ(g.out_w, 3);
    EXPECT_EQ(g.pad_left + g.pad_right, 0);
  }
}

TEST(ConvCpu, EmptyBatchGivesEmptyOutputAndZeroWeightGradients) {
  Tensor x = zeros({0, 5, 5, 3}, {.device = kCpu}), w = integers({4, 3, 3, 3}, float32, 1);
  Tensor b = integers({4}, float32, 2);
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  const Tensor y = conv2d(x, w, b, {.padding = "same"});
  EXPECT_EQ(y.shape(), Shape({0, 5, 5, 4}));
  backward(y, zeros({0, 5, 5, 4}, {.device = kCpu}));
  EXPECT_EQ(x.grad().shape(), x.shape());
  EXPECT_TRUE(test::all_close(w.grad(), std::vector<double>(4 * 27, 0.0), kExact));
  EXPECT_TRUE(test::all_close(b.grad(), std::vector<double>(4, 0.0), kExact));
}

// ---- gradient checks ----

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

TEST(ConvCpu, GradcheckEveryProblem) {
  std::uint64_t seed = 700;
  for (const ConvSpec& table_spec : test::kConvSpecs) {
    ConvSpec s = table_spec;
    s.n = 1;  // one image keeps the central differences cheap; batching is checked exactly above
    if (s.c_in * s.c_out > 100) s.c_in = s.groups, s.c_out = 2 * s.groups;
    SCOPED_TRACE(s.name);
    const Conv2dOptions o = s.options();
    const Fn f = [o, bias = s.bias](const std::vector<Tensor>& in) {
      return conv2d(in[0], in[1], bias ? in[2] : Tensor(), o);
    };
    std::vector<Tensor> inputs = {randoms(s.x_shape(), ++seed), randoms(s.w_shape(), ++seed)};
    if (s.bias) inputs.push_back(randoms({s.c_out}, ++seed));
    const auto r = gradcheck(f, inputs);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

TEST(ConvTransposeCpu, GradcheckStridesGroupsAndOutputPadding) {
  const Conv2dTransposeOptions cases[] = {
      {.strides = {2, 2}, .padding = "valid"},
      {.strides = {2, 1}, .padding = "same", .output_padding = {1, 0}},
      {.strides = {1, 1}, .padding = "same", .dilation = {2, 2}, .groups = 2},
      {.strides = {3, 2}, .padding = "valid", .output_padding = {2, 1}, .groups = 2},
  };
  std::uint64_t seed = 900;
  for (const auto& o : cases) {
    const Fn f = [o](const std::vector<Tensor>& in) { return conv2d_transpose(in[0], in[1], in[2], o); };
    const auto r = gradcheck(f, {randoms({2, 3, 4, 4}, ++seed), randoms({4, 3, 3, 3}, ++seed),
                                 randoms({3 * o.groups}, ++seed)});
    EXPECT_TRUE(r.ok) << r.message;
  }
}

// ---- conv2d_transpose ----

TEST(ConvTransposeCpu, KerasOutputSizes) {
  struct Case {
    std::int64_t in, k, stride, dil, out_pad;
    const char* padding;
    std::int64_t out;
  };
  // Keras' deconv_output_length, by hand.
  const Case cases[] = {{5, 3, 1, 1, -1, "valid", 7}, {5, 3, 1, 1, -1, "same", 5},  {5, 3, 2, 1, -1, "valid", 11},
                        {5, 3, 2, 1, -1, "same", 10}, {4, 2, 2, 1, -1, "valid", 8}, {4, 2, 2, 1, -1, "same", 8},
                        {4, 1, 3, 1, -1, "valid", 12}, {3, 3, 2, 1, 1, "valid", 8}, {3, 3, 2, 1, 1, "same", 6},
                        {3, 4, 2, 1, 1, "same", 5},   {4, 3, 1, 2, -1, "valid", 8}, {3, 3, 3, 1, 0, "valid", 9}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.in) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " " +
                 c.padding + " op" + std::to_string(c.out_pad));
    const Tensor x = integers({1, c.in, 2, 3}, float32, 1), w = integers({3, c.k, 1, 2}, float32, 2);
    const Conv2dTransposeOptions o{.strides = {c.stride, 1}, .padding = c.padding, .dilation = {c.dil, 1},
                                   .output_padding = {c.out_pad, c.out_pad < 0 ? -1 : 0}};
    EXPECT_EQ(conv2d_transpose(x, w, Tensor(), o).shape(), Shape({1, c.out, 2, 2}));
  }
}

// The conv2d whose backward-data conv2d_transpose(x, w) is, as a reference problem.
test::RefGeometry transposed_reference(const Tensor& x, const Tensor& w, const Tensor& y, std::int64_t stride,
                                       const char* padding, std::int64_t groups) {
  ConvSpec s{.name = "transposed", .n = x.size(0), .h = y.size(1), .w = y.size(2), .c_in = y.size(3),
             .c_out = x.size(3), .k_h = w.size(1), .k_w = w.size(2), .stride_h = stride, .stride_w = stride,
             .groups = groups, .padding = padding};
  return test::resolve(s);
}

TEST(ConvTransposeCpu, ValuesAndGradientsMatchTheConvolutionItTransposes) {
  struct Case {
    std::int64_t stride, groups, out_pad;
    const char* padding;
  };
  const Case cases[] = {{2, 1, -1, "valid"}, {2, 1, -1, "same"}, {2, 2, 1, "same"}, {3, 1, 2, "valid"},
                        {1, 4, -1, "same"}};
  std::uint64_t seed = 40;
  for (DType dt : {float32, bfloat16, float64}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(name(dt)) + " s" + std::to_string(c.stride) + " g" + std::to_string(c.groups) +
                   " " + c.padding);
      Tensor x = integers({2, 4, 3, 4}, dt, ++seed), w = integers({4, 3, 2, 3}, dt, ++seed);
      Tensor b = integers({3 * c.groups}, dt, ++seed);
      for (Tensor* t : {&x, &w, &b}) t->requires_grad_();
      const Conv2dTransposeOptions o{.strides = {c.stride, c.stride}, .padding = c.padding,
                                     .output_padding = {c.out_pad, c.out_pad}, .groups = c.groups};
      const Tensor y = conv2d_transpose(x, w, b, o);
      const test::RefGeometry g = transposed_reference(x, w, y, c.stride, c.padding, c.groups);
      ASSERT_EQ(g.out_h, 4);
      ASSERT_EQ(g.out_w, 3);
      const std::vector<double> xv = test::host_values(x), wv = test::host_values(w);
      std::vector<double> ref = test::reference_backward_data(g, xv, wv);
      const std::vector<double> bv = test::host_values(b);
      for (std::size_t i = 0; i < ref.size(); ++i) ref[i] += bv[i % bv.size()];
      EXPECT_TRUE(test::all_close(y, ref, kExact));
      const Tensor dy = integers(y.shape(), dt, ++seed);
      backward(y, dy);
      const std::vector<double> dyv = test::host_values(dy);
      EXPECT_TRUE(test::all_close(x.grad(), test::reference_conv2d(g, dyv, wv, {}), kExact)) << "dx";
      EXPECT_TRUE(test::all_close(w.grad(), test::reference_backward_filter(g, dyv, xv), kExact)) << "dw";
      EXPECT_TRUE(test::all_close(b.grad(), test::reference_bias_grad(dyv, 3 * c.groups), kExact)) << "db";
    }
  }
}

// ---- settings ----

TEST(ConvSettings, BackendAndBenchmarkModeRoundTrip) {
  const ConvBackend before = conv_backend();
  set_conv_backend(ConvBackend::native);
  EXPECT_EQ(conv_backend(), ConvBackend::native);
  set_conv_backend(ConvBackend::vendor);
  EXPECT_EQ(conv_backend(), ConvBackend::vendor);
  set_conv_backend(before);
  const bool bench_before = cudnn_benchmark();
  set_cudnn_benchmark(true);
  EXPECT_TRUE(cudnn_benchmark());
  set_cudnn_benchmark(false);
  EXPECT_FALSE(cudnn_benchmark());
  set_cudnn_benchmark(bench_before);
}

TEST(ConvSettings, GeometryKeyTellsProblemsApart) {
  const Tensor x = zeros({2, 8, 8, 4}, {.device = kCpu}), w = zeros({6, 3, 3, 2}, {.device = kCpu});
  const ConvGeometry a = detail::conv2d_geometry(x, w, Tensor(), {.groups = 2});
  ConvGeometry b = a;
  b.pad_bottom = 1;
  ConvGeometry c = a;
  c.dtype = float64;
  EXPECT_NE(a.key(), b.key());
  EXPECT_NE(a.key(), c.key());
  EXPECT_EQ(a.key(), detail::conv2d_geometry(x, w, Tensor(), {.groups = 2}).key());
  EXPECT_THAT(a.key(), AllOf(HasSubstr("float32"), HasSubstr("g2")));
  EXPECT_EQ(a.macs(), 2 * 6 * 6 * 6 * 9 * 2);
}

// ---- bad input ----

Tensor cpu_zeros(const Shape& s, DType dt = float32) { return zeros(s, {.dtype = dt, .device = kCpu}); }

TEST(ConvCpu, BadShapesNameTheOpAndTheShapes) {
  const Tensor w = cpu_zeros({4, 3, 3, 3});
  EXPECT_THAT([&] { conv2d(cpu_zeros({5, 5, 3}), w); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("conv2d"), HasSubstr("rank 4"), HasSubstr("(5, 5, 3)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 5, 5, 3}), cpu_zeros({4, 3, 3})); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("conv2d"), HasSubstr("(4, 3, 3)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 5, 5, 2}), w); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("conv2d"), HasSubstr("(1, 5, 5, 2)"),
                                              HasSubstr("(4, 3, 3, 3)"), HasSubstr("channels"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 3, 8, 8}), w); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("conv2d"), HasSubstr("NCHW"), HasSubstr("NHWC"),
                                              HasSubstr("(1, 3, 8, 8)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 2, 5, 3}), w); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("conv2d"), HasSubstr("kernel is larger than the padded input"),
                                              HasSubstr("(1, 2, 5, 3)"), HasSubstr("(4, 3, 3, 3)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 4, 4, 3}), w, Tensor(), {.dilation = {2, 2}}); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("dilated to 5"), HasSubstr("(1, 4, 4, 3)"))));
  EXPECT_NO_THROW(conv2d(cpu_zeros({1, 2, 2, 3}), w, Tensor(), {.padding = "same"}));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 0, 5, 3}), w); },
              ThrowsMessage<ShapeError>(
                  AllOf(HasSubstr("conv2d"), HasSubstr("zero-sized"), HasSubstr("(1, 0, 5, 3)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 5, 5, 3}), cpu_zeros({0, 3, 3, 3})); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("zero-sized"), HasSubstr("(0, 3, 3, 3)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 5, 5, 4}), cpu_zeros({5, 3, 3, 2}), Tensor(), {.groups = 2}); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("not divisible by groups = 2"), HasSubstr("(5, 3, 3, 2)"))));
  EXPECT_THAT([&] { conv2d(cpu_zeros({1, 5, 5, 3}), w, cpu_zeros({3})); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("bias"), HasSubstr("(3,)"), HasSubstr("(4,)"))));
}

TEST(ConvCpu, BadOptionsAndDtypes) {
  const Tensor x = cpu_zeros({1, 5, 5, 3}), w = cpu_zeros({4, 3, 3, 3});
  EXPECT_THAT([&] { conv2d(x, w, Tensor(), {.padding = "full"}); },
              ThrowsMessage<ValueError>(AllOf(HasSubstr("conv2d"), HasSubstr("'full'"))));
  EXPECT_NO_THROW(conv2d(x, w, Tensor(), {.padding = "SAME"}));  // Keras lowercases it
  EXPECT_THROW(conv2d(x, w, Tensor(), {.strides = {0, 1}}), ValueError);
  EXPECT_THROW(conv2d(x, w, Tensor(), {.dilation = {1, 0}}), ValueError);
  EXPECT_THROW(conv2d(x, w, Tensor(), {.groups = 0}), ValueError);
  EXPECT_THAT([&] { conv2d(x, w, Tensor(), {.pads = {1, -1, 0, 0}}); },
              ThrowsMessage<ValueError>(HasSubstr("pads")));
  EXPECT_THAT([&] { conv2d(x, cpu_zeros({4, 3, 3, 3}, float64)); },
              ThrowsMessage<TypeError>(AllOf(HasSubstr("conv2d"), HasSubstr("float32"), HasSubstr("float64"))));
  EXPECT_THROW(conv2d(cpu_zeros({1, 5, 5, 3}, int32), cpu_zeros({4, 3, 3, 3}, int32)), TypeError);
  EXPECT_THROW(conv2d(x, w, cpu_zeros({4}, float64)), TypeError);
  EXPECT_THROW(conv2d(Tensor(), w), ValueError);
}

TEST(ConvTransposeCpu, BadInputNamesTheOpAndTheShapes) {
  const Tensor x = cpu_zeros({1, 3, 3, 4}), w = cpu_zeros({4, 4, 4, 2});
  EXPECT_THAT([&] { conv2d_transpose(x, w, Tensor(), {.strides = {2, 2}, .output_padding = {2, 0}}); },
              ThrowsMessage<ValueError>(AllOf(HasSubstr("conv2d_transpose"), HasSubstr("output_padding"))));
  // "same", an even kernel and output_padding 0 give 4 rows, whose convolution has only 2.
  EXPECT_THAT([&] {
    conv2d_transpose(x, w, Tensor(), {.strides = {2, 2}, .padding = "same", .output_padding = {0, 0}});
  }, ThrowsMessage<ShapeError>(
                  AllOf(HasSubstr("conv2d_transpose"), HasSubstr("(1, 3, 3, 4)"), HasSubstr("output_padding"))));
  EXPECT_THAT([&] { conv2d_transpose(cpu_zeros({1, 4, 3, 3}), w); },
              ThrowsMessage<ShapeError>(
                  AllOf(HasSubstr("conv2d_transpose"), HasSubstr("NCHW"), HasSubstr("(4, 4, 4, 2)"))));
  EXPECT_THAT([&] { conv2d_transpose(x, w, cpu_zeros({4})); },
              ThrowsMessage<ShapeError>(AllOf(HasSubstr("bias"), HasSubstr("(2,)"))));
  EXPECT_THAT([&] { conv2d_transpose(x, w, Tensor(), {.groups = 3}); },
              ThrowsMessage<ShapeError>(HasSubstr("not divisible by groups = 3")));
}

}  // namespace
}  // namespace kiln
