// batch_norm and layer_norm on cuda against cpu (gpu label: SIM in CI, the GPU when one is
// lent): forward, running statistics and every gradient, for each dtype and for shapes at
// the kernels' edges (channel tiles of 1 to 32 lanes, several tiles, several row splits,
// 16-byte packets or not; layer norm rows shared by a warp, a warp each, a block each);
// a large-mean input, NaN, gradient checks on cuda, running statistics in other dtypes
// and layouts, and mixed devices. Every test skips without cuda.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/normalization.h"
#include "kiln/kernels/reduce.h"
#include "kiln_test.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

constexpr Device kCuda0 = Device::cuda(0);

// Both devices keep statistics in float (double for double) but sum in other orders, and
// cpu accumulates in double: a few float ulps apart, more for the 16-bit outputs.
test::Tolerance cross_device_tolerance(DType dt) {
  switch (dt) {
    case DType::float64: return {1e-10, 1e-10};
    case DType::float32: return {5e-5, 5e-5};
    case DType::float16: return {4e-3, 4e-3};
    default: return {3e-2, 3e-2};
  }
}

// The outputs and gradients of one normalization call on a device.
struct Result {
  Tensor y, running_mean, running_var, dx, dgamma, dbeta;
};

// x from `values` (shape, dtype, layout) on `device`, gamma / beta / running stats from
// fixed seeds; backward of sum(y * w) with a fixed w, so every gradient term matters.
Result run_norm(bool batch, const std::vector<double>& values, const Shape& shape, DType dt, Device device,
                Layout layout, const BatchNormOptions& options = {}) {
  const std::int64_t C = shape[shape.ndim() - 1];
  Tensor x = test::make_input(values, shape, dt, device, layout).requires_grad_();
  const auto param = [&](double lo, double hi, std::uint64_t seed) {
    return from_vector<double>(test::uniform_values(C, lo, hi, seed), {.device = kCpu}).to(device, dt);
  };
  Tensor gamma = param(0.5, 2, 1).requires_grad_(), beta = param(-1, 1, 2).requires_grad_();
  Result r;
  r.running_mean = param(-1, 1, 3);
  r.running_var = param(0.5, 2, 4);
  // Poison y's allocation, so an element the kernel forgets shows as NaN.
  test::poison_next_allocation(static_cast<std::size_t>(shape.numel()) * itemsize(dt), device);
  r.y = batch ? batch_norm(x, gamma, beta, r.running_mean, r.running_var, options) : layer_norm(x, gamma, beta);
  const Tensor w = from_vector<double>(test::uniform_values(shape.numel(), -1, 1, 9), shape, {.device = kCpu})
                       .to(device, dt);
  backward(sum(mul(r.y, w)));
  r.dx = x.grad();
  r.dgamma = gamma.grad();
  r.dbeta = beta.grad();
  return r;
}

void expect_same(const Result& gpu, const Result& cpu, DType dt, bool batch) {
  const test::Tolerance tol = cross_device_tolerance(dt);
  EXPECT_EQ(gpu.y.device(), kCuda0);
  EXPECT_TRUE(test::all_close(gpu.y, cpu.y, tol)) << "y";
  if (batch) {
    EXPECT_TRUE(test::all_close(gpu.running_mean, cpu.running_mean, tol)) << "running_mean";
    EXPECT_TRUE(test::all_close(gpu.running_var, cpu.running_var, tol)) << "running_var";
  }
  // Gradients sum over rows: tolerances relative to their size.
  EXPECT_TRUE(test::all_close(gpu.dx, cpu.dx, tol)) << "dx";
  EXPECT_TRUE(test::all_close(gpu.dgamma, cpu.dgamma, {tol.atol * 10, tol.rtol * 10})) << "dgamma";
  EXPECT_TRUE(test::all_close(gpu.dbeta, cpu.dbeta, {tol.atol * 10, tol.rtol * 10})) << "dbeta";
}

std::vector<double> channel_values(const Shape& shape, std::uint64_t seed) {
  std::vector<double> v = test::uniform_values(shape.numel(), -3, 3, seed);
  const std::int64_t C = shape[shape.ndim() - 1];
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += 0.7 * static_cast<double>(static_cast<std::int64_t>(i) % C);
  return v;
}

// (rows, C) at the tile edges: C = 33 (two tiles, the second of one channel), 5 (8 lanes,
// two row splits), 16 (NHWC, 16 lanes), 7 with one row, an empty batch, C = 1 (one lane,
// 256 rows deep), C = 24 (16-byte packets for every dtype), 40 with 600 rows (ten splits).
const Shape kBatchShapes[] = {{37, 33}, {300, 5}, {2, 3, 5, 16}, {1, 7}, {0, 4}, {129, 1}, {4, 6, 24}, {600, 40}};

TEST(BatchNormCuda, TrainingAndInferenceMatchCpuForEveryDtype) {
  KILN_REQUIRE_CUDA();
  for (const Shape& shape : kBatchShapes) {
    for (const DType dt : test::kFloatDTypes) {
      for (const bool training : {true, false}) {
        SCOPED_TRACE(shape.str() + " " + std::string(name(dt)) + (training ? " training" : " inference"));
        const std::vector<double> v = channel_values(shape, 5);
        const Result cpu = run_norm(true, v, shape, dt, kCpu, Layout::contiguous, {.training = training});
        const Result gpu = run_norm(true, v, shape, dt, kCuda0, Layout::contiguous, {.training = training});
        expect_same(gpu, cpu, dt, true);
      }
    }
  }
}

TEST(BatchNormCuda, NonContiguousAndMisalignedInputsMatchCpu) {
  KILN_REQUIRE_CUDA();
  for (const Layout layout : {Layout::transposed, Layout::strided, Layout::offset, Layout::expanded}) {
    for (const Shape& shape : {Shape{37, 33}, Shape{4, 6, 24}}) {
      SCOPED_TRACE(shape.str() + " " + test::layout_name(layout));
      const std::vector<double> v = channel_values(shape, 6);
      expect_same(run_norm(true, v, shape, float32, kCuda0, layout), run_norm(true, v, shape, float32, kCpu, layout),
                  float32, true);
    }
  }
}

TEST(BatchNormCuda, LargeMeanMatchesFloat64) {
  KILN_REQUIRE_CUDA();
  // float32 1e4 + N(0, 1) across 4 splits of rows: the shifted Welford keeps the variance
  // (Note [Shifted Welford]); E[x^2] - E[x]^2 in float32 would lose all of it.
  Generator gen(11);
  const Tensor x = normal({2048, 3}, 1e4, 1, {.device = kCpu}, &gen);
  Tensor rm_c = zeros({3}, {.device = kCpu}), rv_c = ones({3}, {.device = kCpu});
  Tensor rm_g = zeros({3}, {.device = kCuda0}), rv_g = ones({3}, {.device = kCuda0});
  const Tensor y_f64 = batch_norm(x.to(float64), Tensor(), Tensor(), rm_c.to(float64), rv_c.to(float64));
  const Tensor y_gpu = batch_norm(x.to(kCuda0), Tensor(), Tensor(), rm_g, rv_g);
  EXPECT_TRUE(test::all_close(y_gpu, y_f64, {2e-3, 2e-3}));
  batch_norm(x, Tensor(), Tensor(), rm_c, rv_c);  // the cpu's float32 running statistics
  EXPECT_TRUE(test::all_close(rv_g, rv_c, {1e-5, 1e-5}));
  EXPECT_TRUE(test::all_close(rm_g, rm_c, {1e-5, 1e-6}));
  // Layer norm rows of 2048 (a block per row) of 1e4 + noise.
  const Tensor xt = x.t().contiguous();
  EXPECT_TRUE(test::all_close(layer_norm(xt.to(kCuda0), Tensor(), Tensor()),
                              layer_norm(xt.to(float64), Tensor(), Tensor()), {2e-3, 2e-3}));
}

TEST(BatchNormCuda, NaNStaysInItsChannelOrRowAndOneRowGivesBeta) {
  KILN_REQUIRE_CUDA();
  std::vector<double> v = channel_values({300, 5}, 8);
  v[5 * 200 + 3] = NAN;  // row 200, channel 3: the second row split
  const Tensor x = from_vector<double>(v, {300, 5}, {.device = kCpu}).to(kCuda0, float32);
  Tensor rm = zeros({5}, {.device = kCuda0}), rv = ones({5}, {.device = kCuda0});
  const std::vector<double> y = batch_norm(x, Tensor(), Tensor(), rm, rv).to_vector<double>();
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (std::isnan(y[i]) != (i % 5 == 3)) {
      ADD_FAILURE() << "element " << i << " is " << y[i];
      break;
    }
  }
  EXPECT_TRUE(std::isnan(rv.at<float>({3})));
  EXPECT_FALSE(std::isnan(rv.at<float>({2})));
  // Layer norm over rows of 5 (8 lanes, four rows to a warp): row 200 only.
  const std::vector<double> yl = layer_norm(x, Tensor(), Tensor()).to_vector<double>();
  for (std::size_t i = 0; i < yl.size(); ++i) {
    if (std::isnan(yl[i]) != (i / 5 == 200)) {
      ADD_FAILURE() << "layer_norm element " << i << " is " << yl[i];
      break;
    }
  }
  // One row: y is beta exactly; the running variance decays.
  const Tensor beta = from_vector<float>({0.1f, -0.2f, 0.3f}, {.device = kCuda0});
  Tensor rm1 = zeros({3}, {.device = kCuda0}), rv1 = ones({3}, {.device = kCuda0});
  const Tensor y1 = batch_norm(from_vector<float>({3, 1e4f, -7}, {1, 1, 3}, {.device = kCuda0}),
                               full({3}, 2.0, {.device = kCuda0}), beta, rm1, rv1);
  EXPECT_EQ(y1.flatten().to_vector<float>(), beta.to_vector<float>());
  EXPECT_EQ(rv1.to_vector<float>(), std::vector<float>(3, 0.99f));
}

TEST(BatchNormCuda, RunningStatisticsInOtherDtypesAndLayoutsAreUpdatedInPlace) {
  KILN_REQUIRE_CUDA();
  const Tensor x = from_vector<double>(channel_values({50, 6}, 3), {50, 6}, {.device = kCpu});
  Tensor rm_ref = zeros({6}, {.device = kCpu}), rv_ref = ones({6}, {.device = kCpu});
  batch_norm(x.to(float16), Tensor(), Tensor(), rm_ref, rv_ref);
  // float32 stats for float16 x (in place), float16 stats (copied back), a strided view.
  Tensor rm32 = zeros({6}, {.device = kCuda0}), rv32 = ones({6}, {.device = kCuda0});
  Tensor rm16 = zeros({6}, {.dtype = float16, .device = kCuda0}), rv16 = ones({6}, {.dtype = float16, .device = kCuda0});
  Tensor buffer = zeros({6, 2}, {.device = kCuda0});  // columns: running mean, running var (stride 2)
  buffer.select(1, 1).fill_(1.0);
  Tensor rm_view = buffer.select(1, 0), rv_view = buffer.select(1, 1);
  const Tensor xh = x.to(kCuda0, float16);
  batch_norm(xh, Tensor(), Tensor(), rm32, rv32);
  batch_norm(xh, Tensor(), Tensor(), rm16, rv16);
  batch_norm(xh, Tensor(), Tensor(), rm_view, rv_view);
  EXPECT_TRUE(test::all_close(rm32, rm_ref, {1e-6, 1e-5}));
  EXPECT_TRUE(test::all_close(rv32, rv_ref, {1e-6, 1e-5}));
  EXPECT_TRUE(test::all_close(rm16, rm_ref, test::tolerance_for(float16)));
  EXPECT_TRUE(test::all_close(rv16, rv_ref, test::tolerance_for(float16)));
  EXPECT_TRUE(test::all_close(rm_view, rm_ref, {1e-6, 1e-5}));
  EXPECT_TRUE(test::all_close(rv_view, rv_ref, {1e-6, 1e-5}));
}

TEST(BatchNormCuda, GradientsMatchCentralDifferencesOnCuda) {
  KILN_REQUIRE_CUDA();
  for (const bool training : {true, false}) {
    const Tensor x = test::make_input(channel_values({5, 2, 3}, 2), {5, 2, 3}, float64, kCuda0, Layout::contiguous);
    const Tensor gamma = uniform({3}, 0.5, 2, {.dtype = float64, .device = kCpu}).to(kCuda0);
    const Tensor beta = uniform({3}, -1, 1, {.dtype = float64, .device = kCpu}).to(kCuda0);
    const Tensor rm = zeros({3}, {.dtype = float64, .device = kCuda0}), rv = ones({3}, {.dtype = float64, .device = kCuda0});
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return batch_norm(in[0], in[1], in[2], rm, rv, {.training = training});
        },
        {x, gamma, beta});
    EXPECT_TRUE(r.ok) << (training ? "training: " : "inference: ") << r.message;
  }
  const Tensor xl = test::make_input(test::uniform_values(21, -2, 2, 3), {3, 7}, float64, kCuda0, Layout::contiguous);
  const Tensor gl = uniform({7}, 0.5, 2, {.dtype = float64, .device = kCpu}).to(kCuda0);
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); },
                           {xl, gl, zeros({7}, {.dtype = float64, .device = kCuda0})});
  EXPECT_TRUE(r.ok) << "layer_norm: " << r.message;
}

TEST(BatchNormCuda, MixedDevicesRaiseNamingBoth) {
  KILN_REQUIRE_CUDA();
  const Tensor x = zeros({4, 3}, {.device = kCuda0});
  const Tensor on_cpu = ones({3}, {.device = kCpu}), on_gpu = ones({3}, {.device = kCuda0});
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { batch_norm(x, on_cpu, on_gpu, on_gpu, on_gpu); },
           [&] { batch_norm(x, on_gpu, on_gpu, on_gpu, on_cpu); },
           [&] { layer_norm(x, Tensor(), on_cpu); }}) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const DeviceError& e) {
      EXPECT_NE(std::string(e.what()).find("_norm"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
    }
  }
}

// Rows of 10 (16 lanes: two rows per warp; 300 rows: dgamma / dbeta over three row
// splits), 100 (a warp, 4 per lane), 512 (16 per lane), 513 and 1100 (a block per row),
// 1 (y = beta), a 1-D input, an empty batch.
const Shape kLayerShapes[] = {{300, 10}, {9, 100}, {3, 512}, {2, 513}, {2, 1100}, {4, 1}, {7}, {0, 5}};

TEST(LayerNormCuda, ForwardAndBackwardMatchCpuForEveryDtype) {
  KILN_REQUIRE_CUDA();
  for (const Shape& shape : kLayerShapes) {
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : {Layout::contiguous, Layout::transposed}) {
        if (layout == Layout::transposed && dt != float32) continue;
        SCOPED_TRACE(shape.str() + " " + std::string(name(dt)) + " " + test::layout_name(layout));
        const std::vector<double> v = channel_values(shape, 7);
        expect_same(run_norm(false, v, shape, dt, kCuda0, layout), run_norm(false, v, shape, dt, kCpu, layout), dt,
                    false);
      }
    }
  }
}

}  // namespace
}  // namespace kiln
