// Mean-style metrics (Keras 3's Mean, MeanMetricWrapper and the accuracy functions), with
// device-side float64 totals. Precision, Recall and AUC are in training/metrics_confusion.cpp,
// metrics::get in training/metric_registry.cpp.
#include "kiln/training/metrics.h"

#include <cmath>
#include <limits>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/loss.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/kernels/unary.h"
#include "kiln/training/loss_weights.h"

namespace kiln::metrics {
namespace {

using losses::detail::squeeze_or_expand_to_same_rank;

// Axes [from, to) as a reduction list (empty when from >= to: kiln's reductions read an
// empty list as "every axis", so callers skip the call then).
Axes axes_range(int from, int to) {
  Axes a;
  for (int d = from; d < to; ++d) a.push_back(d);
  return a;
}

Tensor as_float(const Tensor& t) { return is_floating(t.dtype()) ? t.detach() : t.detach().to(DType::float32); }

// (labels (M,) int64, predictions (M, C)): Keras' in_top_k, true when fewer than k classes
// score strictly higher than the label's and its score is finite (tf.math.in_top_k).
Tensor in_top_k(const Tensor& labels, const Tensor& pred, std::int64_t k) {
  KILN_CHECK(k >= 1, ValueError, "top_k_categorical_accuracy: k must be >= 1, got ", k);
  const Tensor target = gather(pred, labels.unsqueeze(-1), -1);  // (M, 1)
  const Tensor higher = sum(gt(pred, target).to(DType::float32), {-1});
  const Tensor finite = lt(abs(target.squeeze(-1)), std::numeric_limits<double>::infinity());
  return mul(lt(higher, static_cast<double>(k)).to(DType::float32), finite.to(DType::float32));
}

// Flattens (…, C) predictions to (M, C) and labels to (M,), as Keras' top-k accuracies.
Tensor top_k_matches(const Tensor& labels, const Tensor& y_pred, std::int64_t k, const char* op) {
  KILN_CHECK(y_pred.ndim() >= 1, ShapeError, op, ": y_pred needs a class axis, got shape ", y_pred.shape());
  const Tensor flat_labels = labels.reshape({-1}).to(DType::int64);
  const Tensor flat_pred = y_pred.detach().reshape({-1, y_pred.shape()[y_pred.ndim() - 1]});
  KILN_CHECK(flat_labels.numel() == flat_pred.shape()[0], ShapeError, op, ": y_true with ", labels.numel(),
             " labels does not fit y_pred of shape ", y_pred.shape());
  return in_top_k(flat_labels, flat_pred, k).reshape(labels.shape());
}

}  // namespace

// ---- Mean ----

void Mean::accumulate(const Tensor& values, const Tensor& weights) {
  if (!totals_.defined()) {
    totals_ = zeros({2}, {.dtype = DType::float64, .device = values.device()});
  }
  KILN_CHECK(totals_.device() == values.device(), DeviceError, name(), ": update on ", values.device(),
             " but the metric accumulates on ", totals_.device(), " since its last reset_state");
  Tensor total = totals_.select(0, 0), count = totals_.select(0, 1);
  add_(total, sum(values.to(DType::float64)));
  if (weights.defined()) {
    add_(count, sum(weights.to(DType::float64)));
  } else {
    add_(count, values.ndim() >= 1 ? static_cast<double>(values.shape()[0]) : 1.0);
  }
}

// Keras' reduce_to_samplewise_values (reduce_fn = mean), then the totals.
void Mean::update_state(const Tensor& values, const Tensor& sample_weight) {
  KILN_CHECK(values.defined(), ValueError, name(), ": update_state: values are undefined");
  NoGradGuard no_grad;
  Tensor v = as_float(values);
  const int values_ndim = v.ndim();
  Tensor w;
  if (sample_weight.defined()) {
    KILN_CHECK(sample_weight.device() == v.device(), DeviceError, name(), ": sample_weight is on ",
               sample_weight.device(), " but the values are on ", v.device());
    std::tie(v, w) = squeeze_or_expand_to_same_rank(v, sample_weight.detach().to(v.dtype()));
    const int weight_ndim = w.ndim();
    if (v.ndim() > weight_ndim) v = mean(v, axes_range(weight_ndim, v.ndim()));
    KILN_CHECK(broadcast_shapes(w.shape(), v.shape(), "metric") == v.shape(), ShapeError, name(),
               ": sample_weight of shape ", sample_weight.shape(), " does not broadcast to values of shape ",
               values.shape());
    w = w.expand(v.shape());
    v = mul(v, w);
    if (values_ndim > 1 && weight_ndim > 1) w = mean(w, axes_range(1, weight_ndim));
  }
  if (v.ndim() > 1) v = mean(v, axes_range(1, v.ndim()));
  accumulate(v, w);
}

void Mean::update_state(const Tensor& values, double sample_weight) {
  KILN_CHECK(values.defined(), ValueError, name(), ": update_state: values are undefined");
  update_state(values, full({}, sample_weight, {.dtype = DType::float64, .device = values.device()}));
}

void Mean::update_state(const Tensor&, const Tensor& y_pred, const Tensor& sample_weight) {
  update_state(y_pred, sample_weight);
}

double Mean::result() const {
  if (!totals_.defined()) return 0.0;
  const std::vector<double> t = totals_.to_vector<double>();  // the one host sync
  return t[1] == 0.0 ? 0.0 : t[0] / t[1];
}

void Mean::reset_state() {
  totals_ = Tensor();
}

// ---- MeanMetricWrapper ----

MeanMetricWrapper::MeanMetricWrapper(MetricFn fn, std::string name) : Mean(std::move(name)), fn_(std::move(fn)) {
  KILN_CHECK(fn_ != nullptr, ValueError, "MeanMetricWrapper: the metric function of '", this->name(), "' is empty");
}

void MeanMetricWrapper::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  KILN_CHECK(y_true.defined() && y_pred.defined(), ValueError, name(), ": y_true and y_pred must be defined");
  NoGradGuard no_grad;
  Mean::update_state(fn_(y_true.detach(), y_pred.detach()), sample_weight);
}

// ---- the metric functions ----

Tensor binary_accuracy(const Tensor& y_true, const Tensor& y_pred, double threshold) {
  auto [t, p] = squeeze_or_expand_to_same_rank(as_float(y_true), y_pred.detach());
  return eq(t, gt(p, threshold).to(t.dtype())).to(DType::float32);
}

Tensor categorical_accuracy(const Tensor& y_true, const Tensor& y_pred) {
  KILN_CHECK(y_true.shape() == y_pred.shape(), ShapeError, "categorical_accuracy: y_true of shape ", y_true.shape(),
             " does not match y_pred of shape ", y_pred.shape());
  return eq(argmax(y_true.detach(), -1), argmax(y_pred.detach(), -1)).to(DType::float32);
}

Tensor sparse_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred) {
  Tensor labels = y_true.detach();
  const Shape original = labels.shape();
  bool reshape_matches = false;
  if (labels.ndim() == y_pred.ndim() && labels.ndim() > 0 && labels.shape()[labels.ndim() - 1] == 1) {
    labels = labels.squeeze(-1);
    reshape_matches = true;
  }
  const Tensor predicted = argmax(y_pred.detach(), -1);
  KILN_CHECK(broadcast_shapes(labels.shape(), predicted.shape(), "sparse_categorical_accuracy") == predicted.shape(),
             ShapeError, "sparse_categorical_accuracy: y_true of shape ", y_true.shape(), " does not fit y_pred of shape ",
             y_pred.shape());
  // Compared as y_pred's dtype, as Keras converts y_true to it (float labels compare too).
  Tensor matches = eq(labels.to(DType::float64), predicted.to(DType::float64)).to(DType::float32);
  if (reshape_matches) matches = matches.reshape(original);
  if (matches.ndim() > 1 && matches.shape()[matches.ndim() - 1] == 1) matches = matches.squeeze(-1);
  return matches;
}

Tensor top_k_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred, std::int64_t k) {
  return top_k_matches(argmax(y_true.detach(), -1), y_pred, k, "top_k_categorical_accuracy");
}

Tensor sparse_top_k_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred, std::int64_t k) {
  return top_k_matches(y_true.detach(), y_pred, k, "sparse_top_k_categorical_accuracy");
}

// ---- the metric classes ----

BinaryAccuracy::BinaryAccuracy(BinaryAccuracyOptions o)
    : MeanMetricWrapper([t = o.threshold](const Tensor& a, const Tensor& b) { return binary_accuracy(a, b, t); },
                        std::move(o.name)) {}

CategoricalAccuracy::CategoricalAccuracy(std::string name)
    : MeanMetricWrapper(categorical_accuracy, std::move(name)) {}

SparseCategoricalAccuracy::SparseCategoricalAccuracy(std::string name)
    : MeanMetricWrapper(sparse_categorical_accuracy, std::move(name)) {}

TopKCategoricalAccuracy::TopKCategoricalAccuracy(TopKOptions o)
    : MeanMetricWrapper([k = o.k](const Tensor& a, const Tensor& b) { return top_k_categorical_accuracy(a, b, k); },
                        o.name.empty() ? "top_k_categorical_accuracy" : std::move(o.name)) {}

SparseTopKCategoricalAccuracy::SparseTopKCategoricalAccuracy(TopKOptions o)
    : MeanMetricWrapper(
          [k = o.k](const Tensor& a, const Tensor& b) { return sparse_top_k_categorical_accuracy(a, b, k); },
          o.name.empty() ? "sparse_top_k_categorical_accuracy" : std::move(o.name)) {}

MeanSquaredError::MeanSquaredError(std::string name)
    : MeanMetricWrapper([](const Tensor& a, const Tensor& b) { return mean_squared_error(a, b, Reduction::none); },
                        std::move(name)) {}

MeanAbsoluteError::MeanAbsoluteError(std::string name)
    : MeanMetricWrapper([](const Tensor& a, const Tensor& b) { return mean_absolute_error(a, b, Reduction::none); },
                        std::move(name)) {}

RootMeanSquaredError::RootMeanSquaredError(std::string name) : Mean(std::move(name)) {}

void RootMeanSquaredError::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  KILN_CHECK(y_true.defined() && y_pred.defined(), ValueError, name(), ": y_true and y_pred must be defined");
  NoGradGuard no_grad;
  auto [t, p] = squeeze_or_expand_to_same_rank(as_float(y_true), as_float(y_pred));
  const Tensor error = sub(p, t.to(p.dtype()));
  Mean::update_state(mul(error, error), sample_weight);
}

double RootMeanSquaredError::result() const { return std::sqrt(Mean::result()); }

}  // namespace kiln::metrics
