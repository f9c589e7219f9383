// The reductions and softmax on cuda against cpu (a real GPU, or SIM in CI): the shared
// tables plus shapes that pick each kernel (a warp per row, a block per row, two passes
// over a few long rows, columns with K split across the grid), backward passes, and
// outputs poisoned before the kernels run.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/softmax.h"
#include "kiln_test.h"
#include "op_test_util.h"
#include "reduce_reference.h"
#include "softmax_reference.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

const Device kCuda = Device::cuda(0);

// The shared table plus the kernel-selection edges of kernels/cuda/reduce.cu.
std::vector<test::ReduceCase> cuda_reduce_cases() {
  std::vector<test::ReduceCase> cases = test::reduce_cases();
  const std::vector<test::ReduceCase> extra = {
      {{9, 512}, {1}, false},    {{9, 513}, {1}, false},   {{2, 70001}, {1}, false},  // warp / block / two-pass
      {{100003}, {}, false},     {{5000, 7}, {0}, false},  {{3, 700, 40}, {1}, true},  // split K columns
      {{33, 2, 65}, {0, 2}, false},
      {{1000, 3}, {1}, false},   {{77, 16}, {1}, false},   {{45, 1}, {1}, false},   // rows sharing a warp
  };
  cases.insert(cases.end(), extra.begin(), extra.end());
  return cases;
}

TEST(ReduceCuda, MatchesCpuAcrossShapesDTypesAndLayouts) {
  KILN_REQUIRE_CUDA();
  const DType dtypes[] = {float32, float16, float64, int32};
  for (const test::ReduceCase& c : cuda_reduce_cases()) {
    for (const DType dt : dtypes) {
      for (const Layout layout : {Layout::contiguous, Layout::offset, Layout::transposed}) {
        if (layout != Layout::contiguous && (c.shape.ndim() == 0 || c.shape.numel() == 0)) continue;
        // SIM time: the largest shapes run contiguous, in float32 and int32 only.
        const bool large = c.shape.numel() > 50000;
        if (large && (layout != Layout::contiguous || dt == float16 || dt == float64)) continue;
        const Tensor x = test::reduce_input(c.shape, dt, kCuda, layout, 21);
        const Tensor xc = x.to(kCpu);
        for (const test::ReduceOpSpec& op : test::reduce_ops()) {
          if (!op.applies(c)) continue;
          SCOPED_TRACE(std::string(op.name) + " of " + c.shape.str() + " axes " + test::axes_str(c.axes) + ", " +
                       std::string(name(dt)) + ", " + test::layout_name(layout));
          test::poison_next_allocation(
              static_cast<std::size_t>(test::reduced_shape(c.shape, c.axes, c.keepdims).numel()) * 8, kCuda);
          const Tensor y = op.run(x, c.axes, c.keepdims);
          EXPECT_EQ(y.device(), kCuda);
          EXPECT_TRUE(test::all_close(y, op.run(xc, c.axes, c.keepdims),
                                      op.tolerance(dt, test::group_size(c.shape, c.axes))));
        }
      }
    }
  }
}

TEST(ReduceCuda, BackwardMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const test::ReduceCase cases[] = {{{6, 40}, {1}, false}, {{40, 6}, {0}, true}, {{3, 5, 7}, {0, 2}, false},
                                    {{2, 1500}, {1}, false}};
  for (const test::ReduceCase& c : cases) {
    for (const test::ReduceOpSpec& op : test::reduce_ops()) {
      if (!op.differentiable) continue;
      SCOPED_TRACE(std::string(op.name) + " of " + c.shape.str() + " axes " + test::axes_str(c.axes));
      Tensor xc = test::distinct_input(c.shape, 5);
      Tensor xg = xc.to(kCuda);
      xc.requires_grad_();
      xg.requires_grad_();
      const Tensor g = test::distinct_input(test::reduced_shape(c.shape, c.axes, c.keepdims), 6);
      backward(op.run(xc, c.axes, c.keepdims), g);
      backward(op.run(xg, c.axes, c.keepdims), g.to(kCuda));
      EXPECT_EQ(xg.grad().device(), kCuda);
      EXPECT_TRUE(test::all_close(xg.grad(), xc.grad(), {1e-12, 1e-10}));
    }
  }
}

TEST(ReduceCuda, NaNPropagatesLikeCpu) {
  KILN_REQUIRE_CUDA();
  const test::ReduceCase cases[] = {{{6, 40}, {1}, false}, {{3, 2000}, {1}, false}, {{40, 6}, {0}, false},
                                    {{70001}, {0}, false}};
  for (const test::ReduceCase& c : cases) {
    std::vector<double> v = test::uniform_values(c.shape.numel(), -1, 1, 2);
    for (std::size_t i = 0; i < v.size(); i += 37) v[i] = std::nan("");
    const Tensor xc = from_vector<double>(v, c.shape).to(float32);
    const Tensor xg = xc.to(kCuda);
    for (const test::ReduceOpSpec& op : test::reduce_ops()) {
      if (!op.applies(c)) continue;
      SCOPED_TRACE(std::string(op.name) + " of " + c.shape.str() + " with NaNs");
      EXPECT_TRUE(test::all_close(op.run(xg, c.axes, c.keepdims), op.run(xc, c.axes, c.keepdims),
                                  op.tolerance(float32, test::group_size(c.shape, c.axes))));
    }
    for (const bool log : {false, true}) {
      const Tensor y = log ? log_softmax(xg, c.axes[0]) : softmax(xg, c.axes[0]);
      EXPECT_TRUE(test::all_close(y, log ? log_softmax(xc, c.axes[0]) : softmax(xc, c.axes[0]),
                                  test::softmax_tolerance(float32)))
          << (log ? "log_softmax" : "softmax") << " of " << c.shape << " with NaNs";
    }
  }
}

TEST(SoftmaxCuda, MatchesCpuForwardAndBackward) {
  KILN_REQUIRE_CUDA();
  std::vector<test::SoftmaxCase> cases = test::softmax_cases();
  for (const std::int64_t K : {31, 64, 100, 257, 700, 3001}) cases.push_back({{5, K}, -1});
  for (const std::int64_t K : {2, 5, 16}) cases.push_back({{1001, K}, -1});  // rows sharing a warp
  cases.push_back({{70, 40}, 0});
  for (const test::SoftmaxCase& c : cases) {
    for (const DType dt : {float32, float16, bfloat16, float64}) {
      for (const bool log : {false, true}) {
        SCOPED_TRACE(std::string(log ? "log_softmax" : "softmax") + " of " + c.shape.str() + " axis " +
                     std::to_string(c.axis) + ", " + std::string(name(dt)));
        const Tensor xc = test::make_input(test::uniform_values(c.shape.numel(), -4, 4, 8), c.shape, dt, kCpu,
                                           Layout::contiguous);
        Tensor xg = xc.to(kCuda);
        const auto f = [&](const Tensor& x) { return log ? log_softmax(x, c.axis) : softmax(x, c.axis); };
        test::poison_next_allocation(xc.nbytes(), kCuda);
        EXPECT_TRUE(test::all_close(f(xg), f(xc), test::softmax_tolerance(dt)));
        if (dt != float64) continue;
        Tensor xc64 = xc.clone(), xg64 = xg.clone();
        xc64.requires_grad_();
        xg64.requires_grad_();
        const Tensor g = test::make_input(test::uniform_values(c.shape.numel(), -1, 1, 9), c.shape, dt, kCpu,
                                          Layout::contiguous);
        backward(f(xc64), g);
        backward(f(xg64), g.to(kCuda));
        EXPECT_TRUE(test::all_close(xg64.grad(), xc64.grad(), {1e-12, 1e-9}));
      }
    }
  }
}

TEST(SoftmaxCuda, MinusInfinityAndHugeValuesStayFinite) {
  KILN_REQUIRE_CUDA();
  std::vector<double> v(2 * 2000, -INFINITY);
  for (int k = 0; k < 2000; k += 3) v[static_cast<std::size_t>(k)] = 1e4 - k;
  for (int k = 0; k < 2000; k += 7) v[static_cast<std::size_t>(2000 + k)] = -1e4 + k;
  for (const std::int64_t K : {100, 2000}) {
    const Tensor x = from_vector<double>(v, {2, 2000}).slice(1, 0, K).contiguous().to(float32);
    for (const bool log : {false, true}) {
      const Tensor y = log ? log_softmax(x.to(kCuda)) : softmax(x.to(kCuda));
      EXPECT_TRUE(test::all_close(y, test::softmax_reference(x, -1, log), test::softmax_tolerance(float32)))
          << (log ? "log_softmax" : "softmax") << ", K = " << K;
    }
  }
}

}  // namespace
}  // namespace kiln
