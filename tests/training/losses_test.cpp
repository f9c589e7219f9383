// Loss objects on cpu: Keras names and defaults, Keras 3's weighting and reductions against
// float64 values worked out here, ignore_class, gradient checks through the weighting,
// layouts, NaN, configs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "kernels/op_test_util.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/loss.h"
#include "kiln/kernels/unary.h"
#include "kiln/training/losses.h"

namespace kiln {
namespace {

using test::kCpu;

Tensor f64(const std::vector<double>& v, const Shape& shape) { return from_vector(v, shape, {.dtype = float64, .device = kCpu}); }
Tensor i64(const std::vector<std::int64_t>& v) { return from_vector(v, {.device = kCpu}); }

// -log softmax(row)[label], by hand.
double sparse_ce(const std::vector<double>& row, std::size_t label) {
  double m = row[0];
  for (double x : row) m = std::max(m, x);
  double s = 0;
  for (double x : row) s += std::exp(x - m);
  return m + std::log(s) - row[label];
}

const std::vector<double> kLogits = {2.0, 1.0, 0.1, 0.5, 2.5, -1.0, 0.0, 0.0, 3.0};  // (3, 3)
const std::vector<std::int64_t> kLabels = {0, 1, 2};

std::vector<double> per_sample() {
  std::vector<double> out;
  for (std::size_t i = 0; i < 3; ++i) {
    out.push_back(sparse_ce({kLogits.begin() + 3 * i, kLogits.begin() + 3 * i + 3}, kLabels[i]));
  }
  return out;
}

TEST(Losses, SumOverBatchSizeWeightsPerSampleAndDividesByTheCount) {
  const losses::SparseCategoricalCrossentropy loss({.from_logits = true});
  const auto l = per_sample();
  const Tensor y = i64(kLabels), p = f64(kLogits, {3, 3});
  EXPECT_NEAR(loss(y, p).item<double>(), (l[0] + l[1] + l[2]) / 3, 1e-14);
  const Tensor w = f64({1.0, 0.0, 2.0}, {3});
  EXPECT_NEAR(loss(y, p, w).item<double>(), (l[0] + 2 * l[2]) / 3, 1e-14);
  // (N, 1) weights and a scalar weight broadcast the same way.
  EXPECT_NEAR(loss(y, p, w.reshape({3, 1})).item<double>(), (l[0] + 2 * l[2]) / 3, 1e-14);
  EXPECT_NEAR(loss(y, p, f64({0.5}, {})).item<double>(), 0.5 * (l[0] + l[1] + l[2]) / 3, 1e-14);
  // Float class ids work too (Keras converts them).
  EXPECT_NEAR(loss(f64({0, 1, 2}, {3}), p).item<double>(), (l[0] + l[1] + l[2]) / 3, 1e-14);
}

TEST(Losses, EveryReductionAsKeras) {
  const auto l = per_sample();
  const Tensor y = i64(kLabels), p = f64(kLogits, {3, 3}), w = f64({1.0, 0.0, 2.0}, {3});
  using R = losses::Reduction;
  auto make = [](R r) { return losses::SparseCategoricalCrossentropy({.from_logits = true, .reduction = r}); };
  EXPECT_NEAR(make(R::sum)(y, p, w).item<double>(), l[0] + 2 * l[2], 1e-14);
  EXPECT_NEAR(make(R::sum)(y, p).item<double>(), l[0] + l[1] + l[2], 1e-14);
  EXPECT_NEAR(make(R::mean)(y, p, w).item<double>(), (l[0] + 2 * l[2]) / 3, 1e-14);
  EXPECT_NEAR(make(R::mean_with_sample_weight)(y, p, w).item<double>(), (l[0] + 2 * l[2]) / 3.0, 1e-14);
  EXPECT_NEAR(make(R::mean_with_sample_weight)(y, p, f64({1.0, 1.0, 2.0}, {3})).item<double>(),
              (l[0] + l[1] + 2 * l[2]) / 4.0, 1e-14);
  const Tensor none = make(R::none)(y, p, w);
  EXPECT_TRUE(test::all_close(none, {l[0], 0.0, 2 * l[2]}, {1e-14, 1e-14}));
  // All-zero weights with mean_with_sample_weight: divide_no_nan gives 0, not NaN.
  EXPECT_EQ(make(R::mean_with_sample_weight)(y, p, f64({0, 0, 0}, {3})).item<double>(), 0.0);
  // An empty batch reduces to 0.
  EXPECT_EQ(make(R::sum_over_batch_size)(i64({}), f64({}, {0, 3}), f64({}, {0})).item<double>(), 0.0);
  EXPECT_EQ(losses::reduction_from_string("sum_over_batch_size"), R::sum_over_batch_size);
  EXPECT_THROW(losses::reduction_from_string("auto"), ValueError);
}

TEST(Losses, IgnoreClassMasksLabelsOutOfTheLossAndTheDivisor) {
  const auto l = per_sample();
  const losses::SparseCategoricalCrossentropy loss({.from_logits = true, .ignore_class = 1});
  const Tensor y = i64(kLabels), p = f64(kLogits, {3, 3});
  // Keras: mask * total / (valid + epsilon) as weights, then sum / total.
  const double expected = (l[0] + l[2]) * (3.0 / (2.0 + 1e-7)) / 3.0;
  EXPECT_NEAR(loss(y, p).item<double>(), expected, 1e-14);
  EXPECT_TRUE(test::all_close(loss.call(y, p), {l[0], 0.0, l[2]}, {1e-14, 1e-14}));
  const Tensor w = f64({2.0, 5.0, 1.0}, {3});
  EXPECT_NEAR(loss(y, p, w).item<double>(), (2 * l[0] + l[2]) * (3.0 / (2.0 + 1e-7)) / 3.0, 1e-14);
}

TEST(Losses, UnweightedLossesEqualTheFusedOps) {
  const Tensor probs = f64({0.2, 0.7, 0.1, 0.3, 0.3, 0.4}, {2, 3});
  const Tensor onehot = f64({0, 1, 0, 0, 0, 1}, {2, 3});
  const Tensor targets = f64({0.1, 0.9, 0.0, 0.4, 0.5, 0.2}, {2, 3});
  struct Row {
    std::shared_ptr<losses::Loss> loss;
    Tensor expected;
  };
  const std::vector<Row> rows = {
      {losses::get("categorical_crossentropy"), categorical_crossentropy(onehot, probs)},
      {std::make_shared<losses::CategoricalCrossentropy>(losses::CategoricalCrossentropyOptions{.from_logits = true, .label_smoothing = 0.2}),
       categorical_crossentropy(onehot, probs, {.from_logits = true, .label_smoothing = 0.2})},
      {losses::get("binary_crossentropy"), binary_crossentropy(targets, probs)},
      {std::make_shared<losses::BinaryCrossentropy>(losses::BinaryCrossentropyOptions{.from_logits = true, .label_smoothing = 0.1}),
       binary_crossentropy(targets, probs, {.from_logits = true, .label_smoothing = 0.1})},
      {losses::get("mse"), mean_squared_error(targets, probs)},
      {losses::get("mae"), mean_absolute_error(targets, probs)},
      {losses::get("huber"), huber(targets, probs)},
      {std::make_shared<losses::Huber>(losses::HuberOptions{.delta = 0.1}), huber(targets, probs, 0.1)},
      {losses::get("kld"), kl_divergence(targets, probs)},
  };
  for (const Row& r : rows) {
    EXPECT_DOUBLE_EQ((*r.loss)(r.loss->name() == "categorical_crossentropy" ? onehot : targets, probs).item<double>(),
                     r.expected.item<double>())
        << r.loss->name();
  }
}

TEST(Losses, PerValueWeightsAndNonContiguousPredictions) {
  // binary_crossentropy per sample of (2, 3) values; weights (2, 1) and a transposed y_pred.
  const Tensor p_t = f64({0.2, 0.3, 0.7, 0.3, 0.1, 0.4}, {3, 2});
  const Tensor p = p_t.t();  // (2, 3), strided
  const Tensor y = f64({0, 1, 0, 1, 1, 0}, {2, 3});
  const losses::BinaryCrossentropy bce;
  const std::vector<double> per = binary_crossentropy(y, p.contiguous(), {.reduction = Reduction::none}).to_vector<double>();
  EXPECT_NEAR(bce(y, p, f64({3.0, 1.0}, {2, 1})).item<double>(), (3 * per[0] + per[1]) / 2, 1e-14);
  EXPECT_THROW(bce(y, p, f64({1, 2, 3}, {3})), ShapeError);
}

TEST(Losses, NanPredictionsPropagate) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor p = f64({nan, 0.5}, {2, 1});
  EXPECT_TRUE(std::isnan(losses::MeanSquaredError()(f64({0, 1}, {2, 1}), p, f64({1, 1}, {2})).item<double>()));
}

TEST(Losses, GradientsThroughTheWeightingPassGradcheck) {
  const Tensor labels = i64({2, 0, 1, 1});
  const Tensor targets = f64({0.2, 0.8, 0.5, 0.1, 0.9, 0.3, 0.6, 0.4}, {4, 2});
  const Tensor w = f64({0.5, 2.0, 0.0, 1.0}, {4});
  const losses::SparseCategoricalCrossentropy scce({.from_logits = true, .ignore_class = 0});
  const losses::MeanSquaredError mse({.reduction = losses::Reduction::mean_with_sample_weight});
  const losses::BinaryCrossentropy bce({.from_logits = true});
  const Tensor logits = randn({4, 3}, {.dtype = float64, .device = kCpu});
  const Tensor preds = uniform({4, 2}, 0.2, 0.8, {.dtype = float64, .device = kCpu});
  auto r1 = gradcheck([&](const std::vector<Tensor>& in) { return scce(labels, in[0], w); }, {logits});
  EXPECT_TRUE(r1.ok) << r1.message;
  auto r2 = gradcheck([&](const std::vector<Tensor>& in) { return mse(targets, in[0], w); }, {preds});
  EXPECT_TRUE(r2.ok) << r2.message;
  auto r3 = gradcheck([&](const std::vector<Tensor>& in) { return bce(targets, in[0], w.reshape({4, 1})); }, {preds});
  EXPECT_TRUE(r3.ok) << r3.message;
  auto r4 = gradcheck([&](const std::vector<Tensor>& in) { return losses::KLDivergence()(targets, in[0]); }, {preds});
  EXPECT_TRUE(r4.ok) << r4.message;
}

TEST(LossesByName, GetResolvesKerasIdentifiers) {
  EXPECT_EQ(losses::get("mse")->name(), "mean_squared_error");
  EXPECT_EQ(losses::get("MeanSquaredError")->class_name(), "MeanSquaredError");
  EXPECT_EQ(losses::get("huber")->name(), "huber");
  EXPECT_EQ(losses::get("Huber")->name(), "huber_loss");
  EXPECT_EQ(losses::get("kld")->class_name(), "KLDivergence");
  EXPECT_EQ(losses::get("kl_divergence")->name(), "kl_divergence");
  EXPECT_EQ(losses::get("SparseCategoricalCrossentropy")->name(), "sparse_categorical_crossentropy");
  EXPECT_EQ(losses::get("bce")->class_name(), "BinaryCrossentropy");
  EXPECT_EQ(losses::canonical_name("MAE"), "mean_absolute_error");
  EXPECT_EQ(losses::canonical_name("CategoricalCrossentropy"), "categorical_crossentropy");
  EXPECT_EQ(losses::canonical_name("nope"), "");
  try {
    losses::get("hinge2");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("sparse_categorical_crossentropy"), std::string::npos) << e.what();
  }
}

TEST(LossesByName, LossRefAndCustomFunctions) {
  const losses::LossRef by_name = "categorical_crossentropy";
  EXPECT_EQ(by_name.name(), "categorical_crossentropy");
  const losses::LossRef custom([](const Tensor& t, const Tensor& p) { return abs(p - t); }, "l1");
  const auto loss = custom.resolve();
  EXPECT_EQ(loss->name(), "l1");
  EXPECT_NEAR((*loss)(f64({1, 2}, {2}), f64({0, 0}, {2}), f64({1, 0}, {2})).item<double>(), 0.5, 1e-15);
  const losses::LossRef object = losses::Huber({.delta = 2.0});
  EXPECT_EQ(object.name(), "huber_loss");
}

TEST(LossesByName, ConfigsRoundTrip) {
  const losses::SparseCategoricalCrossentropy a({.from_logits = true, .ignore_class = -1,
                                                 .reduction = losses::Reduction::sum});
  const nlohmann::json j = losses::serialize(a);
  EXPECT_EQ(j["config"]["reduction"], "sum");
  EXPECT_EQ(losses::deserialize(j)->get_config(), a.get_config());
  const losses::Huber h({.delta = 0.5, .name = "h"});
  EXPECT_EQ(losses::deserialize(losses::serialize(h))->get_config(), h.get_config());
}

}  // namespace
}  // namespace kiln
