// Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose on cpu: output shapes as Keras
// computes them, parameter counts as Keras reports them, outputs against float64
// references written with Keras-layout kernels, and gradient checks in float64.
// (Kernel layouts, initializers, constraints, errors, configs: conv_layers_keras_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "image_reference.h"
#include "image_test_util.h"
#include "layer_gradcheck.h"
#include "kernels/op_test_util.h"
#include "kiln/layers/conv.h"
#include "kiln/layers/core.h"

namespace kiln::layers {
namespace {

using test::Axis1;
using test::seeded_uniform;

constexpr test::Tolerance kF32{1e-5, 1e-4};

::testing::AssertionResult close_to(const Tensor& y, const std::vector<double>& ref, test::Tolerance tol) {
  return test::all_close(y, ref, tol);
}

// ---- output shapes ----

struct ShapeCase {
  Shape input;  // batch -1
  std::int64_t filters;
  Int2 kernel, strides, dilation;
  const char* padding;
  Shape expected;
};

TEST(Conv2DLayer, OutputShapesFollowKerasArithmetic) {
  const std::vector<ShapeCase> cases = {
      {{-1, 28, 28, 1}, 32, 3, 1, 1, "valid", {-1, 26, 26, 32}},
      {{-1, 28, 28, 1}, 32, 3, 1, 1, "same", {-1, 28, 28, 32}},
      {{-1, 7, 9, 3}, 4, {3, 2}, {2, 3}, 1, "valid", {-1, 3, 3, 4}},
      {{-1, 7, 9, 3}, 4, {3, 2}, {2, 3}, 1, "same", {-1, 4, 3, 4}},
      {{-1, 9, 8, 2}, 5, 3, 1, 2, "valid", {-1, 5, 4, 5}},
      {{-1, 9, 8, 2}, 5, 3, 1, {2, 3}, "same", {-1, 9, 8, 5}},
      {{-1, 5, 5, 3}, 2, 5, 1, 1, "valid", {-1, 1, 1, 2}},
      {{-1, 5, 6, 3}, 2, 1, 4, 1, "valid", {-1, 2, 2, 2}},
      {{-1, -1, -1, 3}, 4, 3, 2, 1, "same", {-1, -1, -1, 4}},
  };
  for (const ShapeCase& c : cases) {
    SCOPED_TRACE(c.input.str() + " " + c.padding);
    auto conv = Conv2D(c.filters, c.kernel, {.strides = c.strides, .padding = c.padding, .dilation_rate = c.dilation});
    EXPECT_EQ(conv->compute_output_shape(c.input), c.expected);
    if (c.input[1] < 0) continue;
    // The eager output has the inferred shape (batch 2).
    Shape in = c.input;
    in[0] = 2;
    const Tensor y = conv(seeded_uniform(in, 1));
    Shape expected = c.expected;
    expected[0] = 2;
    EXPECT_EQ(y.shape(), expected);
  }
}

TEST(Conv2DLayer, SymbolicCallGivesKerasTensorShape) {
  auto in = Input({28, 28, 1});
  auto out = Conv2D(32, {3, 3}, {.activation = "relu"})(in);
  EXPECT_EQ(out.shape(), (Shape{-1, 26, 26, 32}));
  auto out2 = Conv2DTranspose(8, 3, {.strides = 2, .padding = "same"})(out);
  EXPECT_EQ(out2.shape(), (Shape{-1, 52, 52, 8}));
  auto out3 = SeparableConv2D(16, 3, {.padding = "same", .depth_multiplier = 2})(out2);
  EXPECT_EQ(out3.shape(), (Shape{-1, 52, 52, 16}));
  auto out4 = DepthwiseConv2D(3, {.strides = 2, .depth_multiplier = 3})(out3);
  EXPECT_EQ(out4.shape(), (Shape{-1, 25, 25, 48}));
}

TEST(Conv2DTransposeLayer, OutputShapesFollowKerasArithmetic) {
  struct Case {
    Shape input;
    Int2 kernel, strides, output_padding;
    const char* padding;
    Shape expected;
  };
  const std::vector<Case> cases = {
      {{-1, 5, 5, 3}, 3, 1, {-1, -1}, "valid", {-1, 7, 7, 4}},
      {{-1, 5, 5, 3}, 3, 2, {-1, -1}, "valid", {-1, 11, 11, 4}},
      {{-1, 5, 5, 3}, 3, 2, {-1, -1}, "same", {-1, 10, 10, 4}},
      {{-1, 5, 5, 3}, 2, 3, {-1, -1}, "valid", {-1, 15, 15, 4}},  // kernel < stride: max(k, s)
      {{-1, 5, 4, 3}, 3, 2, {1, 0}, "valid", {-1, 12, 9, 4}},
      {{-1, 5, 4, 3}, 3, 2, {1, 1}, "same", {-1, 10, 8, 4}},
      {{-1, 4, 4, 3}, {4, 3}, {2, 3}, {-1, -1}, "same", {-1, 8, 12, 4}},
      {{-1, -1, 4, 3}, 3, 2, {-1, -1}, "same", {-1, -1, 8, 4}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input.str() + " " + c.padding);
    auto t = Conv2DTranspose(4, c.kernel, {.strides = c.strides, .padding = c.padding, .output_padding = c.output_padding});
    EXPECT_EQ(t->compute_output_shape(c.input), c.expected);
    if (c.input[1] < 0) continue;
    Shape in = c.input;
    in[0] = 1;
    Shape expected = c.expected;
    expected[0] = 1;
    EXPECT_EQ(t(seeded_uniform(in, 2)).shape(), expected);
  }
}

// ---- parameters ----

TEST(ConvLayers, ParameterCountsAndWeightShapesAsKeras) {
  auto c1 = Conv2D(32, 3);
  c1->maybe_build({Shape{-1, 28, 28, 1}});
  EXPECT_EQ(c1->count_params(), 320);
  EXPECT_EQ(c1->kernel().shape(), (Shape{32, 3, 3, 1}));  // kiln's OHWI
  EXPECT_EQ(c1->kernel().name(), c1->name() + "/kernel");
  EXPECT_EQ(c1->bias().name(), c1->name() + "/bias");

  auto c2 = Conv2D(64, 3);
  c2->maybe_build({Shape{-1, 26, 26, 32}});
  EXPECT_EQ(c2->count_params(), 18496);

  auto grouped = Conv2D(8, {3, 3}, {.groups = 2, .use_bias = false});
  grouped->maybe_build({Shape{-1, 9, 9, 4}});
  EXPECT_EQ(grouped->count_params(), 8 * 3 * 3 * 2);
  EXPECT_FALSE(grouped->bias().defined());
  EXPECT_EQ(grouped->weights().size(), 1u);

  auto dw = DepthwiseConv2D(3, {.depth_multiplier = 2});
  dw->maybe_build({Shape{-1, 9, 9, 5}});
  EXPECT_EQ(dw->count_params(), 3 * 3 * 5 * 2 + 10);
  EXPECT_EQ(dw->kernel().shape(), (Shape{10, 3, 3, 1}));
  EXPECT_EQ(dw->kernel().name(), dw->name() + "/kernel");  // Keras 3's name

  auto sep = SeparableConv2D(8, 3, {.depth_multiplier = 2});
  sep->maybe_build({Shape{-1, 9, 9, 4}});
  EXPECT_EQ(sep->count_params(), 3 * 3 * 4 * 2 + 8 * 8 + 8);
  ASSERT_EQ(sep->weights().size(), 3u);
  EXPECT_EQ(sep->weights()[0].name(), sep->name() + "/depthwise_kernel");
  EXPECT_EQ(sep->weights()[1].name(), sep->name() + "/pointwise_kernel");
  EXPECT_EQ(sep->pointwise_kernel().shape(), (Shape{8, 1, 1, 8}));

  auto tr = Conv2DTranspose(6, 3);
  tr->maybe_build({Shape{-1, 5, 5, 4}});
  EXPECT_EQ(tr->count_params(), 3 * 3 * 6 * 4 + 6);
  EXPECT_EQ(tr->kernel().shape(), (Shape{4, 3, 3, 6}));
  for (const Variable& v : tr->weights()) EXPECT_TRUE(v.trainable());
}

TEST(ConvLayers, AutomaticNamesAreKerasSnakeCase) {
  EXPECT_EQ(Conv2D(1, 1)->name().rfind("conv2d", 0), 0u);
  EXPECT_EQ(DepthwiseConv2D(1)->name().rfind("depthwise_conv2d", 0), 0u);
  EXPECT_EQ(SeparableConv2D(1, 1)->name().rfind("separable_conv2d", 0), 0u);
  EXPECT_EQ(Conv2DTranspose(1, 1)->name().rfind("conv2d_transpose", 0), 0u);
  EXPECT_EQ(Conv2D(1, 1, {.name = "stem"})->name(), "stem");
}

// ---- outputs against float64 references ----

struct ConvCase {
  Shape x;
  std::int64_t filters;
  Int2 kernel, strides, dilation;
  const char* padding;
  std::int64_t groups;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {{2, 7, 6, 3}, 5, 3, 1, 1, "valid", 1},     {{2, 7, 6, 3}, 5, 3, 2, 1, "same", 1},
      {{1, 8, 9, 4}, 6, {3, 2}, {1, 3}, 1, "same", 2}, {{1, 9, 9, 2}, 3, 3, 1, 2, "same", 1},
      {{1, 9, 7, 2}, 3, {2, 3}, 1, {3, 2}, "valid", 1}, {{3, 5, 5, 6}, 6, 1, 1, 1, "valid", 3},
      {{1, 4, 4, 1}, 1, 4, 1, 1, "valid", 1},
  };
  return cases;
}

TEST(Conv2DLayer, MatchesFloat64ReferenceWithKerasLayoutKernel) {
  std::uint64_t seed = 10;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.x.str() + " " + c.padding + " groups " + std::to_string(c.groups));
    auto conv = Conv2D(c.filters, c.kernel,
                       {.strides = c.strides, .padding = c.padding, .dilation_rate = c.dilation, .groups = c.groups});
    const Tensor x = seeded_uniform(c.x, ++seed);
    conv->maybe_build({with_unknown_batch(c.x)});
    const Shape ks{c.kernel.h, c.kernel.w, c.x[3] / c.groups, c.filters};
    const Tensor wk = seeded_uniform(ks, ++seed);  // Keras layout
    const Tensor b = seeded_uniform({c.filters}, ++seed);
    conv->kernel().assign(kernel_from_keras(wk));
    conv->bias().assign(b);
    Shape ref_shape;
    const auto ref = test::conv2d_reference(x.to_vector<double>(), c.x, wk.to_vector<double>(), ks, b.to_vector<double>(),
                                            Axis1{c.kernel.h, c.strides.h, c.dilation.h},
                                            Axis1{c.kernel.w, c.strides.w, c.dilation.w}, c.padding, c.groups, &ref_shape);
    const Tensor y = conv(x);
    ASSERT_EQ(y.shape(), ref_shape);
    EXPECT_TRUE(close_to(y, ref, kF32));
  }
}

TEST(Conv2DLayer, AppliesTheActivationAfterTheBias) {
  auto conv = Conv2D(2, 1, {.activation = "relu"});
  conv->maybe_build({Shape{-1, 1, 2, 1}});
  conv->kernel().assign(from_vector<float>({1.f, -1.f}, {2, 1, 1, 1}));
  conv->bias().assign(from_vector<float>({0.5f, 0.5f}, {2}));
  const Tensor y = conv(from_vector<float>({1.f, -2.f}, {1, 1, 2, 1}));
  // channel 0: relu(x + 0.5), channel 1: relu(-x + 0.5)
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1.5f, 0.f, 0.f, 2.5f}));
}

TEST(Conv2DLayer, NonContiguousInputAndNaNPropagate) {
  auto conv = Conv2D(3, 2, {.padding = "valid"});
  const Tensor base = seeded_uniform({2, 5, 4, 6}, 3);
  conv->maybe_build({Shape{-1, 5, 6, 2}});
  // (2, 5, 6, 2) as a strided, permuted view: channels 0 and 2 of a (2, 5, 4, 6) tensor, W and C swapped.
  const Tensor x = base.permute({0, 1, 3, 2}).slice(3, 0, 4, 2);
  ASSERT_FALSE(x.is_contiguous());
  const Tensor y = conv(x);
  const Tensor y_ref = conv(x.contiguous());
  EXPECT_TRUE(test::all_close(y, y_ref, {0, 0}));
  // A NaN at (0, 0, 0, 0) reaches exactly the outputs whose window covers it.
  Tensor xn = x.contiguous().clone();
  xn.select(0, 0).select(0, 0).select(0, 0).fill_(std::nan(""));
  const Tensor yn = conv(xn);
  EXPECT_TRUE(std::isnan(yn.at<double>({0, 0, 0, 1})));
  EXPECT_FALSE(std::isnan(yn.at<double>({0, 1, 1, 1})));
  EXPECT_FALSE(std::isnan(yn.at<double>({1, 0, 0, 1})));
}

TEST(DepthwiseConv2DLayer, MatchesFloat64ReferenceWithKerasLayoutKernel) {
  struct Case {
    Shape x;
    std::int64_t dm;
    Int2 kernel, strides, dilation;
    const char* padding;
  };
  const std::vector<Case> cases = {{{2, 6, 7, 3}, 1, 3, 1, 1, "valid"},
                                   {{1, 7, 7, 3}, 2, 3, 2, 1, "same"},
                                   {{1, 8, 6, 2}, 3, {2, 3}, 1, {2, 1}, "same"}};
  std::uint64_t seed = 40;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.x.str() + " dm " + std::to_string(c.dm));
    auto dw = DepthwiseConv2D(c.kernel, {.strides = c.strides, .padding = c.padding, .depth_multiplier = c.dm,
                                         .dilation_rate = c.dilation});
    dw->maybe_build({with_unknown_batch(c.x)});
    const std::int64_t ch = c.x[3];
    const Tensor x = seeded_uniform(c.x, ++seed);
    const Tensor wk = seeded_uniform({c.kernel.h, c.kernel.w, ch, c.dm}, ++seed);  // Keras (kh, kw, in, dm)
    const Tensor b = seeded_uniform({ch * c.dm}, ++seed);
    dw->kernel().assign(depthwise_kernel_from_keras(wk));
    dw->bias().assign(b);
    // The same values read as a grouped (kh, kw, 1, in * dm) kernel: output channel c * dm + m.
    Shape ref_shape;
    const auto ref = test::conv2d_reference(
        x.to_vector<double>(), c.x, wk.to_vector<double>(), {c.kernel.h, c.kernel.w, 1, ch * c.dm},
        b.to_vector<double>(), Axis1{c.kernel.h, c.strides.h, c.dilation.h}, Axis1{c.kernel.w, c.strides.w, c.dilation.w},
        c.padding, ch, &ref_shape);
    const Tensor y = dw(x);
    ASSERT_EQ(y.shape(), ref_shape);
    EXPECT_TRUE(close_to(y, ref, kF32));
  }
}

TEST(SeparableConv2DLayer, IsDepthwiseThenPointwiseWithBias) {
  const Shape xs{2, 7, 6, 3};
  const std::int64_t dm = 2, filters = 5;
  auto sep = SeparableConv2D(filters, 3, {.strides = 2, .padding = "same", .depth_multiplier = dm});
  sep->maybe_build({with_unknown_batch(xs)});
  const Tensor x = seeded_uniform(xs, 60);
  const Tensor dk = seeded_uniform({3, 3, 3, dm}, 61);
  const Tensor pk = seeded_uniform({1, 1, 3 * dm, filters}, 62);
  const Tensor b = seeded_uniform({filters}, 63);
  sep->depthwise_kernel().assign(depthwise_kernel_from_keras(dk));
  sep->pointwise_kernel().assign(kernel_from_keras(pk));
  sep->bias().assign(b);
  Shape mid_shape, out_shape;
  const auto mid = test::conv2d_reference(x.to_vector<double>(), xs, dk.to_vector<double>(), {3, 3, 1, 3 * dm}, {},
                                          Axis1{3, 2, 1}, Axis1{3, 2, 1}, "same", 3, &mid_shape);
  const auto ref = test::conv2d_reference(mid, mid_shape, pk.to_vector<double>(), {1, 1, 3 * dm, filters},
                                          b.to_vector<double>(), Axis1{}, Axis1{}, "valid", 1, &out_shape);
  const Tensor y = sep(x);
  ASSERT_EQ(y.shape(), out_shape);
  EXPECT_TRUE(close_to(y, ref, kF32));
}

TEST(Conv2DTransposeLayer, MatchesFloat64ReferenceWithKerasLayoutKernel) {
  struct Case {
    Shape x;
    std::int64_t filters;
    Int2 kernel, strides, output_padding;
    const char* padding;
  };
  const std::vector<Case> cases = {{{2, 4, 5, 3}, 4, 3, 1, {-1, -1}, "valid"},
                                   {{1, 4, 3, 2}, 3, 3, 2, {-1, -1}, "valid"},
                                   {{1, 4, 3, 2}, 3, 3, 2, {-1, -1}, "same"},
                                   {{1, 3, 4, 2}, 2, {3, 2}, {2, 3}, {1, 2}, "valid"},
                                   {{1, 3, 3, 2}, 2, 4, 2, {-1, -1}, "same"}};
  std::uint64_t seed = 80;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.x.str() + " " + c.padding);
    auto tr = Conv2DTranspose(c.filters, c.kernel,
                              {.strides = c.strides, .padding = c.padding, .output_padding = c.output_padding});
    tr->maybe_build({with_unknown_batch(c.x)});
    const Tensor x = seeded_uniform(c.x, ++seed);
    const Shape ks{c.kernel.h, c.kernel.w, c.filters, c.x[3]};  // Keras (kh, kw, filters, in)
    const Tensor wk = seeded_uniform(ks, ++seed);
    const Tensor b = seeded_uniform({c.filters}, ++seed);
    tr->kernel().assign(kernel_from_keras(wk));
    tr->bias().assign(b);
    const Shape out = tr->compute_output_shape(c.x);
    const auto ref = test::conv2d_transpose_reference(x.to_vector<double>(), c.x, wk.to_vector<double>(), ks,
                                                      b.to_vector<double>(), Axis1{c.kernel.h, c.strides.h, 1},
                                                      Axis1{c.kernel.w, c.strides.w, 1}, c.padding, out[1], out[2]);
    const Tensor y = tr(x);
    ASSERT_EQ(y.shape(), out);
    EXPECT_TRUE(close_to(y, ref, kF32));
  }
}

// ---- gradients ----

TEST(ConvLayers, GradientsMatchCentralDifferences) {
  struct Case {
    const char* what;
    LayerRef layer;
    Shape x;
  };
  const std::vector<Case> cases = {
      {"conv2d same stride 2 groups 2 tanh",
       Conv2D(4, 3, {.strides = 2, .padding = "same", .groups = 2, .activation = "tanh", .dtype = float64}),
       {2, 5, 4, 4}},
      {"conv2d dilated valid", Conv2D(2, {2, 3}, {.dilation_rate = {2, 1}, .dtype = float64}), {1, 5, 5, 2}},
      {"depthwise dm 2", DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2, .dtype = float64}), {1, 4, 5, 2}},
      {"separable", SeparableConv2D(3, 2, {.strides = 2, .depth_multiplier = 2, .dtype = float64}), {2, 5, 4, 2}},
      {"transpose stride 2 output_padding",
       Conv2DTranspose(3, 3, {.strides = 2, .output_padding = {1, 0}, .dtype = float64}), {1, 3, 2, 2}},
      {"transpose same", Conv2DTranspose(2, 2, {.strides = 2, .padding = "same", .dtype = float64}), {2, 2, 3, 3}},
  };
  std::uint64_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Tensor x = seeded_uniform(c.x, ++seed, float64);
    c.layer->maybe_build({with_unknown_batch(c.x)});
    // Non-zero biases so their gradient is not checked only at zero.
    for (const Variable& v : c.layer->trainable_weights()) {
      if (v.shape().ndim() == 1) v.assign(seeded_uniform(v.shape(), ++seed, float64));
    }
    EXPECT_TRUE(test::layer_gradcheck(c.layer, {x}));
  }
}

}  // namespace
}  // namespace kiln::layers
