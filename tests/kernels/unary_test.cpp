// The unary family on cpu (kernels/unary.h), driven by the op table in unary_cases.h:
// every op x dtype x shape x layout against a float64 reference computed here, integer
// inputs exactly, NaN/Inf/large inputs, a float64 gradient check of every op, the 16-bit
// and float32 backward against the float64 one, activation() by Keras name, bad dtypes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/unary.h"
#include "op_test_util.h"
#include "unary_cases.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;
using test::UnaryCase;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");
constexpr double kSeluAtMinusInf = -test::unary_reference::kSeluScale * test::unary_reference::kSeluAlpha;

// Scalar, empty (two ways), one element, odd, and a 2-D shape past a few vector widths.
const Shape kShapes[] = {{}, {0}, {0, 5}, {1}, {7}, {33, 65}};

std::string describe(DType dt, const Shape& shape, Layout layout) {
  std::ostringstream os;
  os << dt << " " << shape << " " << test::layout_name(layout);
  return os.str();
}

// Input values for case c in dtype dt: its range for floats, small integers otherwise.
std::vector<double> input_values(const UnaryCase& c, std::int64_t n, DType dt, std::uint64_t seed) {
  if (is_floating(dt)) return test::uniform_values(n, c.lo, c.hi, seed);
  std::vector<double> v = test::uniform_values(n, -50, 50, seed);
  for (double& x : v) x = std::round(x);
  return v;
}

// Runs c's op on x (its output allocation poisoned first) and checks it against the
// float64 reference of x's actual (dtype-rounded) values.
void expect_matches_reference(const UnaryCase& c, const Tensor& x, test::Tolerance tol) {
  test::poison_next_allocation(static_cast<std::size_t>(x.numel()) * x.itemsize(), x.device());
  const Tensor y = c.op(x);
  ASSERT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.dtype(), x.dtype());
  EXPECT_EQ(y.device(), x.device());
  EXPECT_TRUE(test::all_close(y, test::map_values(test::host_values(x), c.reference), tol));
}

class UnaryForward : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(UnaryForward, MatchesFloat64ReferenceForEveryDtypeShapeAndLayout) {
  const UnaryCase& c = GetParam();
  std::uint64_t seed = 100;
  for (DType dt : test::kFloatDTypes) {
    for (const Shape& shape : kShapes) {
      for (Layout layout : test::kAllLayouts) {
        SCOPED_TRACE(describe(dt, shape, layout));
        const auto values = input_values(c, shape.numel(), dt, ++seed);
        expect_matches_reference(c, test::make_input(values, shape, dt, kCpu, layout),
                                 test::tolerance_for(dt));
      }
    }
  }
}

TEST_P(UnaryForward, MatchesFloat64ReferenceAtTwoToTheTwentyPlusThree) {
  // Past the OpenMP grain, with a tail that no vector width divides.
  const UnaryCase& c = GetParam();
  const Shape shape{(1 << 20) + 3};
  const auto values = input_values(c, shape.numel(), float32, 7);
  for (Layout layout : {Layout::contiguous, Layout::offset}) {
    SCOPED_TRACE(test::layout_name(layout));
    expect_matches_reference(c, test::make_input(values, shape, float32, kCpu, layout),
                             test::tolerance_for(float32));
  }
}

TEST_P(UnaryForward, IntegerInputsAreExactOrRejected) {
  const UnaryCase& c = GetParam();
  for (DType dt : {int32, int64}) {
    for (Layout layout : {Layout::contiguous, Layout::transposed, Layout::expanded}) {
      SCOPED_TRACE(describe(dt, {9, 4}, layout));
      const Tensor x = test::make_input(input_values(c, 36, dt, 3), {9, 4}, dt, kCpu, layout);
      if (c.integers) {
        expect_matches_reference(c, x, {0, 0});
      } else {
        EXPECT_THROW(c.op(x), TypeError);
      }
    }
  }
}

TEST_P(UnaryForward, RejectsBoolAndUint8Inputs) {
  const UnaryCase& c = GetParam();
  for (DType dt : {bool_, uint8}) {
    const Tensor x = zeros({3}, {.dtype = dt, .device = kCpu});
    try {
      c.op(x);
      ADD_FAILURE() << "expected TypeError for " << dt;
    } catch (const TypeError& e) {
      EXPECT_THAT(e.message(), HasSubstr("expects a floating tensor"));
      EXPECT_THAT(e.message(), HasSubstr(std::string(name(dt))));
    }
  }
}

TEST_P(UnaryForward, NanPropagates) {
  const UnaryCase& c = GetParam();
  for (DType dt : test::kFloatDTypes) {
    SCOPED_TRACE(name(dt));
    const Tensor x = full({5}, kNaN, {.dtype = dt, .device = kCpu});
    for (double v : c.op(x).to_vector<double>()) EXPECT_TRUE(std::isnan(v)) << v;
  }
}

TEST_P(UnaryForward, LargeInputsStayAccurate) {
  // Saturating ops must saturate (sigmoid to 0 and 1, tanh to +-1, softplus to x) without
  // NaN; exp and square overflow to Inf where the dtype's range ends.
  const UnaryCase& c = GetParam();
  std::vector<double> values{30, 100, 1e4};
  if (c.lo < -1) values.insert(values.end(), {-30, -100, -1e4});
  for (DType dt : test::kFloatDTypes) {
    SCOPED_TRACE(name(dt));
    const Tensor x = from_vector<double>(values, {.dtype = float64, .device = kCpu}).to(dt);
    expect_matches_reference(c, x, test::tolerance_for(dt));
    for (double v : c.op(x).to_vector<double>()) EXPECT_FALSE(std::isnan(v));
  }
}

class UnaryGradient : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(UnaryGradient, MatchesCentralDifferencesInFloat64) {
  const UnaryCase& c = GetParam();
  const auto values = test::away_from_kinks(test::uniform_values(12, c.grad_lo, c.grad_hi, 21), c);
  const auto op = c.op;
  const auto f = [op](const std::vector<Tensor>& in) { return op(in[0]); };
  const Tensor x = from_vector<double>(values, {3, 4}, {.dtype = float64, .device = kCpu});
  const auto r = gradcheck(f, {x});
  EXPECT_TRUE(r.ok) << r.message;
  const auto rt = gradcheck(f, {x.reshape({4, 3}).t()});  // a transposed (strided) input
  EXPECT_TRUE(rt.ok) << "transposed: " << rt.message;
}

TEST_P(UnaryGradient, LowPrecisionBackwardMatchesFloat64Backward) {
  // The same (rounded) inputs and upstream gradient through the dtype's backward and
  // through float64's (certified above by the gradient check).
  const UnaryCase& c = GetParam();
  const Shape shape{7, 9};
  const auto xv = test::away_from_kinks(test::uniform_values(shape.numel(), c.grad_lo, c.grad_hi, 31), c);
  const auto gv = test::uniform_values(shape.numel(), -1, 1, 32);
  for (DType dt : {float32, float16, bfloat16}) {
    SCOPED_TRACE(name(dt));
    Tensor x = test::make_input(xv, shape, dt, kCpu, Layout::strided);
    x.requires_grad_();
    const Tensor g = test::make_input(gv, shape, dt, kCpu, Layout::contiguous);
    backward(c.op(x), g);
    Tensor x64 = x.detach().to(float64);
    x64.requires_grad_();
    backward(c.op(x64), g.to(float64));
    ASSERT_TRUE(x.grad().defined());
    EXPECT_EQ(x.grad().dtype(), dt);
    // Twice the forward tolerance: the backward reads the rounded forward output too.
    const test::Tolerance tol = test::tolerance_for(dt);
    EXPECT_TRUE(test::all_close(x.grad(), x64.grad(), {2 * tol.atol, 2 * tol.rtol}));
  }
}

INSTANTIATE_TEST_SUITE_P(Unary, UnaryForward, ::testing::ValuesIn(test::unary_cases()),
                         [](const auto& info) { return test::case_name(info.param); });
INSTANTIATE_TEST_SUITE_P(Unary, UnaryGradient, ::testing::ValuesIn(test::unary_cases()),
                         [](const auto& info) { return test::case_name(info.param); });

// ---- infinities and domain edges ----

struct EdgeCase {
  const char* name;
  Tensor (*op)(const Tensor&);
  double x;
  double expected;  // NaN: a domain error
};

const EdgeCase kEdgeCases[] = {
    {"neg", neg, -kInf, kInf},
    {"neg", neg, kInf, -kInf},
    {"abs", abs, -kInf, kInf},
    {"exp", exp, -kInf, 0},
    {"exp", exp, kInf, kInf},
    {"exp", exp, 1000, kInf},
    {"exp", exp, -1000, 0},
    {"log", log, 0, -kInf},
    {"log", log, kInf, kInf},
    {"log", log, -1, kNaN},
    {"log1p", log1p, -1, -kInf},
    {"log1p", log1p, kInf, kInf},
    {"log1p", log1p, -2, kNaN},
    {"sqrt", sqrt, kInf, kInf},
    {"sqrt", sqrt, -1, kNaN},
    {"rsqrt", rsqrt, 0, kInf},
    {"rsqrt", rsqrt, kInf, 0},
    {"square", square, -kInf, kInf},
    {"sign", sign, -kInf, -1},
    {"sign", sign, kInf, 1},
    {"relu", relu, -kInf, 0},
    {"relu", relu, kInf, kInf},
    {"relu6", relu6, -kInf, 0},
    {"relu6", relu6, kInf, 6},
    {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); }, -kInf, -kInf},
    {"elu", [](const Tensor& x) { return elu(x); }, -kInf, -1},
    {"elu", [](const Tensor& x) { return elu(x); }, kInf, kInf},
    {"selu", selu, -kInf, kSeluAtMinusInf},
    {"gelu", [](const Tensor& x) { return gelu(x); }, kInf, kInf},
    {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }, kInf, kInf},
    {"sigmoid", sigmoid, -kInf, 0},
    {"sigmoid", sigmoid, kInf, 1},
    {"hard_sigmoid", hard_sigmoid, -kInf, 0},
    {"hard_sigmoid", hard_sigmoid, kInf, 1},
    {"tanh", tanh, -kInf, -1},
    {"tanh", tanh, kInf, 1},
    {"softplus", softplus, -kInf, 0},
    {"softplus", softplus, kInf, kInf},
    {"silu", silu, kInf, kInf},
};
// Not listed: gelu(-inf), silu(-inf) and softsign(+-inf), whose formulas give NaN
// (inf * 0, inf / inf), as in PyTorch and Keras.

TEST(UnaryEdges, InfinitiesAndDomainEdgesGiveTheLimit) {
  for (const EdgeCase& e : kEdgeCases) {
    for (DType dt : test::kFloatDTypes) {
      SCOPED_TRACE(std::string(e.name) + "(" + std::to_string(e.x) + ") in " + std::string(name(dt)));
      const Tensor y = e.op(full({3}, e.x, {.dtype = dt, .device = kCpu}));
      EXPECT_TRUE(test::all_close(y, std::vector<double>(3, e.expected), test::tolerance_for(dt)));
    }
  }
}

// ---- activation() by Keras name ----

std::vector<double> softmax_rows(const std::vector<double>& x, std::int64_t cols, bool log_form) {
  std::vector<double> out(x.size());
  for (std::size_t r = 0; r < x.size() / static_cast<std::size_t>(cols); ++r) {
    const double* row = &x[r * static_cast<std::size_t>(cols)];
    double m = row[0], s = 0;
    for (std::int64_t j = 0; j < cols; ++j) m = std::fmax(m, row[j]);
    for (std::int64_t j = 0; j < cols; ++j) s += std::exp(row[j] - m);
    for (std::int64_t j = 0; j < cols; ++j) {
      out[r * static_cast<std::size_t>(cols) + static_cast<std::size_t>(j)] =
          log_form ? row[j] - m - std::log(s) : std::exp(row[j] - m) / s;
    }
  }
  return out;
}

TEST(UnaryActivation, EveryKerasNameMatchesItsOp) {
  const Shape shape{4, 5};
  const Tensor x =
      test::make_input(test::uniform_values(20, -3, 3, 41), shape, float32, kCpu, Layout::contiguous);
  const std::vector<double> xv = test::host_values(x);
  const auto same_as = [&](Tensor (*op)(const Tensor&)) { return test::host_values(op(x)); };
  const std::pair<const char*, std::vector<double>> expected[] = {
      {"linear", xv},
      {"none", xv},
      {"relu", same_as(relu)},
      {"relu6", same_as(relu6)},
      {"leaky_relu", test::host_values(leaky_relu(x, 0.2))},
      {"elu", test::host_values(elu(x, 1.0))},
      {"selu", same_as(selu)},
      {"gelu", test::host_values(gelu(x, false))},
      {"sigmoid", same_as(sigmoid)},
      {"hard_sigmoid", same_as(hard_sigmoid)},
      {"tanh", same_as(tanh)},
      {"softplus", same_as(softplus)},
      {"softsign", same_as(softsign)},
      {"silu", same_as(silu)},
      {"swish", same_as(silu)},
      {"exponential", same_as(exp)},
      {"softmax", softmax_rows(xv, 5, false)},
      {"log_softmax", softmax_rows(xv, 5, true)},
  };
  for (const auto& [activation_name, values] : expected) {
    SCOPED_TRACE(activation_name);
    const Tensor y = activation(x, activation_name);
    EXPECT_EQ(y.shape(), shape);
    EXPECT_TRUE(test::all_close(y, values, test::tolerance_for(float32)));
  }
}

TEST(UnaryActivation, UnknownNameListsValidNames) {
  const Tensor x = zeros({2}, {.device = kCpu});
  try {
    activation(x, "relux");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("'relux'"));
    EXPECT_THAT(e.message(), HasSubstr("valid names"));
    for (const char* valid : {"linear", "relu", "gelu", "swish", "softmax", "exponential"}) {
      EXPECT_THAT(e.message(), HasSubstr(valid));
    }
  }
}

TEST(UnaryActivation, RecordsGradient) {
  Tensor x = from_vector<double>({-1.0, 0.5}, {2}, {.dtype = float64, .device = kCpu});
  x.requires_grad_();
  const Tensor y = activation(x, "tanh");
  ASSERT_NE(y.grad_fn(), nullptr);
  backward(y, ones({2}, {.dtype = float64, .device = kCpu}));
  EXPECT_NEAR(x.grad().to_vector<double>()[1], 1 - std::pow(std::tanh(0.5), 2), 1e-12);
}

}  // namespace
}  // namespace kiln
