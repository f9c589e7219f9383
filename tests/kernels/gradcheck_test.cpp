// The gradient checker itself (kernels/autograd/gradcheck.h): it passes correct backwards,
// catches a wrong one and says where (input, index, analytic vs numeric), picks the inputs
// to check, keeps input layouts, leaves the caller's tensors untouched, and rejects
// inputs that are not float64.
#include "kiln/kernels/autograd/gradcheck.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/unary.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using ::testing::HasSubstr;
using ::testing::Not;

Tensor f64(const std::vector<double>& v, const Shape& shape) {
  return from_vector<double>(v, shape, {.dtype = float64, .device = kCpu});
}

// square(x) recorded with a wrong backward (it passes the output gradient through
// unchanged instead of multiplying by 2x): right only where x == 0.5.
Tensor bad_square(const Tensor& x) {
  Tensor y;
  {
    NoGradGuard no_grad;
    y = square(x);
  }
  record("BadSquareBackward", {x}, {y}, [](std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  return y;
}

// exp(x) recorded with a backward that yields NaN.
Tensor nan_grad_exp(const Tensor& x) {
  Tensor y;
  {
    NoGradGuard no_grad;
    y = exp(x);
  }
  record("NanBackward", {x}, {y}, [x = x.detach()](std::vector<Tensor>& g) {
    return std::vector<Tensor>{full(x.shape(), std::nan(""), {.dtype = g[0].dtype(), .device = x.device()})};
  });
  return y;
}

TEST(Gradcheck, PassesCorrectBackwardOnMatrix) {
  const Tensor x = f64(test::uniform_values(12, -2, 2, 1), {3, 4});
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(r.message.empty());
}

TEST(Gradcheck, PassesOneElementOutput) {
  const Tensor x = f64({0.3}, {});
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Gradcheck, FailsWrongBackwardAndNamesInputAndIndex) {
  // Every element is 0.5 (where the wrong backward happens to be right) except (1, 2).
  std::vector<double> v(12, 0.5);
  v[1 * 4 + 2] = 3.0;
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return bad_square(in[0]); }, {f64(v, {3, 4})});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.message, HasSubstr("input 0"));
  EXPECT_THAT(r.message, HasSubstr("1 of 12 elements differ"));
  EXPECT_THAT(r.message, HasSubstr("index (1, 2)"));
  EXPECT_THAT(r.message, HasSubstr("analytic"));
  EXPECT_THAT(r.message, HasSubstr("numeric"));
}

TEST(Gradcheck, NamesOnlyTheFailingInput) {
  const Tensor a = f64({0.1, 0.2, 0.3}, {3});
  const Tensor b = f64({1.0, 2.0, 3.0}, {3});
  // b's gradient is wrong (1 vs 2b), a's is right (exp).
  const auto r =
      gradcheck([](const std::vector<Tensor>& in) { return bad_square(in[1]) * exp(in[0]); }, {a, b});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.message, HasSubstr("input 1"));
  EXPECT_THAT(r.message, Not(HasSubstr("input 0")));
}

TEST(Gradcheck, FailsOnNanGradient) {
  const auto r =
      gradcheck([](const std::vector<Tensor>& in) { return nan_grad_exp(in[0]); }, {f64({0.1, 0.2}, {2})});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.message, HasSubstr("analytic nan"));
}

TEST(Gradcheck, ChecksOnlyInputsThatRequireGrad) {
  std::vector<double> v{1.0, 2.0, 3.0};
  Tensor wrong = f64(v, {3});
  Tensor right = f64(v, {3});
  right.requires_grad_();
  const auto f = [](const std::vector<Tensor>& in) { return bad_square(in[0]) * exp(in[1]); };
  EXPECT_TRUE(gradcheck(f, {wrong, right}).ok) << "input 0 does not require grad: not checked";
  // With no input requiring grad, every floating input is checked.
  const auto all = gradcheck(f, {f64(v, {3}), f64(v, {3})});
  EXPECT_FALSE(all.ok);
  EXPECT_THAT(all.message, HasSubstr("input 0"));
}

TEST(Gradcheck, PassesIntegerInputsThroughUnchecked) {
  const Tensor x = f64({0.5, -1.5}, {2});
  const Tensor labels = from_vector<std::int64_t>({1, 0}, {2}, {.device = kCpu});
  const auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        EXPECT_EQ(in[1].dtype(), int64);
        return sigmoid(in[0]);
      },
      {x, labels});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Gradcheck, KeepsNonContiguousInputLayout) {
  const Tensor base = f64(test::uniform_values(12, -2, 2, 2), {4, 3});
  const Tensor xt = base.t();  // (3, 4), strides (1, 3)
  bool saw_non_contiguous = true;
  const auto r = gradcheck(
      [&](const std::vector<Tensor>& in) {
        saw_non_contiguous = saw_non_contiguous && !in[0].is_contiguous();
        return gelu(in[0]);
      },
      {xt});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(saw_non_contiguous);
}

TEST(Gradcheck, ExpandedInputIsMadeContiguous) {
  const Tensor x = f64({0.25, -0.75}, {1, 2}).expand({3, 2});
  const auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        EXPECT_TRUE(in[0].is_contiguous());
        return softplus(in[0]);
      },
      {x});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Gradcheck, SameTensorTwiceIsTwoIndependentInputs) {
  // Perturbing the shared storage in place would move both inputs at once.
  const Tensor x = f64({0.5, -1.5, 2.0}, {3});
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return in[0] * tanh(in[1]); }, {x, x});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Gradcheck, LeavesCallerTensorsUntouched) {
  const std::vector<double> v = test::uniform_values(6, -1, 1, 3);
  Tensor x = f64(v, {2, 3});
  x.requires_grad_();
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return silu(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(x.to_vector<double>(), v) << "values restored bit for bit";
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(x.requires_grad());
}

TEST(Gradcheck, RestoresInputWhenFunctionThrows) {
  const std::vector<double> v{0.5, 1.5};
  const Tensor x = f64(v, {2});
  int calls = 0;
  const auto f = [&](const std::vector<Tensor>& in) {
    if (++calls > 1) KILN_THROW(ValueError, "boom");
    return exp(in[0]);
  };
  EXPECT_THROW(gradcheck(f, {x}), ValueError);
  EXPECT_EQ(x.to_vector<double>(), v);
}

TEST(Gradcheck, WorksInsideNoGradGuard) {
  NoGradGuard no_grad;
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return elu(in[0]); }, {f64({0.5, -0.5}, {2})});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(GradMode::enabled()) << "the caller's grad mode is restored";
}

TEST(Gradcheck, RejectsFloat32Input) {
  const Tensor x = ones({2}, {.dtype = float32, .device = kCpu});
  try {
    gradcheck([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x});
    FAIL() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_THAT(e.message(), HasSubstr("float64"));
    EXPECT_THAT(e.message(), HasSubstr("input 0"));
  }
}

TEST(Gradcheck, RejectsBadArguments) {
  const auto f = [](const std::vector<Tensor>& in) { return exp(in[0]); };
  const Tensor x = f64({1.0}, {1});
  EXPECT_THROW(gradcheck(f, {x}, {.eps = 0}), ValueError);
  EXPECT_THROW(gradcheck(f, {from_vector<std::int32_t>({1}, {.device = kCpu})}), ValueError);
  EXPECT_THROW(gradcheck([](const std::vector<Tensor>& in) { return sign(in[1]); },
                         {x, from_vector<std::int32_t>({1}, {.device = kCpu})}),
               TypeError)
      << "a non-floating output cannot be checked";
}

TEST(Gradcheck, SeedChangesUpstreamGradientButNotVerdict) {
  const Tensor x = f64(test::uniform_values(8, -2, 2, 4), {8});
  const auto f = [](const std::vector<Tensor>& in) { return softsign(in[0]); };
  for (std::uint64_t seed : {0u, 1u, 77u}) {
    const auto r = gradcheck(f, {x}, {.seed = seed});
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.message;
  }
}

}  // namespace
}  // namespace kiln
