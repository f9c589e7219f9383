// 2-D pooling on cuda against cpu (gpu label: SIM in CI, the GPU when one is lent):
// forward, argmax routing and backward for every dtype over a table of small shapes (odd
// sizes, overlapping windows, `same` with even pools, strides past the pool, channels not
// a multiple of 8), contiguous and non-contiguous inputs, ties and NaN/Inf, global
// pooling, and a gradient check run on the device. Every test skips without cuda.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/pool.h"
#include "kiln_test.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

constexpr Device kCuda0 = Device::cuda(0);

struct PoolCase {
  Shape shape;  // (N, H, W, C); small: SIM runs a fiber per cuda thread
  Pool2dOptions options;
};

const PoolCase kCases[] = {
    {{2, 7, 9, 5}, {}},                           // odd sizes, default strides
    {{1, 7, 7, 3}, {{3, 3}, {2, 2}, "valid"}},    // overlapping windows, batch 1
    {{3, 6, 5, 9}, {{2, 2}, {2, 2}, "same"}},     // same with an even pool
    {{1, 4, 5, 1}, {{4, 4}, {1, 1}, "same"}},     // uneven same padding, stride 1
    {{1, 8, 8, 3}, {{2, 2}, {3, 3}, "valid"}},    // stride past the pool
    {{1, 5, 3, 70}, {{3, 3}, {2, 2}, "same"}},    // channels: 4 blocks of 16 lanes and a tail of 6
    {{2, 6, 6, 32}, {}},                          // the MNIST convnet's pool, scaled down
};

std::string describe(const PoolCase& c) {
  const auto& o = c.options;
  return c.shape.str() + " pool " + std::to_string(o.pool_size[0]) + "x" + std::to_string(o.pool_size[1]) +
         " strides " + std::to_string(o.strides[0]) + "x" + std::to_string(o.strides[1]) + " " + o.padding;
}

// Both devices sum a window (or an input's windows) in the same order in the compute type;
// the device may fuse multiply-adds.
test::Tolerance cross_device_tolerance(DType dt) {
  return dt == float32 ? test::Tolerance{1e-6, 1e-5} : test::tolerance_for(dt);
}

struct Result {
  Tensor y, gx;
};

Result run(bool is_max, const std::vector<double>& values, const PoolCase& c, DType dt, Device device,
           Layout layout) {
  Tensor x = test::make_input(values, c.shape, dt, device, layout);
  x.requires_grad_();
  const Pool2dOptions& o = c.options;
  const Tensor probe = is_max ? max_pool2d(x.detach(), o) : avg_pool2d(x.detach(), o);
  test::poison_next_allocation(probe.nbytes(), device);
  Result r;
  r.y = is_max ? max_pool2d(x, o) : avg_pool2d(x, o);
  const Tensor gy = test::make_input(test::uniform_values(r.y.numel(), -1, 1, 5), r.y.shape(), dt, device,
                                     Layout::contiguous);
  test::poison_next_allocation(x.nbytes(), device);
  backward(r.y, gy);
  r.gx = x.grad();
  return r;
}

TEST(Pool2dCuda, ForwardAndBackwardMatchCpuForEveryDtypeAndLayout) {
  KILN_REQUIRE_CUDA();
  for (const PoolCase& c : kCases) {
    const std::vector<double> values = test::uniform_values(c.shape.numel(), -4, 4, 31);
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : {Layout::contiguous, Layout::transposed}) {
        for (const bool is_max : {true, false}) {
          SCOPED_TRACE(std::string(is_max ? "max " : "avg ") + describe(c) + ", " + std::string(name(dt)) + ", " +
                       test::layout_name(layout));
          const Result cpu = run(is_max, values, c, dt, kCpu, layout);
          const Result gpu = run(is_max, values, c, dt, kCuda0, layout);
          EXPECT_EQ(gpu.y.device(), kCuda0);
          // Max pooling picks an element: exact. So is its routed gradient (one window
          // per element here or the same sum order).
          const test::Tolerance tol = is_max ? test::Tolerance{0, 0} : cross_device_tolerance(dt);
          EXPECT_TRUE(test::all_close(gpu.y, cpu.y, tol));
          ASSERT_TRUE(gpu.gx.defined());
          EXPECT_EQ(gpu.gx.device(), kCuda0);
          EXPECT_TRUE(test::all_close(gpu.gx, cpu.gx, tol));
        }
      }
    }
  }
}

TEST(Pool2dCuda, TiesNanAndInfinitiesRouteAsOnCpu) {
  KILN_REQUIRE_CUDA();
  // Values in {-inf, 0, 1, 2, inf, NaN}: ties everywhere, windows of all -inf, NaN beside inf.
  const PoolCase c{{2, 6, 7, 3}, {{3, 3}, {2, 2}, "same"}};
  std::vector<double> v = test::uniform_values(c.shape.numel(), 0, 6, 41);
  for (double& e : v) {
    const int k = static_cast<int>(e);
    e = k == 3 ? -INFINITY : k == 4 ? INFINITY : k == 5 ? (std::fmod(e, 1.0) < 0.3 ? NAN : -INFINITY) : k;
  }
  for (const DType dt : test::kFloatDTypes) {
    const Result cpu = run(true, v, c, dt, kCpu, Layout::contiguous);
    const Result gpu = run(true, v, c, dt, kCuda0, Layout::contiguous);
    EXPECT_TRUE(test::all_close(gpu.y, cpu.y, {0, 0})) << name(dt);
    EXPECT_TRUE(test::all_close(gpu.gx, cpu.gx, {0, 0})) << name(dt);
    const Result cpu_avg = run(false, v, c, dt, kCpu, Layout::strided);
    const Result gpu_avg = run(false, v, c, dt, kCuda0, Layout::strided);
    EXPECT_TRUE(test::all_close(gpu_avg.y, cpu_avg.y, cross_device_tolerance(dt))) << name(dt);
  }
}

TEST(Pool2dCuda, GlobalPoolingMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const Shape shape{2, 5, 3, 7};
  std::vector<double> v = test::uniform_values(shape.numel(), 0, 4, 43);
  for (double& e : v) e = std::floor(e);  // ties for the max
  for (const DType dt : test::kFloatDTypes) {
    for (const bool is_max : {true, false}) {
      Result r[2];
      for (const Device device : {kCpu, kCuda0}) {
        Tensor x = test::make_input(v, shape, dt, device, Layout::transposed);
        x.requires_grad_();
        const Tensor y = is_max ? global_max_pool2d(x, true) : global_avg_pool2d(x);
        backward(y, test::make_input(test::uniform_values(y.numel(), -1, 1, 2), y.shape(), dt, device,
                                     Layout::contiguous));
        r[device.is_cuda()] = {y, x.grad()};
      }
      EXPECT_TRUE(test::all_close(r[1].y, r[0].y, cross_device_tolerance(dt))) << name(dt) << is_max;
      EXPECT_TRUE(test::all_close(r[1].gx, r[0].gx, cross_device_tolerance(dt))) << name(dt) << is_max;
    }
  }
}

TEST(Pool2dCuda, GradientMatchesCentralDifferencesOnCuda) {
  KILN_REQUIRE_CUDA();
  const PoolCase c{{1, 5, 5, 2}, {{3, 3}, {2, 2}, "same"}};
  std::vector<double> v(static_cast<std::size_t>(c.shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * static_cast<double>((i * 37) % v.size());  // distinct
  const Tensor x = test::make_input(v, c.shape, float64, kCuda0, Layout::transposed);
  for (const bool is_max : {true, false}) {
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return is_max ? max_pool2d(in[0], c.options) : avg_pool2d(in[0], c.options);
        },
        {x});
    EXPECT_TRUE(r.ok) << (is_max ? "max: " : "avg: ") << r.message;
  }
}

}  // namespace
}  // namespace kiln
