// Metrics with Keras 3's names, defaults and formulas. Accumulators are tensors on the
// device of the first y_pred (created there on the first update_state after construction
// or reset_state, so a model moved to another device between epochs takes its metrics
// along): update_state queues device work only, and result() is the one host sync (it
// copies the few accumulator values back). Updates never record autograd.
//
//   auto acc = kiln::metrics::get("accuracy", "sparse_categorical_crossentropy");
//   for (batch ...) acc->update_state(y, model(x));
//   double a = acc->result();  acc->reset_state();
//
// Mean-style metrics (Keras' MeanMetricWrapper: the accuracies, mse, ...) compute per-sample
// values, then accumulate total += sum(values * w) and count += sum(w) (w = 1 without
// weights), reducing extra trailing axes by their mean as Keras' Mean does;
// result = total / count (0 when count is 0). Accumulators are float64.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::metrics {

class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;

  // Accumulates one batch. sample_weight (optional): per sample (N,) / (N, 1), a scalar,
  // or per value; it broadcasts as in Keras.
  virtual void update_state(const Tensor& y_true, const Tensor& y_pred,
                            const Tensor& sample_weight = Tensor()) = 0;
  // The metric over everything accumulated since the last reset (host sync).
  virtual double result() const = 0;
  // Back to nothing accumulated; the next update_state creates the accumulators anew on
  // its device.
  virtual void reset_state() = 0;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Keras' Mean: the weighted mean of the values given. update_state(values, w); the
// three-argument form takes y_pred as the values (y_true unused), so a loss tracker can
// sit in a list of metrics.
class Mean : public Metric {
 public:
  explicit Mean(std::string name = "mean") : Metric(std::move(name)) {}
  void update_state(const Tensor& values, const Tensor& sample_weight = Tensor());
  void update_state(const Tensor& values, double sample_weight);  // e.g. the batch size
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) override;
  double result() const override;
  void reset_state() override;

 protected:
  // Adds Keras' samplewise values (already weighted) and weights to the totals.
  void accumulate(const Tensor& values, const Tensor& weights);

 private:
  Tensor totals_;  // float64 (2,): total, count; on the device of the first update
};

// Keras' MeanMetricWrapper: per-sample values from fn(y_true, y_pred), then Mean.
using MetricFn = std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)>;
class MeanMetricWrapper : public Mean {
 public:
  MeanMetricWrapper(MetricFn fn, std::string name);
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;

 private:
  MetricFn fn_;
};

// ---- per-sample functions (Keras' metric functions; float32 values of 0/1 for the
// accuracies), usable with MeanMetricWrapper ----

// mean over the last axis of (y_true == (y_pred > threshold)).
Tensor binary_accuracy(const Tensor& y_true, const Tensor& y_pred, double threshold = 0.5);
// argmax(y_true, -1) == argmax(y_pred, -1) (first index on ties).
Tensor categorical_accuracy(const Tensor& y_true, const Tensor& y_pred);
// y_true (integer or float class ids, (N,) or (N, 1)) == argmax(y_pred, -1).
Tensor sparse_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred);
// Whether the true class is among the k largest predictions (ties at the boundary count
// as inside, as tf.math.in_top_k).
Tensor top_k_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred, std::int64_t k = 5);
Tensor sparse_top_k_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred, std::int64_t k = 5);

// ---- the metric classes (names as Keras' defaults) ----

struct BinaryAccuracyOptions {
  double threshold = 0.5;
  std::string name = "binary_accuracy";
};
class BinaryAccuracy final : public MeanMetricWrapper {
 public:
  explicit BinaryAccuracy(BinaryAccuracyOptions options = {});
};
class CategoricalAccuracy final : public MeanMetricWrapper {
 public:
  explicit CategoricalAccuracy(std::string name = "categorical_accuracy");
};
class SparseCategoricalAccuracy final : public MeanMetricWrapper {
 public:
  explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy");
};
struct TopKOptions {
  std::int64_t k = 5;
  std::string name;  // empty: "top_k_categorical_accuracy" / "sparse_top_k_categorical_accuracy"
};
class TopKCategoricalAccuracy final : public MeanMetricWrapper {
 public:
  explicit TopKCategoricalAccuracy(TopKOptions options = {});
};
class SparseTopKCategoricalAccuracy final : public MeanMetricWrapper {
 public:
  explicit SparseTopKCategoricalAccuracy(TopKOptions options = {});
};
// mean over the last axis of (y_pred - y_true)^2 / |y_pred - y_true|.
class MeanSquaredError final : public MeanMetricWrapper {
 public:
  explicit MeanSquaredError(std::string name = "mean_squared_error");
};
class MeanAbsoluteError final : public MeanMetricWrapper {
 public:
  explicit MeanAbsoluteError(std::string name = "mean_absolute_error");
};
// sqrt of the weighted mean of the squared errors.
class RootMeanSquaredError final : public Mean {
 public:
  explicit RootMeanSquaredError(std::string name = "root_mean_squared_error");
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = Tensor()) override;
  double result() const override;
};

// Precision = tp / (tp + fp), Recall = tp / (tp + fn), over every element of y_pred (or
// only column class_id of the last axis): y_pred > thresholds is a predicted positive, a
// nonzero y_true a positive (Keras casts y_true to bool). 0 when the ratio is 0 / 0.
struct PrecisionRecallOptions {
  double thresholds = 0.5;
  std::optional<std::int64_t> class_id{};
  std::string name;  // empty: "precision" / "recall"
};
class Precision final : public Metric {
 public:
  explicit Precision(PrecisionRecallOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = Tensor()) override;
  double result() const override;
  void reset_state() override;

 private:
  PrecisionRecallOptions options_;
  Tensor counts_;  // float64 (2,): tp, fp
};
class Recall final : public Metric {
 public:
  explicit Recall(PrecisionRecallOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = Tensor()) override;
  double result() const override;
  void reset_state() override;

 private:
  PrecisionRecallOptions options_;
  Tensor counts_;  // float64 (2,): tp, fn
};

// Keras' AUC over every element of y_pred (multi_label = false), with num_thresholds
// thresholds {-eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps}: the device keeps weighted positive and
// negative counts per threshold bucket (Keras' evenly-distributed-thresholds path);
// result() forms tp, fp, tn, fn by suffix sums and integrates on the host.
enum class AucCurve { ROC, PR };
enum class AucSummation { interpolation, minoring, majoring };
struct AUCOptions {
  std::int64_t num_thresholds = 200;  // > 1
  AucCurve curve = AucCurve::ROC;
  AucSummation summation_method = AucSummation::interpolation;
  std::string name = "auc";
  bool from_logits = false;  // apply a sigmoid to y_pred first
};
class AUC final : public Metric {
 public:
  explicit AUC(AUCOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = Tensor()) override;
  double result() const override;
  void reset_state() override;
  // The confusion counts at each threshold (host copies; for tests and inspection).
  struct Confusion {
    std::vector<double> true_positives, false_positives, true_negatives, false_negatives;
  };
  Confusion confusion() const;

 private:
  AUCOptions options_;
  Tensor buckets_;  // float64 (2, num_thresholds): weighted positives, negatives per bucket
};

// ---- by name ----

// A metric from a Keras identifier. "accuracy" and "acc" resolve by the loss as Keras does:
// sparse_categorical_crossentropy -> sparse_categorical_accuracy, categorical_crossentropy
// -> categorical_accuracy, binary_crossentropy -> binary_accuracy (threshold 0.5); with any
// other loss (or none) they resolve by shapes on the first update, as Keras 3's compile
// does (y_pred's last axis 1: binary; y_true of lower rank or last axis 1: sparse; else
// categorical). The metric is named as given ("acc" stays "acc"). Other names:
// "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
// "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "precision", "recall",
// "auc", "mean_squared_error"/"mse", "mean_absolute_error"/"mae", "root_mean_squared_error",
// "mean", and the class names ("AUC", "Precision", "MeanSquaredError", ...: default names).
// Loss names are resolved through losses::canonical_name. Unknown names throw ValueError
// listing the valid ones.
std::shared_ptr<Metric> get(std::string_view name, std::string_view loss_name = "");

// What compile() takes for each metric: a Keras name, a metric object (moved into a shared
// handle) or a shared handle. A compiled model should resolve once per compile.
class MetricRef {
 public:
  MetricRef(const char* name) : name_(name) {}             // NOLINT: implicit by design
  MetricRef(std::string name) : name_(std::move(name)) {}  // NOLINT
  MetricRef(std::shared_ptr<Metric> metric) : metric_(std::move(metric)) {}  // NOLINT
  template <class M>
    requires std::derived_from<M, Metric>
  MetricRef(M&& metric) : metric_(std::make_shared<M>(std::move(metric))) {}  // NOLINT: rvalues

  std::shared_ptr<Metric> resolve(std::string_view loss_name = "") const;

 private:
  std::string name_;
  std::shared_ptr<Metric> metric_;
};

}  // namespace kiln::metrics
