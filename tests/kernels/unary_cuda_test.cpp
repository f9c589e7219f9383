// The unary family on cuda against cpu (gpu label: SIM in CI, the GPU when one is lent):
// every op x dtype x shape x layout forward, extreme inputs (NaN, Inf, overflow), the
// backward through the same inputs, a size past the launch helper's grid (so threads
// loop), the gradient checker on cuda float64 inputs, and a second device. Every test
// skips without a cuda device.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/unary.h"
#include "kiln_test.h"
#include "op_test_util.h"
#include "unary_cases.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;
using test::UnaryCase;

constexpr Device kCuda0 = Device::cuda(0);

// Scalar, empty, one element, odd, 2-D, and an odd size past one block's reach.
const Shape kShapes[] = {{}, {0}, {1}, {7}, {33, 65}, {4099}};

std::string describe(DType dt, const Shape& shape, Layout layout) {
  std::ostringstream os;
  os << dt << " " << shape << " " << test::layout_name(layout);
  return os.str();
}

std::vector<DType> dtypes_of(const UnaryCase& c) {
  std::vector<DType> out(std::begin(test::kFloatDTypes), std::end(test::kFloatDTypes));
  if (c.integers) out.insert(out.end(), {int32, int64});
  return out;
}

std::vector<double> input_values(const UnaryCase& c, std::int64_t n, DType dt, std::uint64_t seed) {
  std::vector<double> v =
      test::uniform_values(n, is_floating(dt) ? c.lo : -50, is_floating(dt) ? c.hi : 50, seed);
  if (!is_floating(dt)) {
    for (double& x : v) x = std::round(x);
  }
  return v;
}

// The op on the same values and layout on cuda (output poisoned first) and on cpu.
void expect_cuda_forward_matches_cpu(const UnaryCase& c, const std::vector<double>& values,
                                     const Shape& shape, DType dt, Layout layout, Device device) {
  const Tensor x_cpu = test::make_input(values, shape, dt, kCpu, layout);
  const Tensor x_cuda = test::make_input(values, shape, dt, device, layout);
  test::poison_next_allocation(static_cast<std::size_t>(shape.numel()) * itemsize(dt), device);
  const Tensor y = c.op(x_cuda);
  EXPECT_EQ(y.device(), device);
  EXPECT_EQ(y.dtype(), dt);
  ASSERT_EQ(y.shape(), shape);
  EXPECT_TRUE(test::all_close(y, c.op(x_cpu), test::tolerance_for(dt)));
}

// grad_x of sum(g * op(x)) on `device`, for x laid out as `layout`.
Tensor backward_on(const UnaryCase& c, const std::vector<double>& xv, const std::vector<double>& gv,
                   const Shape& shape, DType dt, Layout layout, Device device) {
  Tensor x = test::make_input(xv, shape, dt, device, layout);
  x.requires_grad_();
  backward(c.op(x), test::make_input(gv, shape, dt, device, Layout::contiguous));
  return x.grad();
}

class UnaryCuda : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(UnaryCuda, ForwardMatchesCpuForEveryDtypeShapeAndLayout) {
  KILN_REQUIRE_CUDA();
  const UnaryCase& c = GetParam();
  std::uint64_t seed = 200;
  for (DType dt : dtypes_of(c)) {
    for (const Shape& shape : kShapes) {
      for (Layout layout : test::kAllLayouts) {
        SCOPED_TRACE(describe(dt, shape, layout));
        expect_cuda_forward_matches_cpu(c, input_values(c, shape.numel(), dt, ++seed), shape, dt, layout,
                                        kCuda0);
      }
    }
  }
}

TEST_P(UnaryCuda, ForwardMatchesCpuPastTheGrid) {
  // More elements than the launch helper's grid has threads (8 blocks of 256 per SM), odd.
  KILN_REQUIRE_CUDA();
  const UnaryCase& c = GetParam();
  const std::int64_t threads = std::int64_t{cuda::properties(0).multiprocessor_count} * 8 * 256;
  const Shape shape{threads + 4099};
  for (Layout layout : {Layout::contiguous, Layout::offset}) {
    SCOPED_TRACE(test::layout_name(layout));
    expect_cuda_forward_matches_cpu(c, input_values(c, shape.numel(), float32, 5), shape, float32, layout,
                                    kCuda0);
  }
}

TEST_P(UnaryCuda, BackwardMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const UnaryCase& c = GetParam();
  for (DType dt : test::kFloatDTypes) {
    for (const Shape& shape : {Shape{1}, Shape{7}, Shape{33, 65}}) {
      for (Layout layout : {Layout::contiguous, Layout::transposed, Layout::strided, Layout::expanded}) {
        SCOPED_TRACE(describe(dt, shape, layout));
        const auto xv =
            test::away_from_kinks(test::uniform_values(shape.numel(), c.grad_lo, c.grad_hi, 9), c);
        const auto gv = test::uniform_values(shape.numel(), -1, 1, 10);
        const Tensor g_cuda = backward_on(c, xv, gv, shape, dt, layout, kCuda0);
        const Tensor g_cpu = backward_on(c, xv, gv, shape, dt, layout, kCpu);
        ASSERT_TRUE(g_cuda.defined());
        EXPECT_EQ(g_cuda.device(), kCuda0);
        const test::Tolerance tol = test::tolerance_for(dt);
        EXPECT_TRUE(test::all_close(g_cuda, g_cpu, {2 * tol.atol, 2 * tol.rtol}));
      }
    }
  }
}

TEST_P(UnaryCuda, GradcheckOnCudaFloat64) {
  KILN_REQUIRE_CUDA();
  const UnaryCase& c = GetParam();
  const auto values = test::away_from_kinks(test::uniform_values(6, c.grad_lo, c.grad_hi, 12), c);
  const Tensor x = from_vector<double>(values, {2, 3}, {.dtype = float64, .device = kCuda0});
  const auto op = c.op;
  const auto r = gradcheck([op](const std::vector<Tensor>& in) { return op(in[0]); }, {x.t()});
  EXPECT_TRUE(r.ok) << r.message;
}

INSTANTIATE_TEST_SUITE_P(Unary, UnaryCuda, ::testing::ValuesIn(test::unary_cases()),
                         [](const auto& info) { return test::case_name(info.param); });

TEST(UnaryCudaDevices, RunsOnSecondDevice) {
  KILN_REQUIRE_TWO_DEVICES();
  const Device cuda1 = Device::cuda(1);
  for (const UnaryCase& c : test::unary_cases()) {
    SCOPED_TRACE(c.name);
    expect_cuda_forward_matches_cpu(c, input_values(c, 77, float32, 3), {7, 11}, float32, Layout::transposed,
                                    cuda1);
  }
}

TEST(UnaryCudaDevices, ExtremeInputsMatchCpu) {
  // NaN, infinities, signed zeros, values that overflow exp and saturate sigmoid/tanh.
  KILN_REQUIRE_CUDA();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> values{std::nan(""), -inf, inf, -0.0, 0.0, -1e4, 1e4, -1000, 1000, -30, 30};
  const Shape shape{static_cast<std::int64_t>(values.size())};
  for (const UnaryCase& c : test::unary_cases()) {
    for (DType dt : test::kFloatDTypes) {
      SCOPED_TRACE(std::string(c.name) + " " + std::string(name(dt)));
      expect_cuda_forward_matches_cpu(c, values, shape, dt, Layout::contiguous, kCuda0);
    }
  }
}

}  // namespace
}  // namespace kiln
