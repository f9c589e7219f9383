// The fused losses on cpu (kernels/loss.h), driven by the table in loss_cases.h: every
// loss x dtype x shape x reduction x layout against float64 references, Keras' documented
// values, float64 gradient checks, 16-bit and float32 gradients against float64 ones,
// clipping at probabilities of exactly 0 and 1, NaN and masked logits, other class axes,
// and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/loss.h"
#include "loss_cases.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using test::kCpu;
using test::Layout;
using test::LossCase;

// Class axis last. Empty batch, one element, odd sizes, a 3-D one, and a row past 64.
const Shape kShapes[] = {{1, 1}, {7, 5}, {0, 4}, {2, 3, 7}, {9, 130}};
const GradcheckOptions kTight{.atol = 1e-8, .rtol = 1e-6};
const Reduction kReductions[] = {Reduction::none, Reduction::sum, Reduction::mean};

test::Tolerance loss_tolerance(DType dt) {
  // Rows sum up to ~100 terms in the compute type: float32 gets a few ulps per term.
  return dt == float32 ? test::Tolerance{2e-5, 2e-5} : test::tolerance_for(dt);
}

const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : (r == Reduction::sum ? "sum" : "mean");
}

struct Inputs {
  Tensor y_true, y_pred;
};

Inputs make_inputs(const LossCase& c, const Shape& shape, DType dt, Device device, Layout layout,
                   std::uint64_t seed) {
  const std::int64_t classes = shape[shape.ndim() - 1];
  const std::int64_t rows = classes ? shape.numel() / classes : 0;
  const Tensor p =
      test::make_input(test::loss_values(c.predictions, shape.numel(), seed), shape, dt, device, layout);
  if (c.targets == test::Targets::labels) {
    Shape label_shape = shape;
    label_shape.erase(shape.ndim() - 1);
    const auto labels = test::loss_values(c.targets, rows, classes, seed + 1);
    return {test::make_input(labels, label_shape, int64, device, Layout::contiguous), p};
  }
  return {test::make_input(test::loss_values(c.targets, rows, classes, seed + 1), shape, dt, device, layout),
          p};
}

class LossForward : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossForward, MatchesFloat64ReferenceForEveryDtypeShapeReductionAndLayout) {
  const LossCase& c = GetParam();
  std::uint64_t seed = 10;
  for (DType dt : test::kFloatDTypes) {
    for (const Shape& shape : kShapes) {
      for (Layout layout : {Layout::contiguous, Layout::transposed, Layout::strided, Layout::offset}) {
        const Inputs in = make_inputs(c, shape, dt, kCpu, layout, seed += 2);
        const std::vector<double> per_sample = test::loss_reference(c, in.y_true, in.y_pred);
        for (Reduction r : kReductions) {
          SCOPED_TRACE(std::string(name(dt)) + " " + shape.str() + " " + test::layout_name(layout) + " " +
                       reduction_name(r));
          const Tensor loss = c.op(in.y_true, in.y_pred, r, -1);
          EXPECT_EQ(loss.dtype(), dt);
          Shape expected_shape = shape;
          expected_shape.erase(shape.ndim() - 1);
          EXPECT_EQ(loss.shape(), r == Reduction::none ? expected_shape : Shape{});
          EXPECT_TRUE(test::all_close(loss, test::reduce_reference(per_sample, r), loss_tolerance(dt)));
        }
      }
    }
  }
}

TEST_P(LossForward, GradientMatchesCentralDifferencesInFloat64) {
  const LossCase& c = GetParam();
  for (Layout layout : {Layout::contiguous, Layout::transposed}) {
    for (Reduction r : kReductions) {
      SCOPED_TRACE(std::string(test::layout_name(layout)) + " " + reduction_name(r));
      Inputs in = make_inputs(c, {4, 6}, float64, kCpu, layout, 77);
      in.y_pred.requires_grad_();
      const auto result = gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0], x[1], r, -1); },
                                    {in.y_true, in.y_pred}, kTight);
      EXPECT_TRUE(result.ok) << result.message;
    }
  }
}

TEST_P(LossForward, LowPrecisionGradientsMatchFloat64Gradients) {
  const LossCase& c = GetParam();
  const Inputs ref = make_inputs(c, {5, 33}, float64, kCpu, Layout::contiguous, 91);
  for (DType dt : {float32, float16, bfloat16}) {
    SCOPED_TRACE(name(dt));
    // Inputs rounded to dt, so only the gradient's own arithmetic differs.
    const Tensor t = ref.y_true.dtype() == float64 ? ref.y_true.to(dt) : ref.y_true;
    Tensor p = ref.y_pred.to(dt).requires_grad_();
    Tensor p_ref = p.detach().to(float64).requires_grad_();
    backward(c.op(t.dtype() == int64 ? t : t.to(float64), p_ref, Reduction::sum, -1));
    backward(c.op(t, p, Reduction::sum, -1));
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().dtype(), dt);
    const test::Tolerance tol = dt == float32 ? test::Tolerance{1e-5, 1e-4} : test::tolerance_for(dt);
    EXPECT_TRUE(test::all_close(p.grad(), test::host_values(p_ref.grad()), tol));
  }
}

TEST_P(LossForward, YTrueGetsNoGradient) {
  const LossCase& c = GetParam();
  Inputs in = make_inputs(c, {3, 4}, float32, kCpu, Layout::contiguous, 5);
  if (is_floating(in.y_true.dtype())) in.y_true.requires_grad_();
  in.y_pred.requires_grad_();
  backward(c.op(in.y_true, in.y_pred, Reduction::mean, -1));
  EXPECT_TRUE(in.y_pred.grad().defined());
  EXPECT_FALSE(in.y_true.grad().defined());
}

// The cross-entropies take a class axis; the other losses reduce over Keras' axis -1.
class LossAxis : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossAxis, OtherClassAxisMatchesTheLastAxisForm) {
  const LossCase& c = GetParam();
  // (2, 5, 3) with classes on axis 1 is (2, 3, 5) with classes last, permuted.
  const Inputs last = make_inputs(c, {2, 3, 5}, float64, kCpu, Layout::contiguous, 31);
  const Tensor p_mid = last.y_pred.permute({0, 2, 1}).contiguous().requires_grad_();
  const Tensor t_mid = last.y_true.ndim() == 3 ? last.y_true.permute({0, 2, 1}).contiguous() : last.y_true;
  const Tensor expected = c.op(last.y_true, last.y_pred, Reduction::none, -1);
  const Tensor loss = c.op(t_mid, p_mid, Reduction::none, 1);
  EXPECT_TRUE(test::all_close(loss, expected, {1e-12, 1e-12}));
  const auto result =
      gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0], x[1], Reduction::sum, 1); },
                {t_mid, p_mid}, kTight);
  EXPECT_TRUE(result.ok) << result.message;
}

INSTANTIATE_TEST_SUITE_P(Losses, LossForward, ::testing::ValuesIn(test::loss_cases()),
                         test::loss_case_name<::testing::TestParamInfo<LossCase>>);
INSTANTIATE_TEST_SUITE_P(Losses, LossAxis, ::testing::ValuesIn(test::loss_cases_with_axis()),
                         test::loss_case_name<::testing::TestParamInfo<LossCase>>);

// ---- Keras' documented values (keras.io, the losses' docstrings) ----

Tensor matrix(std::vector<double> v, std::int64_t rows, std::int64_t cols) {
  return from_vector<double>(v, {rows, cols}, {.dtype = float32, .device = kCpu});
}

TEST(LossKerasValues, SparseCategoricalCrossentropy) {
  const Tensor y_true = from_vector<std::int64_t>({1, 2}, {.device = kCpu});
  const Tensor y_pred = matrix({0.05, 0.95, 0, 0.1, 0.8, 0.1}, 2, 3);
  EXPECT_NEAR(sparse_categorical_crossentropy(y_true, y_pred).item<double>(), 1.177, 1e-3);
  const auto none = sparse_categorical_crossentropy(y_true, y_pred, {.reduction = Reduction::none});
  EXPECT_TRUE(test::all_close(none, {0.0513, 2.303}, {1e-3, 0}));
  // Labels with a kept class axis of extent 1, as Keras accepts.
  const Tensor column = y_true.reshape({2, 1}).to(int32);
  EXPECT_NEAR(sparse_categorical_crossentropy(column, y_pred).item<double>(), 1.177, 1e-3);
}

TEST(LossKerasValues, CategoricalAndBinaryCrossentropy) {
  const Tensor onehot = matrix({0, 1, 0, 0, 0, 1}, 2, 3);
  EXPECT_NEAR(categorical_crossentropy(onehot, matrix({0.05, 0.95, 0, 0.1, 0.8, 0.1}, 2, 3)).item<double>(),
              1.177, 1e-3);
  const Tensor t = matrix({0, 1, 0, 0}, 2, 2), p = matrix({0.6, 0.4, 0.4, 0.6}, 2, 2);
  EXPECT_NEAR(binary_crossentropy(t, p).item<double>(), 0.815, 1e-3);
  EXPECT_TRUE(
      test::all_close(binary_crossentropy(t, p, {.reduction = Reduction::none}), {0.916, 0.714}, {1e-3, 0}));
  const Tensor logits = from_vector<double>({-18.6, 0.51, 2.94, -12.8}, {.dtype = float32, .device = kCpu});
  const Tensor labels = from_vector<double>({0, 1, 0, 0}, {.dtype = float32, .device = kCpu});
  EXPECT_NEAR(binary_crossentropy(labels, logits, {.from_logits = true}).item<double>(), 0.865, 1e-3);
}

TEST(LossKerasValues, RegressionAndKlDivergence) {
  const Tensor t = matrix({0, 1, 0, 0}, 2, 2);
  EXPECT_NEAR(mean_squared_error(t, matrix({1, 1, 1, 0}, 2, 2)).item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(mean_absolute_error(t, matrix({1, 1, 1, 0}, 2, 2)).item<double>(), 0.5, 1e-6);
  const Tensor p = matrix({0.6, 0.4, 0.4, 0.6}, 2, 2);
  EXPECT_NEAR(huber(t, p).item<double>(), 0.155, 1e-3);
  EXPECT_NEAR(kl_divergence(t, p).item<double>(), 0.458, 1e-3);
  EXPECT_NEAR(mean_squared_error(t, matrix({1, 1, 1, 0}, 2, 2), Reduction::sum).item<double>(), 1.0, 1e-6);
}

// ---- extreme inputs ----

TEST(LossExtremes, ProbabilitiesOfExactlyZeroAndOneStayFiniteThanksToClipping) {
  const Tensor p = matrix({0, 1, 0, 1, 0, 0}, 2, 3).requires_grad_();
  const Tensor onehot = matrix({1, 0, 0, 0, 1, 0}, 2, 3);
  const Tensor labels = from_vector<std::int64_t>({0, 1}, {.device = kCpu});
  const std::vector<Tensor> losses = {
      categorical_crossentropy(onehot, p), sparse_categorical_crossentropy(labels, p),
      binary_crossentropy(onehot, p), kl_divergence(onehot, p)};
  for (const Tensor& loss : losses) {
    EXPECT_TRUE(std::isfinite(loss.item<double>())) << loss.grad_fn()->name();
    zero_grad({p});
    backward(loss);
    for (double g : p.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(g)) << loss.grad_fn()->name();
  }
  // -log(eps) per sample where the true class has probability 0.
  EXPECT_NEAR(losses[0].item<double>(), -std::log(1e-7), 1e-3);
}

TEST(LossExtremes, NaNPoisonsOnlyItsOwnSample) {
  const Tensor p = matrix({0.1, NAN, 0.3, 1.0, 2.0, 0.5}, 2, 3);
  const Tensor labels = from_vector<std::int64_t>({0, 1}, {.device = kCpu});
  for (bool logits : {true, false}) {
    const auto v =
        sparse_categorical_crossentropy(labels, p, {.from_logits = logits, .reduction = Reduction::none})
            .to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0]));
    EXPECT_TRUE(std::isfinite(v[1]));
  }
  EXPECT_TRUE(std::isnan(mean_squared_error(matrix({0, 0}, 1, 2), matrix({NAN, 1}, 1, 2)).item<double>()));
}

TEST(LossExtremes, LogitsStayStableForHugeAndMaskedValues) {
  // Huge logits: the log-sum-exp never overflows. -inf logits (masked classes) add no NaN.
  const Tensor x = matrix({1e4, 1e4 - 2, -1e4, 0, -INFINITY, 1}, 2, 3);
  const Tensor labels = from_vector<std::int64_t>({1, 2}, {.device = kCpu});
  const auto v =
      sparse_categorical_crossentropy(labels, x, {.from_logits = true, .reduction = Reduction::none})
          .to_vector<double>();
  EXPECT_NEAR(v[0], 2 + std::log1p(std::exp(-2.0)), 2e-3);  // ulp(1e4) in float is ~1e-3
  EXPECT_NEAR(v[1], std::log(1 + std::exp(-1.0)), 1e-6);
  const auto b = binary_crossentropy(matrix({1, 0}, 1, 2), matrix({-1e4, 1e4}, 1, 2), {.from_logits = true});
  EXPECT_NEAR(b.item<double>(), 1e4, 1);
}

TEST(LossExtremes, EmptyBatchGivesZeroSumAndNaNMean) {
  const Tensor p = empty({0, 4}, {.device = kCpu});
  const Tensor labels = empty({0}, {.dtype = int64, .device = kCpu});
  EXPECT_EQ(sparse_categorical_crossentropy(labels, p, {.reduction = Reduction::sum}).item<double>(), 0.0);
  EXPECT_TRUE(std::isnan(sparse_categorical_crossentropy(labels, p).item<double>()));
  EXPECT_EQ(mean_squared_error(p, p, Reduction::none).shape(), Shape{0});
}

// ---- bad input ----

TEST(LossErrors, LabelsOutOfRangeNameTheFirstBadLabelAndTheClassCount) {
  const Tensor p = matrix({1, 2, 3, 4, 5, 6}, 2, 3);
  for (std::int64_t bad : {3, -1}) {
    const Tensor labels = from_vector<std::int64_t>({0, bad}, {.device = kCpu});
    try {
      sparse_categorical_crossentropy(labels, p);
      FAIL() << "no error for label " << bad;
    } catch (const IndexError& e) {
      EXPECT_THAT(e.what(), HasSubstr("sparse_categorical_crossentropy"));
      EXPECT_THAT(e.what(), HasSubstr("label " + std::to_string(bad)));
      EXPECT_THAT(e.what(), HasSubstr("3 classes"));
    }
  }
}

TEST(LossErrors, ShapesDtypesAndOptionsAreChecked) {
  const Tensor p = matrix({1, 2, 3, 4, 5, 6}, 2, 3);
  try {
    mean_squared_error(matrix({1, 2, 3, 4}, 2, 2), p);
    FAIL() << "no error for mismatched shapes";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("mean_squared_error"));
    EXPECT_THAT(e.what(), HasSubstr("(2, 2)"));
    EXPECT_THAT(e.what(), HasSubstr("(2, 3)"));
  }
  EXPECT_THROW(sparse_categorical_crossentropy(from_vector<std::int64_t>({0, 1, 2}, {.device = kCpu}), p),
               ShapeError);
  EXPECT_THROW(sparse_categorical_crossentropy(matrix({0, 1}, 2, 1), p), TypeError);  // float labels
  EXPECT_THROW(mean_squared_error(p, p.to(int32)), TypeError);
  EXPECT_THROW(categorical_crossentropy(p, p, {.label_smoothing = 1.5}), ValueError);
  EXPECT_THROW(categorical_crossentropy(p, p, {.axis = 2}), IndexError);
  EXPECT_THROW(huber(p, p, -1.0), ValueError);
  EXPECT_THROW(mean_squared_error(Tensor(), p), ValueError);
}

}  // namespace
}  // namespace kiln
