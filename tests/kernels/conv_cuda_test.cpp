// conv2d and conv2d_transpose on cuda against the float64 references of conv_ref.h and
// against cpu: the native im2col + tiled GEMM path (the only one under SIM, which runs these
// in CI) and, on a GPU with cuDNN, the vendor path too. Every problem of the table (im2col,
// the direct 1x1 path, grouped scatter, col2im, the bias column sums), the batch split into
// chunks, 16-bit dtypes, NaN, non-contiguous inputs, gradients and the current stream.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "conv_ref.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/conv.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln_test.h"
#include "matmul_ref.h"
#include "op_test_util.h"

namespace kiln {

// Readable parameters in test names and ctest output (gtest finds it by ADL).
void PrintTo(ConvBackend backend, std::ostream* os) { *os << (backend == ConvBackend::native ? "native" : "vendor"); }

namespace {

using test::ConvSpec;
using test::kCpu;
using test::Layout;

const Device kGpu = Device::cuda(0);
constexpr test::Tolerance kExact{0, 0};

Tensor integers(const Shape& shape, DType dt, std::uint64_t seed, Layout layout = Layout::contiguous) {
  return test::make_input(test::small_integers(shape.numel(), seed), shape, dt, kGpu, layout);
}

bool vendor_available() {
#if KILN_HAS_CUDA && !KILN_CUDA_SIM
  return cuda::cudnn_available();
#else
  return false;
#endif
}

// Runs every test once per cuda convolution backend; cuDNN only on a real GPU that has it.
class ConvCuda : public ::testing::TestWithParam<ConvBackend> {
 protected:
  void SetUp() override {
    KILN_REQUIRE_CUDA();
    if (GetParam() == ConvBackend::vendor && !vendor_available()) {
      GTEST_SKIP() << "no cuDNN here (SIM, or a build without it); the native path runs instead";
    }
    previous_ = conv_backend();
    set_conv_backend(GetParam());
  }
  void TearDown() override {
    if (previous_) set_conv_backend(*previous_);
  }

 private:
  std::optional<ConvBackend> previous_;
};

INSTANTIATE_TEST_SUITE_P(Backends, ConvCuda, ::testing::Values(ConvBackend::native, ConvBackend::vendor),
                         [](const auto& info) {
                           return std::string(info.param == ConvBackend::native ? "Native" : "Vendor");
                         });

// Integer inputs keep float32 and float64 exact on the native path. 16-bit types round the
// GEMM's output once before the grouped scatter or col2im sums it again: within two
// roundings of the dtype. cuDNN may pick Winograd or FFT algorithms, which round even on
// integer inputs, so the vendor path gets float32's usual tolerance.
test::Tolerance tolerance(DType dt) {
  if (dt == float32 || dt == float64) {
    return conv_backend() == ConvBackend::vendor && dt == float32 ? test::Tolerance{1e-4, 1e-4} : kExact;
  }
  return test::tolerance_for(dt);
}

// Forward and the three gradients of `s` in `dt` on cuda against the float64 references.
void expect_matches_reference(const ConvSpec& s, DType dt, std::uint64_t seed) {
  SCOPED_TRACE(std::string(s.name) + " " + std::string(name(dt)));
  const test::RefGeometry g = test::resolve(s);
  Tensor x = integers(s.x_shape(), dt, seed), w = integers(s.w_shape(), dt, seed + 1);
  Tensor b = s.bias ? integers({s.c_out}, dt, seed + 2) : Tensor();
  for (Tensor* t : {&x, &w, &b}) {
    if (t->defined()) t->requires_grad_();
  }
  test::poison_next_allocation(static_cast<std::size_t>(g.y_shape().numel()) * itemsize(dt), kGpu);
  const Tensor y = conv2d(x, w, b, s.options());
  ASSERT_EQ(y.shape(), g.y_shape());
  EXPECT_EQ(y.device(), kGpu);
  const std::vector<double> xv = test::host_values(x), wv = test::host_values(w);
  EXPECT_TRUE(test::all_close(y, test::reference_conv2d(g, xv, wv, test::values_or_empty(b)), tolerance(dt))) << "y";
  const Tensor dy = integers(g.y_shape(), dt, seed + 3);
  backward(y, dy);
  const std::vector<double> dyv = test::host_values(dy);
  EXPECT_TRUE(test::all_close(x.grad(), test::reference_backward_data(g, dyv, wv), tolerance(dt))) << "dx";
  EXPECT_TRUE(test::all_close(w.grad(), test::reference_backward_filter(g, xv, dyv), tolerance(dt))) << "dw";
  if (s.bias) {
    EXPECT_TRUE(test::all_close(b.grad(), test::reference_bias_grad(dyv, s.c_out), tolerance(dt))) << "db";
  }
}

TEST_P(ConvCuda, EveryProblemInFloat32) {
  std::uint64_t seed = 1;
  for (const ConvSpec& s : test::kConvSpecs) expect_matches_reference(s, float32, seed += 4);
}

TEST_P(ConvCuda, OtherDtypesOnAGroupedStridedAndADilatedProblem) {
  std::uint64_t seed = 300;
  for (DType dt : {float64, bfloat16, float16}) {
    for (const char* spec : {"groups3_stride2", "dilation2_same", "even_kernel_stride2_same"}) {
      for (const ConvSpec& s : test::kConvSpecs) {
        if (std::string(s.name) == spec) expect_matches_reference(s, dt, seed += 4);
      }
    }
  }
}

// Depthwise problems run on their own direct kernels (kernels/cuda/conv_depthwise.cuh):
// a filter gradient over more rows than one split (1,200 rows: two splits), a depth
// multiplier of 3 with dilation and asymmetric padding, no bias, and every dtype.
TEST_P(ConvCuda, DepthwiseProblemsOfEveryShapeAndDtype) {
  const std::vector<ConvSpec> specs = {
      {.name = "depthwise_many_rows", .n = 3, .h = 20, .w = 20, .c_in = 3, .c_out = 3, .k_h = 3, .k_w = 3,
       .groups = 3, .padding = "same"},
      {.name = "depthwise_multiplier3_dilated", .n = 2, .h = 9, .w = 7, .c_in = 4, .c_out = 12, .k_h = 3, .k_w = 2,
       .dil_h = 2, .dil_w = 1, .groups = 4, .padding = "same", .bias = false},
      {.name = "depthwise_stride2_wide", .n = 1, .h = 5, .w = 11, .c_in = 37, .c_out = 37, .k_h = 2, .k_w = 5,
       .stride_h = 2, .stride_w = 2, .groups = 37, .pads = {0, 1, 2, 2}},
  };
  std::uint64_t seed = 700;
  for (const ConvSpec& s : specs) expect_matches_reference(s, float32, seed += 4);
  for (DType dt : {float64, bfloat16, float16}) {
    for (const ConvSpec& s : test::kConvSpecs) {
      if (std::string(s.name).starts_with("depthwise")) expect_matches_reference(s, dt, seed += 4);
    }
  }
}

TEST_P(ConvCuda, BatchSplitIntoChunksGivesTheSameResult) {
  // A 1-byte workspace limit gives one image per chunk: im2col per chunk, and the filter
  // gradient accumulated over the chunks (GEMM beta 1 after the first).
#if KILN_HAS_CUDA  // the limit exists in builds with cuda kernels (SetUp skips the others)
  const std::int64_t before = cuda::set_native_conv_workspace_limit(1);
  ConvSpec s{.name = "chunks", .n = 3, .h = 6, .w = 5, .c_in = 4, .c_out = 6, .k_h = 3, .k_w = 3, .stride_h = 2,
             .groups = 2, .padding = "same"};
  expect_matches_reference(s, float32, 40);
  s.k_h = s.k_w = 1, s.stride_h = 1, s.groups = 1, s.padding = "valid";  // direct 1x1: no workspace
  expect_matches_reference(s, float32, 50);
  cuda::set_native_conv_workspace_limit(before);
#endif
}

TEST_P(ConvCuda, RandomFloat32AgreesWithCpu) {
  Generator gen(5);
  const Tensor x = uniform({2, 11, 9, 6}, -1, 1, {.device = kCpu}, &gen);
  const Tensor w = uniform({10, 3, 3, 3}, -1, 1, {.device = kCpu}, &gen);
  const Tensor b = uniform({10}, -1, 1, {.device = kCpu}, &gen);
  const Conv2dOptions o{.strides = {2, 1}, .padding = "same", .groups = 2};
  EXPECT_TRUE(test::all_close(conv2d(x.to(kGpu), w.to(kGpu), b.to(kGpu), o), conv2d(x, w, b, o), {1e-5, 1e-5}));
  const Conv2dTransposeOptions t{.strides = {2, 2}, .padding = "same", .output_padding = {1, 1}, .groups = 2};
  const Tensor wt = uniform({6, 3, 2, 4}, -1, 1, {.device = kCpu}, &gen);
  EXPECT_TRUE(test::all_close(conv2d_transpose(x.to(kGpu), wt.to(kGpu), Tensor(), t),
                              conv2d_transpose(x, wt, Tensor(), t), {1e-5, 1e-5}));
}

TEST_P(ConvCuda, TransposedConvolutionGradientsMatchCpu) {
  std::vector<Tensor> grads[2];
  for (int i = 0; i < 2; ++i) {
    const Device dev = i == 0 ? kGpu : kCpu;
    Tensor x = integers({2, 3, 4, 4}, float32, 1).to(dev), w = integers({4, 3, 3, 2}, float32, 2).to(dev);
    Tensor b = integers({2}, float32, 3).to(dev);
    for (Tensor* t : {&x, &w, &b}) t->requires_grad_();
    const Tensor y = conv2d_transpose(x, w, b, {.strides = {2, 2}, .padding = "valid"});
    backward(y, integers(y.shape(), float32, 4).to(dev));
    grads[i] = {y.detach(), x.grad(), w.grad(), b.grad()};
  }
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(grads[0][j].device(), kGpu);
    EXPECT_TRUE(test::all_close(grads[0][j], grads[1][j], kExact)) << "tensor " << j;
  }
}

TEST_P(ConvCuda, NonContiguousInputsAndNan) {
  // x the NHWC view of NCHW storage, w strided; a NaN reaches exactly the windows over it.
  Tensor x_nchw = integers({1, 2, 5, 5}, float32, 1);
  const Tensor x = x_nchw.permute({0, 2, 3, 1});
  const Tensor w = integers({3, 3, 3, 2}, float32, 2, Layout::strided);
  const ConvSpec s{.name = "views", .n = 1, .h = 5, .w = 5, .c_in = 2, .c_out = 3, .k_h = 3, .k_w = 3, .bias = false};
  const test::RefGeometry g = test::resolve(s);
  EXPECT_TRUE(test::all_close(conv2d(x, w), test::reference_conv2d(g, test::host_values(x), test::host_values(w), {}),
                              kExact));
  std::vector<double> xv(25, 1.0);
  xv[0] = std::nan("");  // (0, 0)
  const Tensor xn = from_vector(xv, {1, 5, 5, 1}, {.dtype = float32, .device = kGpu});
  const std::vector<double> y = conv2d(xn, ones({1, 3, 3, 1}, {.device = kGpu})).to_vector<double>();
  for (int i = 0; i < 9; ++i) EXPECT_EQ(std::isnan(y[i]), i == 0) << i;
}

TEST_P(ConvCuda, GradcheckInFloat64) {
  Generator gen(9);
  const TensorOptions f64{.dtype = float64, .device = kGpu};
  const Conv2dOptions o{.strides = {2, 1}, .padding = "same", .dilation = {1, 2}, .groups = 2};
  auto r = gradcheck([o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], o); },
                     {uniform({1, 5, 5, 4}, -1, 1, f64, &gen), uniform({4, 2, 3, 2}, -1, 1, f64, &gen),
                      uniform({4}, -1, 1, f64, &gen)});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST_P(ConvCuda, RunsOnTheCurrentStream) {
  const cuda::Stream stream = cuda::Stream::create(0);
  const ConvSpec s{.name = "stream", .n = 2, .h = 5, .w = 4, .c_in = 3, .c_out = 4, .k_h = 3, .k_w = 2,
                   .padding = "same"};
  const Tensor x = integers(s.x_shape(), float32, 1), w = integers(s.w_shape(), float32, 2);
  const Tensor b = integers({4}, float32, 3);
  Tensor y;
  {
    cuda::StreamGuard guard(stream);
    y = conv2d(x, w, b, s.options());
  }
  stream.synchronize();
  const std::vector<double> ref =
      test::reference_conv2d(test::resolve(s), test::host_values(x), test::host_values(w), test::host_values(b));
  EXPECT_TRUE(test::all_close(y, ref, kExact));
}

TEST(ConvCudaSettings, WorkspaceLimitMustBePositive) {
  KILN_REQUIRE_CUDA();
#if KILN_HAS_CUDA
  EXPECT_THROW(cuda::set_native_conv_workspace_limit(0), ValueError);
#endif
}

}  // namespace
}  // namespace kiln
