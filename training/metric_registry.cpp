// Metrics by Keras identifier (metrics::get), with compile's resolution of "accuracy".
#include <algorithm>
#include <cctype>
#include <functional>
#include <string>
#include <vector>

#include "kiln/kernels/loss.h"
#include "kiln/training/losses.h"
#include "kiln/training/metrics.h"

namespace kiln::metrics {
namespace {

// "accuracy" with a loss that does not decide it: Keras 3's compile picks by shapes on the
// first batch (y_pred's last axis 1: binary; y_true of lower rank, or last axis 1 against a
// wider y_pred: sparse; else categorical) and keeps that choice.
class ShapeResolvedAccuracy final : public Mean {
 public:
  explicit ShapeResolvedAccuracy(std::string name) : Mean(std::move(name)) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) override {
    KILN_CHECK(y_true.defined() && y_pred.defined(), ValueError, name(), ": y_true and y_pred must be defined");
    if (!fn_) fn_ = resolve(y_true, y_pred);
    Mean::update_state(fn_(y_true, y_pred), sample_weight);
  }

 private:
  static MetricFn resolve(const Tensor& y_true, const Tensor& y_pred) {
    const std::int64_t t_last = y_true.ndim() > 0 ? y_true.shape()[y_true.ndim() - 1] : 1;
    const std::int64_t p_last = y_pred.ndim() > 0 ? y_pred.shape()[y_pred.ndim() - 1] : 1;
    if (p_last == 1) return [](const Tensor& t, const Tensor& p) { return binary_accuracy(t, p); };
    if (y_true.ndim() < y_pred.ndim() || (t_last == 1 && p_last > 1)) return sparse_categorical_accuracy;
    return categorical_accuracy;
  }
  MetricFn fn_;
};

std::shared_ptr<Metric> wrap(MetricFn fn, std::string_view name) {
  return std::make_shared<MeanMetricWrapper>(std::move(fn), std::string(name));
}

MetricFn loss_metric(Tensor (*fn)(const Tensor&, const Tensor&, Reduction)) {
  return [fn](const Tensor& t, const Tensor& p) { return fn(t, p, Reduction::none); };
}

MetricFn crossentropy_metric(Tensor (*fn)(const Tensor&, const Tensor&, CrossEntropyOptions)) {
  return [fn](const Tensor& t, const Tensor& p) { return fn(t, p, {.reduction = Reduction::none}); };
}

Tensor sparse_crossentropy(const Tensor& t, const Tensor& p) {
  const Tensor labels = is_floating(t.dtype()) ? t.to(DType::int64) : t;
  return sparse_categorical_crossentropy(labels, p, {.reduction = Reduction::none});
}

// Identifiers that name a metric function: a MeanMetricWrapper named as given.
struct FunctionEntry {
  const char* name;
  std::function<MetricFn()> fn;
};
const std::vector<FunctionEntry>& functions() {
  static const std::vector<FunctionEntry> entries = {
      {"binary_accuracy", [] { return MetricFn([](const Tensor& t, const Tensor& p) { return binary_accuracy(t, p); }); }},
      {"categorical_accuracy", [] { return MetricFn(categorical_accuracy); }},
      {"sparse_categorical_accuracy", [] { return MetricFn(sparse_categorical_accuracy); }},
      {"top_k_categorical_accuracy",
       [] { return MetricFn([](const Tensor& t, const Tensor& p) { return top_k_categorical_accuracy(t, p); }); }},
      {"sparse_top_k_categorical_accuracy",
       [] { return MetricFn([](const Tensor& t, const Tensor& p) { return sparse_top_k_categorical_accuracy(t, p); }); }},
      {"mean_squared_error", [] { return loss_metric(mean_squared_error); }},
      {"mse", [] { return loss_metric(mean_squared_error); }},
      {"MSE", [] { return loss_metric(mean_squared_error); }},
      {"mean_absolute_error", [] { return loss_metric(mean_absolute_error); }},
      {"mae", [] { return loss_metric(mean_absolute_error); }},
      {"MAE", [] { return loss_metric(mean_absolute_error); }},
      {"kl_divergence", [] { return loss_metric(kl_divergence); }},
      {"binary_crossentropy", [] { return crossentropy_metric(binary_crossentropy); }},
      {"categorical_crossentropy", [] { return crossentropy_metric(categorical_crossentropy); }},
      {"sparse_categorical_crossentropy", [] { return MetricFn(sparse_crossentropy); }},
  };
  return entries;
}

// Identifiers that name a metric class (Keras' class name or its snake_case): a new
// instance with its default name.
struct ClassEntry {
  const char* cls;
  const char* snake;
  std::function<std::shared_ptr<Metric>()> make;
};
const std::vector<ClassEntry>& classes() {
  static const std::vector<ClassEntry> entries = {
      {"BinaryAccuracy", nullptr, [] { return std::make_shared<BinaryAccuracy>(); }},
      {"CategoricalAccuracy", nullptr, [] { return std::make_shared<CategoricalAccuracy>(); }},
      {"SparseCategoricalAccuracy", nullptr, [] { return std::make_shared<SparseCategoricalAccuracy>(); }},
      {"TopKCategoricalAccuracy", nullptr, [] { return std::make_shared<TopKCategoricalAccuracy>(); }},
      {"SparseTopKCategoricalAccuracy", nullptr, [] { return std::make_shared<SparseTopKCategoricalAccuracy>(); }},
      {"MeanSquaredError", nullptr, [] { return std::make_shared<MeanSquaredError>(); }},
      {"MeanAbsoluteError", nullptr, [] { return std::make_shared<MeanAbsoluteError>(); }},
      {"RootMeanSquaredError", "root_mean_squared_error", [] { return std::make_shared<RootMeanSquaredError>(); }},
      {"Precision", "precision", [] { return std::make_shared<Precision>(); }},
      {"Recall", "recall", [] { return std::make_shared<Recall>(); }},
      {"AUC", "auc", [] { return std::make_shared<AUC>(); }},
      {"Mean", "mean", [] { return std::make_shared<Mean>(); }},
  };
  return entries;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

std::shared_ptr<Metric> get(std::string_view name, std::string_view loss_name) {
  const std::string key = lower(name);
  if (key == "accuracy" || key == "acc") {
    const std::string loss = losses::canonical_name(loss_name);
    if (loss == "sparse_categorical_crossentropy") return wrap(sparse_categorical_accuracy, name);
    if (loss == "categorical_crossentropy") return wrap(categorical_accuracy, name);
    if (loss == "binary_crossentropy") {
      return wrap([](const Tensor& t, const Tensor& p) { return binary_accuracy(t, p, 0.5); }, name);
    }
    return std::make_shared<ShapeResolvedAccuracy>(std::string(name));
  }
  for (const FunctionEntry& f : functions()) {
    if (name == f.name) return wrap(f.fn(), name);
  }
  for (const ClassEntry& c : classes()) {
    if (name == c.cls || (c.snake && name == c.snake)) return c.make();
  }
  std::string valid = "accuracy, acc";
  for (const FunctionEntry& f : functions()) valid += std::string(", ") + f.name;
  for (const ClassEntry& c : classes()) valid += std::string(", ") + c.cls + (c.snake ? std::string(", ") + c.snake : "");
  KILN_THROW(ValueError, "metrics::get: could not interpret metric identifier '", name, "'; valid names: ", valid);
}

std::shared_ptr<Metric> MetricRef::resolve(std::string_view loss_name) const {
  if (metric_) return metric_;
  KILN_CHECK(!name_.empty(), ValueError, "compile: an empty metric name");
  return get(name_, loss_name);
}

}  // namespace kiln::metrics
