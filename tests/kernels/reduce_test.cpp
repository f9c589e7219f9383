// The reductions on cpu: every op over a table of shapes, axes, dtypes and input layouts
// against float64 references computed here, NaN and empty-axis rules, accuracy of long
// float32 sums and of var near 1e8, gradient checks in float64, and sum_to.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/reduce.h"
#include "op_test_util.h"
#include "reduce_reference.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;
using test::ReduceCase;

// Reference groups for argmax/argmin are the single axis; the table runs both through the
// same reference code with axes = {axis}.
TEST(Reduce, MatchesFloat64ReferenceAcrossShapesDTypesAndLayouts) {
  const DType dtypes[] = {float32, float64, float16, bfloat16, int32, int64};
  for (const ReduceCase& c : test::reduce_cases()) {
    for (const DType dt : dtypes) {
      for (const Layout layout : test::kAllLayouts) {
        if (layout != Layout::contiguous && c.shape.ndim() == 0) continue;
        if (layout == Layout::expanded && c.shape.numel() == 0) continue;
        const Tensor x = test::reduce_input(c.shape, dt, kCpu, layout, 11);
        for (const test::ReduceOpSpec& op : test::reduce_ops()) {
          if (!op.applies(c)) continue;
          SCOPED_TRACE(std::string(op.name) + " of " + c.shape.str() + " axes " + test::axes_str(c.axes) +
                       (c.keepdims ? " keepdims" : "") + ", " + std::string(name(dt)) + ", " +
                       test::layout_name(layout));
          const Tensor y = op.run(x, c.axes, c.keepdims);
          EXPECT_EQ(y.shape(), test::reduced_shape(c.shape, c.axes, c.keepdims));
          EXPECT_EQ(y.dtype(), op.out_dtype(dt));
          EXPECT_TRUE(test::all_close(y, test::reference(op, x, c.axes), op.tolerance(dt, test::group_size(c.shape, c.axes))));
        }
      }
    }
  }
}

TEST(Reduce, BoolAndUint8SumsCountInInt64) {
  const Tensor b = from_vector<bool>({true, false, true, true, false, true}, {2, 3});
  const Tensor s = sum(b, {1});
  EXPECT_EQ(s.dtype(), int64);
  EXPECT_EQ(s.to_vector<std::int64_t>(), (std::vector<std::int64_t>{2, 2}));
  const Tensor u = full({300}, 200, {.dtype = uint8, .device = kCpu});
  EXPECT_EQ(sum(u).item<std::int64_t>(), 60000);
  EXPECT_EQ(max(b, {0}).to_vector<bool>(), (std::vector<bool>{true, false, true}));
}

TEST(Reduce, IntegerMeanIsFloat32) {
  const Tensor x = from_vector<std::int32_t>({1, 2, 4, 7}, {2, 2});
  const Tensor m = mean(x, {1});
  EXPECT_EQ(m.dtype(), float32);
  EXPECT_EQ(m.to_vector<float>(), (std::vector<float>{1.5f, 5.5f}));
  EXPECT_EQ(var(x).dtype(), float32);
}

TEST(Reduce, FullFloat32SumOfTwoToTheTwentyPlusThreeMatchesFloat64) {
  const std::int64_t n = (1 << 20) + 3;
  const std::vector<double> v = test::uniform_values(n, 0.0, 1.0, 5);
  const Tensor x = from_vector<double>(v, {n}).to(float32);
  double expect = 0;
  for (const double e : x.to_vector<double>()) expect += e;
  EXPECT_NEAR(sum(x).item<double>(), expect, 1e-6 * expect);
  EXPECT_NEAR(mean(x).item<double>(), expect / static_cast<double>(n), 1e-6);
}

TEST(Reduce, Float32VarianceNearOneE8KeepsTheNoise) {
  // float32 spacing at 1e8 is 8: multiples of 8 around 1e8 are exact inputs.
  const std::vector<double> u = test::uniform_values(4099, -50, 50, 9);
  std::vector<double> v;
  for (const double e : u) v.push_back(1e8 + 8.0 * std::round(e));
  const Tensor x = from_vector<double>(v, {4099}).to(float32);
  const std::vector<double> xs = x.to_vector<double>();
  double m = 0, q = 0;
  for (const double e : xs) m += e;
  m /= static_cast<double>(xs.size());
  for (const double e : xs) q += (e - m) * (e - m);
  const double expect = q / static_cast<double>(xs.size());
  EXPECT_NEAR(var(x).item<double>(), expect, 1e-4 * expect);
  EXPECT_NEAR(std(x, {}, false, 1).item<double>(), std::sqrt(q / static_cast<double>(xs.size() - 1)),
              1e-4 * std::sqrt(expect));
}

TEST(Reduce, NaNPropagatesThroughMaxMinAndIsTheArgmax) {
  const double nan = std::nan("");
  const Tensor x = from_vector<double>({1, nan, 5, nan, -2, 0, 4, 3}, {2, 4}).to(float32);
  EXPECT_TRUE(std::isnan(max(x).item<float>()));
  EXPECT_TRUE(std::isnan(min(x).item<float>()));
  const std::vector<float> mx = max(x, {1}).to_vector<float>();
  EXPECT_TRUE(std::isnan(mx[0]));
  EXPECT_EQ(mx[1], 4.0f);
  EXPECT_EQ(argmax(x, 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(argmin(x, 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 0}));
  const Tensor inf = from_vector<double>({1, INFINITY, -INFINITY}, {3});
  EXPECT_TRUE(std::isnan(sum(inf).item<double>()));
  EXPECT_EQ(norm(inf, INFINITY).item<double>(), INFINITY);
}

TEST(Reduce, ArgmaxTakesTheFirstOfTies) {
  const Tensor x = from_vector<std::int32_t>({3, 7, 7, 1, 1, 2}, {6});
  EXPECT_EQ(argmax(x, 0).item<std::int64_t>(), 1);
  EXPECT_EQ(argmin(x, 0).item<std::int64_t>(), 3);
  EXPECT_EQ(argmax(x, 0, true).shape(), Shape({1}));
}

TEST(Reduce, EmptyAxesSumToZeroAndMeanToNaN) {
  const Tensor x = zeros({3, 0});
  EXPECT_EQ(sum(x, {1}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_TRUE(std::isnan(mean(x, {1}).to_vector<float>()[0]));
  EXPECT_TRUE(std::isnan(var(x, {1}).to_vector<float>()[2]));
  EXPECT_EQ(norm(x, 2.0, {1}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(max(x, {0}).shape(), Shape({0}));  // nothing to reduce into: no error
}

TEST(Reduce, MaxOfAnEmptyAxisRaisesNamingOpAndShape) {
  const Tensor x = zeros({3, 0});
  for (const auto& [name, f] : std::vector<std::pair<std::string, std::function<Tensor()>>>{
           {"max", [&] { return max(x, {1}); }},
           {"min", [&] { return min(x); }},
           {"argmax", [&] { return argmax(x, 1); }},
           {"argmin", [&] { return argmin(x, -1); }}}) {
    try {
      f();
      ADD_FAILURE() << name << " of an empty axis did not raise";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find(name + ": "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("(3, 0)"), std::string::npos) << e.what();
    }
  }
}

TEST(Reduce, OutOfRangeAxesRaiseIndexError) {
  const Tensor x = zeros({2, 3});
  EXPECT_THROW(sum(x, {2}), IndexError);
  EXPECT_THROW(mean(x, {-3}), IndexError);
  EXPECT_THROW(argmax(x, 5), IndexError);
  EXPECT_THROW(sum(zeros({}), {0}), IndexError);
  EXPECT_THROW(norm(x, 0.0), ValueError);
}

TEST(Reduce, DuplicateAxesCountOnce) {
  const Tensor x = arange(6.0, {.dtype = float64}).reshape({2, 3});
  EXPECT_EQ(sum(x, {1, -1}).to_vector<double>(), (std::vector<double>{3, 12}));
}

TEST(Reduce, MaxGradientGoesToTheFirstExtremeElement) {
  Tensor x = from_vector<double>({1, 3, 3, 2, 0, -1, -1, 0}, {2, 4});
  x.requires_grad_();
  backward(sum(max(x, {1})));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 0, 1, 0, 0, 0}));
  Tensor y = from_vector<double>({1, 3, 3, 2, 0, -1, -1, 0}, {2, 4});
  y.requires_grad_();
  backward(min(y));
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{0, 0, 0, 0, 0, 1, 0, 0}));
}

TEST(Reduce, GradientsMatchCentralDifferences) {
  struct GradCase {
    Shape shape;
    Axes axes;
    bool keepdims;
    bool transposed;
  };
  const GradCase cases[] = {{{5}, {}, false, false},       {{3, 4}, {1}, false, false},
                            {{3, 4}, {0}, true, false},     {{3, 4}, {0}, false, true},
                            {{2, 3, 4}, {1}, false, false}, {{2, 3, 4}, {0, 2}, true, false},
                            {{2, 3, 4}, {}, false, true},   {{2, 1, 3}, {1, 2}, false, false},
                            {{2, 3, 4}, {0}, false, true}};
  for (const GradCase& c : cases) {
    for (const test::ReduceOpSpec& op : test::reduce_ops()) {
      if (!op.differentiable) continue;
      SCOPED_TRACE(std::string(op.name) + " of " + c.shape.str() + " axes " + test::axes_str(c.axes));
      Tensor x = test::distinct_input(c.shape, 3);
      if (c.transposed) x = x.transpose(0, -1).contiguous().transpose(0, -1);
      const auto r = gradcheck([&](const std::vector<Tensor>& in) { return op.run(in[0], c.axes, c.keepdims); },
                               {x});
      EXPECT_TRUE(r.ok) << r.message;
    }
  }
}

TEST(SumTo, ReducesBroadcastAxes) {
  const Tensor x = arange(24.0, {.dtype = float64}).reshape({2, 3, 4});
  EXPECT_EQ(sum_to(x, {3, 1}).shape(), Shape({3, 1}));
  EXPECT_EQ(sum_to(x, {3, 1}).to_vector<double>(), (std::vector<double>{60, 92, 124}));
  EXPECT_EQ(sum_to(x, {4}).to_vector<double>(), (std::vector<double>{60, 66, 72, 78}));
  EXPECT_EQ(sum_to(x, {1, 1, 1}).to_vector<double>(), (std::vector<double>{276}));
  EXPECT_EQ(sum_to(x, {}).item<double>(), 276);
  EXPECT_TRUE(sum_to(x, {2, 3, 4}).is_same(x));
  EXPECT_THROW(sum_to(x, {5}), ShapeError);
  EXPECT_THROW(sum_to(x, {1, 2, 3, 4}), ShapeError);
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return sum_to(in[0], {3, 1}); },
                           {test::distinct_input({2, 3, 4}, 1)});
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace
}  // namespace kiln
