// Losses, dropout and the shape ops on cuda against cpu (gpu label: SIM in CI, the GPU
// when one is lent). Losses: every case of loss_cases.h x dtype x row length (each team
// size of kernels/cuda/loss.cu: 4 lanes, a warp, a block) forward and backward, another
// class axis, label checks. Dropout: the same mask bit for bit. Indexing ops: take,
// gather, scatter_add (atomics), one_hot, concat, pad. Every test skips without cuda.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/dropout.h"
#include "kiln/kernels/loss.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln_test.h"
#include "loss_cases.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;
using test::LossCase;

constexpr Device kCuda0 = Device::cuda(0);

// Rows of 10 (4-lane teams), 100 (a warp), 4100 (a block per row), an empty batch, 3-D.
const Shape kShapes[] = {{37, 10}, {9, 100}, {3, 4100}, {0, 5}, {2, 3, 7}};

test::Tolerance cross_device_tolerance(DType dt) {
  // Both devices compute in float32 (float64 for float64) but sum rows in another order.
  return dt == float32 ? test::Tolerance{1e-5, 1e-5} : test::tolerance_for(dt);
}

struct Inputs {
  Tensor y_true, y_pred;
};

Inputs make_inputs(const LossCase& c, const Shape& shape, DType dt, Device device, Layout layout) {
  const std::int64_t classes = shape[shape.ndim() - 1];
  const std::int64_t rows = classes ? shape.numel() / classes : 0;
  const Tensor p =
      test::make_input(test::loss_values(c.predictions, shape.numel(), 3), shape, dt, device, layout);
  if (c.targets == test::Targets::labels) {
    Shape label_shape = shape;
    label_shape.erase(shape.ndim() - 1);
    return {test::make_input(test::loss_values(c.targets, rows, classes, 4), label_shape, int64, device,
                             Layout::contiguous),
            p};
  }
  return {test::make_input(test::loss_values(c.targets, rows, classes, 4), shape, dt, device, layout), p};
}

// The loss and its gradient on `device` for a mean reduction and for none.
struct Result {
  Tensor none, mean, grad;
};

Result run(const LossCase& c, const Shape& shape, DType dt, Device device, Layout layout, std::int64_t axis) {
  Inputs in = make_inputs(c, shape, dt, device, layout);
  in.y_pred.requires_grad_();
  const std::int64_t classes = shape[static_cast<int>(axis < 0 ? shape.ndim() + axis : axis)];
  // Poison the per-sample buffer the kernel fills, so an unwritten row shows as NaN.
  test::poison_next_allocation(static_cast<std::size_t>(classes ? shape.numel() / classes : 0) * 4, device);
  Result r{c.op(in.y_true, in.y_pred, Reduction::none, axis),
           c.op(in.y_true, in.y_pred, Reduction::mean, axis),
           {}};
  backward(r.mean);
  r.grad = in.y_pred.grad();
  return r;
}

class LossCuda : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossCuda, ForwardAndBackwardMatchCpuForEveryDtypeAndTeamSize) {
  KILN_REQUIRE_CUDA();
  const LossCase& c = GetParam();
  for (DType dt : test::kFloatDTypes) {
    for (const Shape& shape : kShapes) {
      for (Layout layout : {Layout::contiguous, Layout::transposed}) {
        SCOPED_TRACE(std::string(name(dt)) + " " + shape.str() + " " + test::layout_name(layout));
        const Result cpu = run(c, shape, dt, kCpu, layout, -1);
        const Result gpu = run(c, shape, dt, kCuda0, layout, -1);
        EXPECT_EQ(gpu.none.device(), kCuda0);
        EXPECT_TRUE(test::all_close(gpu.none, cpu.none, cross_device_tolerance(dt)));
        EXPECT_TRUE(test::all_close(gpu.mean, cpu.mean, cross_device_tolerance(dt)));
        ASSERT_TRUE(gpu.grad.defined());
        EXPECT_EQ(gpu.grad.device(), kCuda0);
        EXPECT_TRUE(test::all_close(gpu.grad, cpu.grad, cross_device_tolerance(dt)));
      }
    }
  }
}

// The cross-entropies take a class axis; the other losses reduce over Keras' axis -1.
class LossCudaAxis : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossCudaAxis, ClassAxisInTheMiddleMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const LossCase& c = GetParam();
  // (4, 70, 3) with classes on axis 1: rows strided by 3 in every team size's code path.
  for (const Shape& shape : {Shape{4, 70, 3}, Shape{2, 4100, 2}}) {
    Inputs cpu_in = make_inputs(c, {shape[0], shape[2], shape[1]}, float32, kCpu, Layout::contiguous);
    const Tensor p = cpu_in.y_pred.permute({0, 2, 1}).contiguous();
    const Tensor t =
        cpu_in.y_true.ndim() == 3 ? cpu_in.y_true.permute({0, 2, 1}).contiguous() : cpu_in.y_true;
    const Tensor expected = c.op(t, p, Reduction::none, 1);
    const Tensor actual = c.op(t.to(kCuda0), p.to(kCuda0), Reduction::none, 1);
    EXPECT_TRUE(test::all_close(actual, expected, cross_device_tolerance(float32))) << shape;
  }
}

TEST_P(LossCuda, GradientMatchesCentralDifferencesOnCuda) {
  KILN_REQUIRE_CUDA();
  const LossCase& c = GetParam();
  Inputs in = make_inputs(c, {3, 5}, float64, kCuda0, Layout::contiguous);
  in.y_pred.requires_grad_();
  const auto r =
      gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0], x[1], Reduction::none, -1); },
                {in.y_true, in.y_pred}, {.atol = 1e-8, .rtol = 1e-6});
  EXPECT_TRUE(r.ok) << r.message;
}

INSTANTIATE_TEST_SUITE_P(Losses, LossCuda, ::testing::ValuesIn(test::loss_cases()),
                         test::loss_case_name<::testing::TestParamInfo<LossCase>>);
INSTANTIATE_TEST_SUITE_P(Losses, LossCudaAxis, ::testing::ValuesIn(test::loss_cases_with_axis()),
                         test::loss_case_name<::testing::TestParamInfo<LossCase>>);

TEST(LossCudaErrors, OutOfRangeLabelsAndMixedDevicesAreRejected) {
  KILN_REQUIRE_CUDA();
  const Tensor p = zeros({4, 3}, {.device = kCuda0});
  try {
    sparse_categorical_crossentropy(from_vector<std::int64_t>({0, 2, 9, -1}, {.device = kCuda0}), p);
    FAIL() << "no error";
  } catch (const IndexError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("label 9"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("3 classes"));
  }
  EXPECT_THROW(mean_squared_error(zeros({4, 3}, {.device = kCpu}), p), DeviceError);
}

// ---- dropout ----

TEST(DropoutCuda, SameSeedGivesTheSameMaskAsCpuBitForBit) {
  KILN_REQUIRE_CUDA();
  for (DType dt : test::kFloatDTypes) {
    for (const Shape& shape : {Shape{1}, Shape{7}, Shape{33, 65}, Shape{4099}}) {
      // offset: misaligned for vector loads, so the scalar path runs too.
      for (Layout layout : {Layout::contiguous, Layout::offset, Layout::strided}) {
        SCOPED_TRACE(std::string(name(dt)) + " " + shape.str() + " " + test::layout_name(layout));
        const auto values = test::uniform_values(shape.numel(), -2, 2, 9);
        const Tensor x_cpu = test::make_input(values, shape, dt, kCpu, layout).requires_grad_();
        const Tensor x_gpu = test::make_input(values, shape, dt, kCuda0, layout).requires_grad_();
        Generator g_cpu(77), g_gpu(77);
        const Tensor y_cpu = dropout(x_cpu, 0.35, true, &g_cpu), y_gpu = dropout(x_gpu, 0.35, true, &g_gpu);
        EXPECT_EQ(y_gpu.device(), kCuda0);
        EXPECT_TRUE(test::all_close(y_gpu, y_cpu, {0, 0}));
        const auto g = test::uniform_values(shape.numel(), -1, 1, 10);
        backward(y_cpu, test::make_input(g, shape, dt, kCpu, Layout::contiguous));
        backward(y_gpu, test::make_input(g, shape, dt, kCuda0, Layout::contiguous));
        EXPECT_TRUE(test::all_close(x_gpu.grad(), x_cpu.grad(), {0, 0}));
      }
    }
  }
}

// ---- indexing and shape ops ----

Tensor indices(const std::vector<std::int64_t>& v, const Shape& shape, Device device, DType dt = int64) {
  return from_vector<std::int64_t>(v, shape, {.device = kCpu}).to(device, dt);
}

Tensor data(const Shape& shape, DType dt, Device device, Layout layout = Layout::contiguous) {
  return test::make_input(test::uniform_values(shape.numel(), -3, 3, 21), shape, dt, device, layout);
}

TEST(ShapeOpsCuda, TakeGatherAndOneHotMatchCpu) {
  KILN_REQUIRE_CUDA();
  const std::vector<std::int64_t> picks{4, -1, 0, 2, 2, -5}, along{1, 3, -1, 0, 2, 2}, hot{1, 3, 0};
  for (DType dt : {float32, float16, float64, int32}) {
    for (DType idt : {int32, int64}) {
      SCOPED_TRACE(std::string(name(dt)) + " indices " + std::string(name(idt)));
      const Tensor x_cpu = data({3, 5, 4}, dt, kCpu, Layout::transposed);
      const Tensor x_gpu = data({3, 5, 4}, dt, kCuda0, Layout::transposed);
      test::poison_next_allocation(static_cast<std::size_t>(3 * 6 * 4) * itemsize(dt), kCuda0);
      EXPECT_TRUE(test::all_close(take(x_gpu, indices(picks, {2, 3}, kCuda0, idt), 1),
                                  take(x_cpu, indices(picks, {2, 3}, kCpu, idt), 1), {0, 0}));
      EXPECT_TRUE(test::all_close(gather(x_gpu, indices(along, {3, 1, 2}, kCuda0, idt), 2),
                                  gather(x_cpu, indices(along, {3, 1, 2}, kCpu, idt), 2), {0, 0}));
      EXPECT_TRUE(test::all_close(one_hot(indices(hot, {3}, kCuda0, idt), 4, dt),
                                  one_hot(indices(hot, {3}, kCpu, idt), 4, dt), {0, 0}));
    }
  }
}

TEST(ShapeOpsCuda, ScatterAddAccumulatesRepeatedIndicesWithAtomics) {
  KILN_REQUIRE_CUDA();
  // 40 indices into 3 rows, negative ones among them: heavy collisions.
  std::vector<std::int64_t> picks;
  for (int i = 0; i < 40; ++i) picks.push_back(i % 3 - (i % 2 ? 3 : 0));
  for (DType dt : {float32, float16, bfloat16, float64, int32, int64}) {
    SCOPED_TRACE(name(dt));
    const Tensor expected = scatter_add({3, 65}, indices(picks, {40}, kCpu), data({40, 65}, dt, kCpu), 0);
    const Tensor actual = scatter_add({3, 65}, indices(picks, {40}, kCuda0), data({40, 65}, dt, kCuda0), 0);
    EXPECT_EQ(actual.dtype(), dt);
    // 16-bit data accumulates in float32 on both devices, then rounds once.
    EXPECT_TRUE(
        test::all_close(actual, expected, is_floating(dt) ? cross_device_tolerance(dt) : test::Tolerance{}));
  }
}

TEST(ShapeOpsCuda, BackwardsOfTakeAndGatherMatchCpu) {
  KILN_REQUIRE_CUDA();
  const std::vector<std::int64_t> picks{2, 0, 2, -1, 1, 2};
  for (DType dt : {float32, bfloat16}) {
    Tensor grads[2];
    for (int k = 0; k < 2; ++k) {
      const Device d = k ? kCuda0 : kCpu;
      const Tensor w = data({3, 8}, dt, d).requires_grad_();
      const Tensor picked = take(w, indices(picks, {6}, d), 0);
      const Tensor along = gather(w, indices(picks, {2, 3}, d), 1);
      backward(picked, data({6, 8}, dt, d));
      backward(along, data({2, 3}, dt, d));
      grads[k] = w.grad();
    }
    EXPECT_TRUE(test::all_close(grads[1], grads[0], cross_device_tolerance(dt))) << dt;
  }
}

TEST(ShapeOpsCuda, ConcatPadAndIndexErrorsOnCuda) {
  KILN_REQUIRE_CUDA();
  const Tensor a = data({2, 3}, float32, kCuda0, Layout::transposed), b = data({2, 5}, float32, kCuda0);
  EXPECT_TRUE(test::all_close(concat({a, b}, 1), concat({a.to(kCpu), b.to(kCpu)}, 1), {0, 0}));
  EXPECT_TRUE(test::all_close(pad(a, {{1, 0}, {2, 2}}, 3.0), pad(a.to(kCpu), {{1, 0}, {2, 2}}, 3.0), {0, 0}));
  try {
    take(a, indices({0, 7}, {2}, kCuda0), 1);
    FAIL() << "no error";
  } catch (const IndexError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("index 7"));
  }
  EXPECT_THROW(take(a, indices({0}, {1}, kCpu), 1), DeviceError);
}

}  // namespace
}  // namespace kiln
