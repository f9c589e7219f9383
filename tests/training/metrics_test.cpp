// Metrics on cpu: Keras 3's documented examples (values and weighted values), accumulation
// across batches and reset, Keras' weighting of multi-axis values, "accuracy" resolution by
// loss and by shape, top-k ties, AUC against a float64 reference, errors and names.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/op_test_util.h"
#include "kiln/training/metrics.h"

namespace kiln {
namespace {

using test::kCpu;

Tensor f32(const std::vector<double>& v, const Shape& shape) { return from_vector(v, shape, {.dtype = float32, .device = kCpu}); }
Tensor i64(const std::vector<std::int64_t>& v, const Shape& shape) { return from_vector(v, shape, {.device = kCpu}); }

double once(metrics::Metric& m, const Tensor& y, const Tensor& p, const Tensor& w = Tensor()) {
  m.reset_state();
  m.update_state(y, p, w);
  return m.result();
}

// The examples of Keras 3's metric docstrings.
TEST(Metrics, KerasDocumentedExamples) {
  metrics::BinaryAccuracy bin;
  const Tensor by = f32({1, 1, 0, 0}, {4, 1}), bp = f32({0.98, 1, 0, 0.6}, {4, 1});
  EXPECT_NEAR(once(bin, by, bp), 0.75, 1e-7);
  EXPECT_NEAR(once(bin, by, bp, f32({1, 0, 0, 1}, {4})), 0.5, 1e-7);

  metrics::CategoricalAccuracy cat;
  const Tensor cy = f32({0, 0, 1, 0, 1, 0}, {2, 3}), cp = f32({0.1, 0.9, 0.8, 0.05, 0.95, 0}, {2, 3});
  EXPECT_NEAR(once(cat, cy, cp), 0.5, 1e-7);
  EXPECT_NEAR(once(cat, cy, cp, f32({0.7, 0.3}, {2})), 0.3, 1e-7);

  metrics::SparseCategoricalAccuracy sparse;
  const Tensor sy = f32({2, 1}, {2, 1}), sp = f32({0.1, 0.6, 0.3, 0.05, 0.95, 0}, {2, 3});
  EXPECT_NEAR(once(sparse, sy, sp), 0.5, 1e-7);
  EXPECT_NEAR(once(sparse, sy, sp, f32({0.7, 0.3}, {2})), 0.3, 1e-7);

  metrics::TopKCategoricalAccuracy top1({.k = 1});
  EXPECT_NEAR(once(top1, cy, cp), 0.5, 1e-7);
  EXPECT_NEAR(once(top1, cy, cp, f32({0.7, 0.3}, {2})), 0.3, 1e-7);
  metrics::SparseTopKCategoricalAccuracy stop1({.k = 1});
  EXPECT_NEAR(once(stop1, i64({2, 1}, {2}), cp), 0.5, 1e-7);

  metrics::Precision precision;
  metrics::Recall recall;
  const Tensor ry = f32({0, 1, 1, 1}, {4}), rp = f32({1, 0, 1, 1}, {4});
  EXPECT_NEAR(once(precision, ry, rp), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(once(precision, ry, rp, f32({0, 0, 1, 0}, {4})), 1.0, 1e-12);
  EXPECT_NEAR(once(recall, ry, rp), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(once(recall, ry, rp, f32({0, 0, 1, 0}, {4})), 1.0, 1e-12);

  metrics::AUC auc({.num_thresholds = 3});
  const Tensor ay = f32({0, 0, 1, 1}, {4}), ap = f32({0, 0.5, 0.3, 0.9}, {4});
  EXPECT_NEAR(once(auc, ay, ap), 0.75, 1e-12);
  EXPECT_NEAR(once(auc, ay, ap, f32({1, 0, 0, 1}, {4})), 1.0, 1e-12);

  metrics::MeanSquaredError mse;
  metrics::RootMeanSquaredError rmse;
  metrics::MeanAbsoluteError mae;
  const Tensor my = f32({0, 1, 0, 0}, {2, 2}), mp = f32({1, 1, 0, 0}, {2, 2});
  EXPECT_NEAR(once(mse, my, mp), 0.25, 1e-7);
  EXPECT_NEAR(once(mse, my, mp, f32({1, 0}, {2})), 0.5, 1e-7);
  EXPECT_NEAR(once(rmse, my, mp), 0.5, 1e-7);
  EXPECT_NEAR(once(rmse, my, mp, f32({1, 0}, {2})), std::sqrt(0.5), 1e-7);
  EXPECT_NEAR(once(mae, my, mp), 0.25, 1e-7);

  metrics::Mean mean;
  mean.update_state(f32({1, 3, 5, 7}, {4}), f32({1, 1, 0, 0}, {4}));
  EXPECT_NEAR(mean.result(), 2.0, 1e-12);
}

TEST(Metrics, AccumulateAcrossBatchesUntilReset) {
  metrics::SparseCategoricalAccuracy acc;
  acc.update_state(i64({0, 1}, {2}), f32({0.9, 0.1, 0.8, 0.2}, {2, 2}));        // 1 of 2
  acc.update_state(i64({1, 1, 0}, {3}), f32({0.1, 0.9, 0.3, 0.7, 0.2, 0.8}, {3, 2}));  // 2 of 3
  EXPECT_NEAR(acc.result(), 3.0 / 5.0, 1e-12);
  acc.reset_state();
  EXPECT_EQ(acc.result(), 0.0);
  acc.update_state(i64({1}, {1}), f32({0.4, 0.6}, {1, 2}));
  EXPECT_EQ(acc.result(), 1.0);
  // The loss tracker's form: a scalar per batch weighted by the batch size.
  metrics::Mean loss("loss");
  loss.update_state(f32({2.0}, {}), 32.0);
  loss.update_state(f32({5.0}, {}), 8.0);
  EXPECT_NEAR(loss.result(), (2.0 * 32 + 5.0 * 8) / 40, 1e-12);
}

TEST(Metrics, MultiAxisValuesAreReducedAsKerasMean) {
  // values (2, 2) with per-sample weights: each row's mean, weighted; the count is the
  // weights' sum. With per-value weights the row means of v * w over the row means of w.
  metrics::Mean m;
  m.update_state(f32({1, 3, 10, 20}, {2, 2}), f32({1, 3}, {2}));
  EXPECT_NEAR(m.result(), (2.0 * 1 + 15.0 * 3) / 4, 1e-12);
  m.reset_state();
  m.update_state(f32({1, 3, 10, 20}, {2, 2}), f32({1, 0, 1, 1}, {2, 2}));
  EXPECT_NEAR(m.result(), (0.5 + 15.0) / (0.5 + 1.0), 1e-12);
  EXPECT_THROW(m.update_state(f32({1, 2}, {2}), f32({1, 2, 3}, {3})), ShapeError);
}

TEST(Metrics, TopKCountsTiesAtTheBoundaryAsInside) {
  // Label 1 scores 0.5; two classes score higher: in the top 3, not the top 2. A tie at the
  // boundary (label 2, tied with class 3) counts as inside, as tf.math.in_top_k.
  const Tensor p = f32({0.9, 0.5, 0.1, 0.6, 0.2, 0.3, 0.4, 0.4}, {2, 4});
  EXPECT_TRUE(test::all_close(metrics::sparse_top_k_categorical_accuracy(i64({1, 2}, {2}), p, 2), {0.0, 1.0}, {}));
  EXPECT_TRUE(test::all_close(metrics::sparse_top_k_categorical_accuracy(i64({1, 2}, {2}), p, 3), {1.0, 1.0}, {}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(test::all_close(metrics::sparse_top_k_categorical_accuracy(i64({0}, {1}), f32({nan, 0.1}, {1, 2}), 2),
                              {0.0}, {}));
}

TEST(Metrics, AucMatchesAFloat64Reference) {
  const std::int64_t n = 64;
  const std::vector<double> pred = test::uniform_values(n, 0, 1, 7), flip = test::uniform_values(n, 0, 1, 8);
  std::vector<double> label(n);
  for (std::int64_t i = 0; i < n; ++i) label[i] = flip[i] < pred[i] ? 1.0 : 0.0;  // informative labels
  // Reference: confusion counts at Keras' 200 thresholds, then the trapezoids of the ROC.
  const int k = 200;
  std::vector<double> th(k);
  th[0] = -1e-7;
  th[k - 1] = 1 + 1e-7;
  for (int i = 1; i < k - 1; ++i) th[i] = static_cast<double>(i) / (k - 1);
  std::vector<double> tpr(k), fpr(k), prec(k);
  for (int i = 0; i < k; ++i) {
    double tp = 0, fp = 0, fn = 0, tn = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const bool pos = static_cast<float>(pred[j]) > th[i];
      (label[j] > 0 ? (pos ? tp : fn) : (pos ? fp : tn)) += 1;
    }
    tpr[i] = tp + fn > 0 ? tp / (tp + fn) : 0;
    fpr[i] = fp + tn > 0 ? fp / (fp + tn) : 0;
    prec[i] = tp + fp > 0 ? tp / (tp + fp) : 0;
  }
  double roc = 0, minoring = 0, pr_majoring = 0;
  for (int i = 0; i + 1 < k; ++i) {
    roc += (fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2;
    minoring += (fpr[i] - fpr[i + 1]) * std::min(tpr[i], tpr[i + 1]);
    pr_majoring += (tpr[i] - tpr[i + 1]) * std::max(prec[i], prec[i + 1]);
  }
  const Tensor y = f32(label, {n}), p = f32(pred, {n});
  metrics::AUC auc;
  EXPECT_NEAR(once(auc, y, p), roc, 1e-12);
  metrics::AUC minor({.summation_method = metrics::AucSummation::minoring});
  EXPECT_NEAR(once(minor, y, p), minoring, 1e-12);
  metrics::AUC pr({.curve = metrics::AucCurve::PR, .summation_method = metrics::AucSummation::majoring});
  EXPECT_NEAR(once(pr, y, p), pr_majoring, 1e-12);
  // Logits through a sigmoid give the same curve as the probabilities.
  std::vector<double> logits(n);
  for (std::int64_t i = 0; i < n; ++i) logits[i] = std::log(pred[i] / (1 - pred[i]));
  metrics::AUC from_logits({.from_logits = true});
  EXPECT_NEAR(once(from_logits, y, f32(logits, {n})), roc, 0.02);
  const auto c = auc.confusion();
  EXPECT_EQ(c.true_positives.size(), 200u);
  EXPECT_DOUBLE_EQ(c.true_positives[0] + c.false_negatives[0], std::count(label.begin(), label.end(), 1.0));
}

TEST(Metrics, AucPrInterpolationOnASmallCase) {
  // Thresholds {-eps, 0.5, 1+eps}: tp = (2, 1, 0), fp = (2, 0, 0), fn = (0, 1, 2). Keras'
  // interpolate_pr_auc: interval 0 has slope 1/3, intercept 2/3, p ratio 4; interval 1
  // slope 1, intercept 0, ratio 1 (p = 0 at its end); each over tp + fn at its end (2).
  metrics::AUC pr({.num_thresholds = 3, .curve = metrics::AucCurve::PR});
  const double want = (1.0 / 3.0) * (1.0 + (2.0 / 3.0) * std::log(4.0)) / 2.0 + 0.5;
  EXPECT_NEAR(once(pr, f32({0, 0, 1, 1}, {4}), f32({0, 0.5, 0.3, 0.9}, {4})), want, 1e-12);
}

TEST(MetricsByName, AccuracyResolvesByTheLossThenByShapes) {
  const Tensor probs = f32({0.2, 0.8, 0.6, 0.4}, {2, 2});
  auto sparse = metrics::get("accuracy", "sparse_categorical_crossentropy");
  EXPECT_EQ(sparse->name(), "accuracy");
  EXPECT_NEAR(once(*sparse, i64({1, 1}, {2}), probs), 0.5, 1e-7);
  auto categorical = metrics::get("acc", "CategoricalCrossentropy");
  EXPECT_EQ(categorical->name(), "acc");
  EXPECT_NEAR(once(*categorical, f32({0, 1, 0, 1}, {2, 2}), probs), 0.5, 1e-7);
  auto binary = metrics::get("accuracy", "binary_crossentropy");
  EXPECT_NEAR(once(*binary, f32({1, 0, 1, 1}, {2, 2}), probs), 0.25, 1e-7);  // > 0.5: (0, 1, 1, 0)
  // Another loss: Keras 3 decides by shapes (y_pred's last axis 1: binary).
  auto by_shape = metrics::get("accuracy", "mse");
  EXPECT_NEAR(once(*by_shape, f32({1, 0}, {2, 1}), f32({0.7, 0.7}, {2, 1})), 0.5, 1e-7);
  auto sparse_by_shape = metrics::get("Accuracy");
  EXPECT_NEAR(once(*sparse_by_shape, i64({1, 0}, {2}), probs), 1.0, 1e-7);
}

TEST(MetricsByName, NamesAndErrors) {
  EXPECT_EQ(metrics::get("mse")->name(), "mse");
  EXPECT_EQ(metrics::get("AUC")->name(), "auc");
  EXPECT_EQ(metrics::get("precision")->name(), "precision");
  EXPECT_EQ(metrics::get("MeanSquaredError")->name(), "mean_squared_error");
  EXPECT_EQ(metrics::get("top_k_categorical_accuracy")->name(), "top_k_categorical_accuracy");
  const metrics::MetricRef ref = metrics::AUC({.name = "roc"});
  EXPECT_EQ(ref.resolve()->name(), "roc");
  try {
    metrics::get("accuracyy");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("sparse_categorical_accuracy"), std::string::npos) << e.what();
  }
  metrics::CategoricalAccuracy cat;
  EXPECT_THROW(cat.update_state(f32({0, 1}, {1, 2}), f32({0.1, 0.2, 0.7}, {1, 3})), ShapeError);
  EXPECT_THROW(metrics::AUC({.num_thresholds = 1}), ValueError);
  metrics::Precision p({.class_id = 5});
  EXPECT_THROW(p.update_state(f32({0, 1}, {1, 2}), f32({0.1, 0.9}, {1, 2})), IndexError);
}

}  // namespace
}  // namespace kiln
