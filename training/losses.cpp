// Loss objects: Keras 3's Loss.__call__ (sample weighting, masks, reductions) over the
// fused per-sample losses of kernels/loss.h. The by-name registry is in
// training/loss_registry.cpp.
#include "kiln/training/losses.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/kernels/binary.h"
#include "kiln/kernels/loss.h"
#include "kiln/kernels/reduce.h"
#include "kiln/training/loss_weights.h"

namespace kiln::losses {
namespace {

kiln::Reduction fused_reduction(bool mean) { return mean ? kiln::Reduction::mean : kiln::Reduction::sum; }

}  // namespace

Reduction reduction_from_string(std::string_view name) {
  if (name == "sum_over_batch_size") return Reduction::sum_over_batch_size;
  if (name == "sum") return Reduction::sum;
  if (name == "mean") return Reduction::mean;
  if (name == "mean_with_sample_weight") return Reduction::mean_with_sample_weight;
  if (name == "none") return Reduction::none;
  KILN_THROW(ValueError, "losses: invalid reduction '", name,
             "'; valid: 'sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', 'none'");
}

std::string to_string(Reduction r) {
  switch (r) {
    case Reduction::sum_over_batch_size: return "sum_over_batch_size";
    case Reduction::sum: return "sum";
    case Reduction::mean: return "mean";
    case Reduction::mean_with_sample_weight: return "mean_with_sample_weight";
    case Reduction::none: return "none";
  }
  return "sum_over_batch_size";  // unreachable: every enumerator is listed
}

// ---- Loss ----

Tensor Loss::operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) const {
  KILN_CHECK(y_true.defined() && y_pred.defined(), ValueError, name_, ": y_true and y_pred must be defined");
  // Without weights every reduction but none is one fused op (mean_with_sample_weight then
  // divides by the count, as sum_over_batch_size).
  if (!sample_weight.defined() && reduction_ != Reduction::none && y_pred.numel() > 0) {
    const Tensor fused = fused_reduced(y_true, y_pred, reduction_ != Reduction::sum);
    if (fused.defined()) return fused;
  }
  return detail::reduce_weighted(call(y_true, y_pred), sample_weight, reduction_, name_);
}

Tensor Loss::fused_reduced(const Tensor&, const Tensor&, bool) const { return Tensor(); }

nlohmann::json Loss::get_config() const { return {{"name", name_}, {"reduction", to_string(reduction_)}}; }

// ---- SparseCategoricalCrossentropy ----

SparseCategoricalCrossentropy::SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions o)
    : Loss(o.name, o.reduction), options_(std::move(o)) {}

namespace {
// Keras accepts float class ids too; the fused op wants integers.
Tensor integer_labels(const Tensor& y_true) {
  return is_floating(y_true.dtype()) ? y_true.detach().to(DType::int64) : y_true;
}
}  // namespace

Tensor SparseCategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred) const {
  const CrossEntropyOptions o{.from_logits = options_.from_logits, .reduction = kiln::Reduction::none};
  Tensor labels = integer_labels(y_true);
  if (!options_.ignore_class) return sparse_categorical_crossentropy(labels, y_pred, o);
  // Ignored labels become class 0 for the op, and their losses 0 (Keras' where).
  const Tensor valid = ne(labels, static_cast<double>(*options_.ignore_class));
  labels = where(valid, labels, zeros_like(labels));
  const Tensor losses = sparse_categorical_crossentropy(labels, y_pred, o);
  return where(valid.reshape(losses.shape()), losses, zeros_like(losses));
}

Tensor SparseCategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred,
                                                 const Tensor& sample_weight) const {
  if (!options_.ignore_class) return Loss::operator()(y_true, y_pred, sample_weight);
  const Tensor losses = call(y_true, y_pred);
  const Tensor valid = ne(integer_labels(y_true), static_cast<double>(*options_.ignore_class)).reshape(losses.shape());
  const Tensor weight = detail::apply_mask(sample_weight, valid, reduction(), losses.dtype());
  return detail::reduce_weighted(losses, weight, reduction(), name());
}

Tensor SparseCategoricalCrossentropy::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  if (options_.ignore_class) return Tensor();
  return sparse_categorical_crossentropy(integer_labels(y_true), y_pred,
                                         {.from_logits = options_.from_logits, .reduction = fused_reduction(mean)});
}

nlohmann::json SparseCategoricalCrossentropy::get_config() const {
  nlohmann::json c = Loss::get_config();
  c["from_logits"] = options_.from_logits;
  c["ignore_class"] = options_.ignore_class ? nlohmann::json(*options_.ignore_class) : nlohmann::json();
  return c;
}

// ---- CategoricalCrossentropy, BinaryCrossentropy ----

CategoricalCrossentropy::CategoricalCrossentropy(CategoricalCrossentropyOptions o)
    : Loss(o.name, o.reduction), options_(std::move(o)) {}

Tensor CategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred) const {
  return categorical_crossentropy(y_true, y_pred,
                                  {.from_logits = options_.from_logits, .label_smoothing = options_.label_smoothing,
                                   .axis = options_.axis, .reduction = kiln::Reduction::none});
}
Tensor CategoricalCrossentropy::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  return categorical_crossentropy(y_true, y_pred,
                                  {.from_logits = options_.from_logits, .label_smoothing = options_.label_smoothing,
                                   .axis = options_.axis, .reduction = fused_reduction(mean)});
}
nlohmann::json CategoricalCrossentropy::get_config() const {
  nlohmann::json c = Loss::get_config();
  c["from_logits"] = options_.from_logits;
  c["label_smoothing"] = options_.label_smoothing;
  c["axis"] = options_.axis;
  return c;
}

BinaryCrossentropy::BinaryCrossentropy(BinaryCrossentropyOptions o)
    : Loss(o.name, o.reduction), options_(std::move(o)) {}

Tensor BinaryCrossentropy::call(const Tensor& y_true, const Tensor& y_pred) const {
  return binary_crossentropy(y_true, y_pred,
                             {.from_logits = options_.from_logits, .label_smoothing = options_.label_smoothing,
                              .axis = options_.axis, .reduction = kiln::Reduction::none});
}
Tensor BinaryCrossentropy::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  return binary_crossentropy(y_true, y_pred,
                             {.from_logits = options_.from_logits, .label_smoothing = options_.label_smoothing,
                              .axis = options_.axis, .reduction = fused_reduction(mean)});
}
nlohmann::json BinaryCrossentropy::get_config() const {
  nlohmann::json c = Loss::get_config();
  c["from_logits"] = options_.from_logits;
  c["label_smoothing"] = options_.label_smoothing;
  c["axis"] = options_.axis;
  return c;
}

// ---- the regression losses ----

MeanSquaredError::MeanSquaredError(MeanSquaredErrorOptions o) : Loss(std::move(o.name), o.reduction) {}
Tensor MeanSquaredError::call(const Tensor& y_true, const Tensor& y_pred) const {
  return mean_squared_error(y_true, y_pred, kiln::Reduction::none);
}
Tensor MeanSquaredError::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  return mean_squared_error(y_true, y_pred, fused_reduction(mean));
}

MeanAbsoluteError::MeanAbsoluteError(MeanAbsoluteErrorOptions o) : Loss(std::move(o.name), o.reduction) {}
Tensor MeanAbsoluteError::call(const Tensor& y_true, const Tensor& y_pred) const {
  return mean_absolute_error(y_true, y_pred, kiln::Reduction::none);
}
Tensor MeanAbsoluteError::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  return mean_absolute_error(y_true, y_pred, fused_reduction(mean));
}

Huber::Huber(HuberOptions o) : Loss(std::move(o.name), o.reduction), delta_(o.delta) {
  KILN_CHECK(std::isfinite(delta_) && delta_ >= 0.0, ValueError, name(), ": delta must be finite and >= 0, got ",
             delta_);
}
Tensor Huber::call(const Tensor& y_true, const Tensor& y_pred) const {
  return huber(y_true, y_pred, delta_, kiln::Reduction::none);
}
Tensor Huber::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  return huber(y_true, y_pred, delta_, fused_reduction(mean));
}
nlohmann::json Huber::get_config() const {
  nlohmann::json c = Loss::get_config();
  c["delta"] = delta_;
  return c;
}

KLDivergence::KLDivergence(KLDivergenceOptions o) : Loss(std::move(o.name), o.reduction) {}
Tensor KLDivergence::call(const Tensor& y_true, const Tensor& y_pred) const {
  return kl_divergence(y_true, y_pred, kiln::Reduction::none);
}
Tensor KLDivergence::fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const {
  return kl_divergence(y_true, y_pred, fused_reduction(mean));
}

// ---- LossFunctionWrapper ----

LossFunctionWrapper::LossFunctionWrapper(LossFn fn, std::string name, Reduction reduction)
    : Loss(std::move(name), reduction), fn_(std::move(fn)) {
  KILN_CHECK(fn_ != nullptr, ValueError, "LossFunctionWrapper: the loss function '", this->name(), "' is empty");
}
Tensor LossFunctionWrapper::call(const Tensor& y_true, const Tensor& y_pred) const { return fn_(y_true, y_pred); }

std::shared_ptr<Loss> LossRef::resolve() const {
  if (loss_) return loss_;
  KILN_CHECK(!name_.empty(), ValueError, "compile: no loss given");
  return get(name_);
}

}  // namespace kiln::losses
