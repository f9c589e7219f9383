// matmul and linear on cuda against float64 references and against cpu: the native tiled
// GEMM (the only path under SIM, which runs these in CI) and, on a GPU, cuBLAS too. Both
// tiles at their edges, every operand layout (aligned vector loads and the masked scalar
// path), batch broadcasting, 1-D operands, K = 0, bias, alpha and beta, NaN and Inf,
// gradients, and the current stream.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/matmul_impl.h"
#include "kiln_test.h"
#include "matmul_ref.h"
#include "op_test_util.h"

namespace kiln {

// Readable parameters in test names and ctest output (gtest finds it by ADL).
void PrintTo(GemmBackend backend, std::ostream* os) {
  *os << (backend == GemmBackend::native ? "native" : "vendor");
}

namespace {

using test::kCpu;
using test::Layout;

const Device kGpu = Device::cuda(0);
constexpr test::Tolerance kExact{0, 0};

Tensor integers(const Shape& shape, DType dt, std::uint64_t seed, Layout layout = Layout::contiguous) {
  return test::make_input(test::small_integers(shape.numel(), seed), shape, dt, kGpu, layout);
}

std::string describe(const Tensor& a, const Tensor& b) {
  std::ostringstream os;
  os << a.dtype() << " " << a.shape() << " strides " << a.strides() << " x " << b.shape()
     << " strides " << b.strides();
  return os.str();
}

// Runs every test once per cuda GEMM backend; cuBLAS only on a real GPU.
class MatmulCuda : public ::testing::TestWithParam<GemmBackend> {
 protected:
  void SetUp() override {
    KILN_REQUIRE_CUDA();
    if (GetParam() == GemmBackend::vendor && cuda::is_simulated()) {
      GTEST_SKIP() << "SIM has no cuBLAS; the native GEMM runs there";
    }
    previous_ = gemm_backend();
    set_gemm_backend(GetParam());
  }
  void TearDown() override {
    if (previous_) set_gemm_backend(*previous_);
  }

 private:
  std::optional<GemmBackend> previous_;
};

INSTANTIATE_TEST_SUITE_P(Backends, MatmulCuda, ::testing::Values(GemmBackend::native, GemmBackend::vendor),
                         [](const auto& info) {
                           return std::string(info.param == GemmBackend::native ? "Native" : "Vendor");
                         });

void expect_exact_matmul(const Tensor& a, const Tensor& b) {
  SCOPED_TRACE(describe(a, b));
  const std::vector<double> expected = test::reference_matmul(a, b);
  test::poison_next_allocation(expected.size() * a.itemsize(), a.device());
  const Tensor c = matmul(a, b);
  EXPECT_EQ(c.device(), kGpu);
  EXPECT_TRUE(test::all_close(c, expected, kExact));
}

TEST_P(MatmulCuda, ExactAtTileEdgesForEveryDtype) {
  std::uint64_t seed = 1;
  auto next = [&seed] { return ++seed; };
  for (DType dt : test::kFloatDTypes) {
    for (const auto& s : test::kTileEdgeShapes) {
      expect_exact_matmul(integers({s.m, s.k}, dt, next()), integers({s.k, s.n}, dt, next()));
    }
  }
}

TEST_P(MatmulCuda, ExactWithTheLargeTile) {
  // The 128 x 128 tile is chosen once there is a tile per SM (132 under SIM and on an H100).
  for (DType dt : {float32, float16, float64}) {
    expect_exact_matmul(integers({140, 7, 9}, dt, 1), integers({140, 9, 5}, dt, 2));
    expect_exact_matmul(integers({40, 129, 17}, dt, 3), integers({17, 130}, dt, 4).expand({40, 17, 130}));
  }
}

TEST_P(MatmulCuda, EveryLayoutOfEitherOperand) {
  std::uint64_t seed = 50;
  auto next = [&seed] { return ++seed; };
  for (DType dt : {float32, bfloat16}) {
    for (Layout la : test::kAllLayouts) {
      for (Layout lb : test::kAllLayouts) {
        SCOPED_TRACE(std::string(test::layout_name(la)) + " x " + test::layout_name(lb));
        expect_exact_matmul(integers({3, 33, 17}, dt, next(), la), integers({3, 17, 12}, dt, next(), lb));
      }
    }
  }
}

TEST_P(MatmulCuda, BroadcastsBatchAxesAndPromotesVectors) {
  expect_exact_matmul(integers({2, 1, 5, 7}, float32, 1), integers({3, 7, 4}, float32, 2));
  expect_exact_matmul(integers({2, 3, 5, 7}, float32, 3), integers({7, 4}, float32, 4));
  expect_exact_matmul(integers({5, 7}, float64, 5), integers({2, 3, 7, 4}, float64, 6));
  expect_exact_matmul(integers({7}, float32, 7), integers({7}, float32, 8));
  expect_exact_matmul(integers({7}, float16, 9), integers({3, 7, 5}, float16, 10));
  expect_exact_matmul(integers({3, 4, 7}, bfloat16, 11), integers({7}, bfloat16, 12));
}

TEST_P(MatmulCuda, EmptyInnerDimensionGivesZerosPlusBias) {
  test::poison_next_allocation(3 * 4 * sizeof(float), kGpu);
  const Tensor c = matmul(empty({3, 0}, {.device = kGpu}), empty({0, 4}, {.device = kGpu}));
  EXPECT_TRUE(test::all_close(c, std::vector<double>(12, 0.0), kExact));
  const Tensor bias = integers({4}, float32, 1);
  const Tensor y = linear(empty({2, 0}, {.device = kGpu}), empty({4, 0}, {.device = kGpu}), bias);
  EXPECT_TRUE(test::all_close(y, bias.expand({2, 4}), kExact));
}

TEST_P(MatmulCuda, LinearWithAndWithoutBiasForEveryDtype) {
  std::uint64_t seed = 300;
  auto next = [&seed] { return ++seed; };
  for (DType dt : test::kFloatDTypes) {
    const Tensor w = integers({9, 17}, dt, next()), bias = integers({9}, dt, next());
    for (const Shape& xs : {Shape{17}, Shape{65, 17}, Shape{2, 33, 17}}) {
      const Tensor x = integers(xs, dt, next());
      SCOPED_TRACE(describe(x, w));
      EXPECT_TRUE(test::all_close(linear(x, w, bias), test::reference_linear(x, w, bias), kExact));
      EXPECT_TRUE(test::all_close(linear(x, w), test::reference_linear(x, w, Tensor()), kExact));
    }
  }
}

TEST_P(MatmulCuda, RandomFloat32AgreesWithCpu) {
  Generator gen(5);
  const Tensor a = uniform({3, 70, 131}, -1, 1, {.device = kCpu}, &gen);
  const Tensor b = uniform({131, 67}, -1, 1, {.device = kCpu}, &gen);
  const Tensor expected = matmul(a, b);
  EXPECT_TRUE(test::all_close(matmul(a.to(kGpu), b.to(kGpu)), expected, {1e-5, 1e-5}));
}

TEST_P(MatmulCuda, NanAndInfPropagate) {
  std::vector<double> av(4 * 3, 1.0), bv(3 * 2, 1.0);
  av[1 * 3 + 2] = std::nan("");
  bv[0 * 2 + 1] = std::numeric_limits<double>::infinity();
  const Tensor a = from_vector(av, {4, 3}, {.dtype = float32, .device = kGpu});
  const Tensor b = from_vector(bv, {3, 2}, {.dtype = float32, .device = kGpu});
  const std::vector<double> c = matmul(a, b).to_vector<double>();
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(i == 1 ? std::isnan(c[i * 2]) : c[i * 2] == 3.0) << "row " << i;
    EXPECT_TRUE(i == 1 ? std::isnan(c[i * 2 + 1]) : std::isinf(c[i * 2 + 1])) << "row " << i;
  }
}

TEST_P(MatmulCuda, GradientsMatchCpu) {
  for (DType dt : {float32, float16}) {
    SCOPED_TRACE(name(dt));
    std::vector<Tensor> grads[2];
    for (int i = 0; i < 2; ++i) {
      const Device dev = i == 0 ? kGpu : kCpu;
      Tensor a = integers({2, 1, 5, 6}, dt, 1).to(dev), b = integers({3, 6, 4}, dt, 2).to(dev);
      Tensor x = integers({2, 5, 6}, dt, 3).to(dev), w = integers({4, 6}, dt, 4).to(dev);
      Tensor bias = integers({4}, dt, 5).to(dev);
      for (Tensor* p : {&a, &b, &x, &w, &bias}) p->requires_grad_();
      backward(matmul(a, b), integers({2, 3, 5, 4}, dt, 6).to(dev));
      backward(linear(x, w, bias), integers({2, 5, 4}, dt, 7).to(dev));
      grads[i] = {a.grad(), b.grad(), x.grad(), w.grad(), bias.grad()};
    }
    for (int j = 0; j < 5; ++j) {
      EXPECT_EQ(grads[0][j].device(), kGpu);
      EXPECT_TRUE(test::all_close(grads[0][j], grads[1][j], kExact)) << "gradient " << j;
    }
  }
}

TEST_P(MatmulCuda, GradcheckInFloat64) {
  Generator gen(9);
  const TensorOptions f64{.dtype = float64, .device = kGpu};
  auto r = gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                     {uniform({2, 3, 4}, -1, 1, f64, &gen), uniform({4, 5}, -1, 1, f64, &gen)});
  EXPECT_TRUE(r.ok) << r.message;
  r = gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                {uniform({3, 4}, -1, 1, f64, &gen), uniform({2, 4}, -1, 1, f64, &gen),
                 uniform({2}, -1, 1, f64, &gen)});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST_P(MatmulCuda, RunsOnTheCurrentStream) {
  const cuda::Stream stream = cuda::Stream::create(0);
  const Tensor a = integers({33, 17}, float32, 1), b = integers({17, 9}, float32, 2);
  Tensor c;
  {
    cuda::StreamGuard guard(stream);
    c = matmul(a, b);
  }
  stream.synchronize();
  EXPECT_TRUE(test::all_close(c, test::reference_matmul(a, b), kExact));
}

// The GEMM entry itself: C = alpha·A·B + beta·C + bias, which the op layer uses with
// alpha 1 (and beta 1 for cuBLAS's bias). cuda::gemm exists only in builds with CUDA.
#if KILN_HAS_CUDA
TEST_P(MatmulCuda, AlphaAndBetaScaleTheProductAndTheOldC) {
  const Tensor a = integers({2, 37, 19}, float32, 1), b = integers({19, 21}, float32, 2);
  const Tensor bias = integers({21}, float32, 3), c0 = integers({2, 37, 21}, float32, 4);
  const std::vector<double> ab = test::reference_matmul(a, b), old = test::host_values(c0);
  const std::vector<double> bias_v = test::host_values(bias);
  for (double beta : {0.0, -1.0}) {
    Tensor c = beta == 0 ? full({2, 37, 21}, std::nan(""), {.device = kGpu}) : c0.clone();
    GemmProblem p;
    p.batch = 2, p.m = 37, p.n = 21, p.k = 19;
    p.a = {a.data_ptr(), 19, false, 37 * 19};
    p.b = {b.data_ptr(), 21, false, 0};
    p.c = c.data_ptr();
    p.bias = bias.data_ptr();
    cuda::GemmOptions options;
    options.path = GetParam() == GemmBackend::native ? cuda::GemmPath::native : cuda::GemmPath::vendor;
    options.alpha = 2.0;
    options.beta = beta;
    cuda::gemm(p, options, 0);
    std::vector<double> expected(ab.size());
    for (std::size_t i = 0; i < ab.size(); ++i) expected[i] = 2 * ab[i] + beta * old[i] + bias_v[i % 21];
    EXPECT_TRUE(test::all_close(c, expected, kExact)) << "beta " << beta;
  }
}
#endif  // KILN_HAS_CUDA

}  // namespace
}  // namespace kiln
