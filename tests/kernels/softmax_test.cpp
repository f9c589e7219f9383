// softmax and log_softmax on cpu: a table of shapes, axes, dtypes and layouts against
// float64 references, rows with -inf entries and huge values, gradient checks in float64,
// and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/softmax.h"
#include "op_test_util.h"
#include "softmax_reference.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

TEST(Softmax, MatchesFloat64ReferenceAcrossShapesDTypesAndLayouts) {
  for (const test::SoftmaxCase& c : test::softmax_cases()) {
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : test::kAllLayouts) {
        if (layout == Layout::expanded && c.shape.numel() == 0) continue;
        const Tensor x = test::make_input(test::uniform_values(c.shape.numel(), -4, 4, 7), c.shape, dt, kCpu, layout);
        for (const bool log : {false, true}) {
          SCOPED_TRACE(std::string(log ? "log_softmax" : "softmax") + " of " + c.shape.str() + " axis " +
                       std::to_string(c.axis) + ", " + std::string(name(dt)) + ", " + test::layout_name(layout));
          const Tensor y = log ? log_softmax(x, c.axis) : softmax(x, c.axis);
          EXPECT_EQ(y.shape(), c.shape);
          EXPECT_EQ(y.dtype(), dt);
          EXPECT_TRUE(test::all_close(y, test::softmax_reference(x, c.axis, log), test::softmax_tolerance(dt)));
        }
      }
    }
  }
}

TEST(Softmax, MinusInfinityAndHugeValuesStayFiniteAndCorrect) {
  const Tensor x = from_vector<double>({1e4, 1e4 - 1, -INFINITY, 0, -1e4, -INFINITY, -1e4 + 2, -1e4}, {2, 4});
  for (const DType dt : {float32, float64}) {
    const Tensor xd = x.to(dt);
    for (const bool log : {false, true}) {
      const Tensor y = log ? log_softmax(xd, -1) : softmax(xd, -1);
      const std::vector<double> ref = test::softmax_reference(xd, -1, log);
      EXPECT_TRUE(test::all_close(y, ref, test::softmax_tolerance(dt))) << (log ? "log_softmax " : "softmax ") << dt;
      const std::vector<double> v = y.to_vector<double>();
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (!std::isinf(ref[i])) {
          EXPECT_TRUE(std::isfinite(v[i])) << "element " << i;
        }
      }
    }
  }
  EXPECT_EQ(softmax(x, -1).at<double>({0, 2}), 0.0);
  EXPECT_EQ(log_softmax(x, -1).at<double>({1, 1}), -INFINITY);
}

TEST(Softmax, RowsSumToOne) {
  const Tensor x = randn({37, 1500}, {.device = kCpu});
  const std::vector<float> y = softmax(x).to_vector<float>();
  for (int r = 0; r < 37; ++r) {
    double s = 0;
    for (int k = 0; k < 1500; ++k) s += y[static_cast<std::size_t>(r * 1500 + k)];
    EXPECT_NEAR(s, 1.0, 1e-5) << "row " << r;
  }
}

TEST(Softmax, GradientsMatchCentralDifferences) {
  struct GradCase {
    Shape shape;
    std::int64_t axis;
    bool transposed;
  };
  const GradCase cases[] = {{{7}, 0, false},     {{3, 5}, -1, false}, {{3, 5}, 0, false},
                            {{3, 5}, 1, true},   {{2, 3, 4}, 1, false}, {{4, 1}, 1, false}};
  for (const GradCase& c : cases) {
    for (const bool log : {false, true}) {
      SCOPED_TRACE(std::string(log ? "log_softmax" : "softmax") + " of " + c.shape.str() + " axis " +
                   std::to_string(c.axis) + (c.transposed ? " transposed" : ""));
      Tensor x = test::make_input(test::uniform_values(c.shape.numel(), -3, 3, 4), c.shape, float64, kCpu,
                                  c.transposed ? Layout::transposed : Layout::contiguous);
      const auto r = gradcheck(
          [&](const std::vector<Tensor>& in) { return log ? log_softmax(in[0], c.axis) : softmax(in[0], c.axis); },
          {x});
      EXPECT_TRUE(r.ok) << r.message;
    }
  }
}

TEST(Softmax, BadInputRaises) {
  EXPECT_THROW(softmax(zeros({2, 3}, {.dtype = int32}), -1), TypeError);
  EXPECT_THROW(log_softmax(zeros({2, 3}), 2), IndexError);
  EXPECT_THROW(softmax(zeros({}), 0), IndexError);
  try {
    softmax(zeros({2, 3}, {.dtype = int64}));
    ADD_FAILURE() << "softmax of int64 did not raise";
  } catch (const TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
