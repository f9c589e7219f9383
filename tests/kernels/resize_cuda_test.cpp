// upsample2d and zero_pad2d on cuda against cpu (gpu label: SIM in CI, the GPU when one is
// lent): forward and backward for every dtype, nearest and bilinear, odd sizes and odd
// factors, contiguous and non-contiguous inputs, NaN/Inf, and gradient checks run on the
// device. Every test skips without cuda.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/resize.h"
#include "kiln_test.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

constexpr Device kCuda0 = Device::cuda(0);

struct ResizeCase {
  Shape shape;  // (N, H, W, C); small: SIM runs a fiber per cuda thread
  std::array<std::int64_t, 2> size;
};

const ResizeCase kCases[] = {
    {{2, 3, 5, 3}, {2, 2}},   // Keras' default factor, odd sizes
    {{1, 4, 3, 10}, {3, 2}},  // odd factor: exact source hits
    {{1, 1, 1, 3}, {2, 3}},   // one pixel: every tap clamped
    {{2, 3, 2, 1}, {1, 3}},   // factor 1 on one axis
};

// The same formulas and summation order on both devices; the device may fuse multiply-adds.
test::Tolerance cross_device_tolerance(DType dt) {
  return dt == float32 ? test::Tolerance{1e-6, 1e-5} : test::tolerance_for(dt);
}

struct Result {
  Tensor y, gx;
};

Result run(const std::vector<double>& values, const ResizeCase& c, const char* mode, DType dt, Device device,
           Layout layout) {
  Tensor x = test::make_input(values, c.shape, dt, device, layout);
  x.requires_grad_();
  const Shape out_shape{c.shape[0], c.shape[1] * c.size[0], c.shape[2] * c.size[1], c.shape[3]};
  test::poison_next_allocation(static_cast<std::size_t>(out_shape.numel()) * itemsize(dt), device);
  Result r;
  r.y = upsample2d(x, c.size, mode);
  const Tensor gy = test::make_input(test::uniform_values(r.y.numel(), -1, 1, 5), out_shape, dt, device,
                                     Layout::contiguous);
  test::poison_next_allocation(x.nbytes(), device);
  backward(r.y, gy);
  r.gx = x.grad();
  return r;
}

TEST(Upsample2dCuda, ForwardAndBackwardMatchCpuForEveryDtypeAndLayout) {
  KILN_REQUIRE_CUDA();
  for (const ResizeCase& c : kCases) {
    std::vector<double> values = test::uniform_values(c.shape.numel(), -4, 4, 23);
    values[0] = INFINITY;  // stays where it has weight on both devices
    if (values.size() > 2) values[2] = NAN;
    for (const char* mode : {"nearest", "bilinear"}) {
      for (const DType dt : test::kFloatDTypes) {
        for (const Layout layout : {Layout::contiguous, Layout::transposed}) {
          SCOPED_TRACE(std::string(mode) + " " + c.shape.str() + " size (" + std::to_string(c.size[0]) + ", " +
                       std::to_string(c.size[1]) + "), " + std::string(name(dt)) + ", " + test::layout_name(layout));
          const Result cpu = run(values, c, mode, dt, kCpu, layout);
          const Result gpu = run(values, c, mode, dt, kCuda0, layout);
          EXPECT_EQ(gpu.y.device(), kCuda0);
          EXPECT_TRUE(test::all_close(gpu.y, cpu.y, cross_device_tolerance(dt)));
          ASSERT_TRUE(gpu.gx.defined());
          EXPECT_TRUE(test::all_close(gpu.gx, cpu.gx, cross_device_tolerance(dt)));
        }
      }
    }
  }
}

TEST(Upsample2dCuda, GradientMatchesCentralDifferencesOnCuda) {
  KILN_REQUIRE_CUDA();
  const Shape shape{1, 2, 3, 2};
  const Tensor x = test::make_input(test::uniform_values(shape.numel(), -2, 2, 9), shape, float64, kCuda0,
                                    Layout::strided);
  for (const char* mode : {"nearest", "bilinear"}) {
    const auto r = gradcheck([&](const std::vector<Tensor>& in) { return upsample2d(in[0], {3, 2}, mode); }, {x});
    EXPECT_TRUE(r.ok) << mode << ": " << r.message;
  }
}

TEST(ZeroPad2dCuda, MatchesCpuAndRecordsItsBackward) {
  KILN_REQUIRE_CUDA();
  const Shape shape{2, 3, 5, 3};
  std::vector<double> v = test::uniform_values(shape.numel(), -4, 4, 12);
  v[1] = NAN;
  v[5] = -INFINITY;
  for (const DType dt : {float32, float16, bfloat16, float64}) {
    for (const Layout layout : {Layout::contiguous, Layout::transposed}) {
      Result r[2];
      for (const Device device : {kCpu, kCuda0}) {
        Tensor x = test::make_input(v, shape, dt, device, layout);
        x.requires_grad_();
        const Tensor y = zero_pad2d(x, {2, 1, 0, 3});
        backward(y, test::make_input(test::uniform_values(y.numel(), -1, 1, 3), y.shape(), dt, device,
                                     Layout::contiguous));
        r[device.is_cuda()] = {y, x.grad()};
      }
      EXPECT_EQ(r[1].y.shape(), Shape({2, 6, 8, 3}));
      EXPECT_EQ(r[1].y.device(), kCuda0);
      EXPECT_TRUE(test::all_close(r[1].y, r[0].y, {0, 0})) << name(dt);
      EXPECT_TRUE(test::all_close(r[1].gx, r[0].gx, {0, 0})) << name(dt);
    }
  }
  const Tensor xi = from_vector<std::int64_t>({1, 2, 3, 4}, {1, 2, 2, 1}).to(kCuda0, int32);
  EXPECT_TRUE(test::all_close(zero_pad2d(xi, {0, 0, 1, 0}), {0, 1, 2, 0, 3, 4}, {0, 0}));
}

}  // namespace
}  // namespace kiln
