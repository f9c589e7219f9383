// Loss objects by Keras name, with Keras 3's __call__ semantics, built on the fused loss
// ops of kernels/loss.h:
//   per-sample losses = call(y_true, y_pred)          (Reduction::none of the fused op)
//   weighted          = losses * sample_weight        (weight squeezed/expanded to the
//                                                       losses' rank as Keras does, then
//                                                       broadcast from the leading axes)
//   result            = reduce(weighted)              (sum_over_batch_size by default:
//                                                       sum / number of per-sample values)
// Without a sample weight the fused op reduces directly (one kernel, no extra passes).
// The result records autograd (for y_pred), so `loss(y, model(x)).backward()` trains.
//
//   auto loss = kiln::losses::get("sparse_categorical_crossentropy");
//   kiln::Tensor l = (*loss)(y_true, y_pred);                  // scalar
//   auto bce = kiln::losses::BinaryCrossentropy({.from_logits = true, .label_smoothing = 0.1});
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "kiln/core/tensor.h"

namespace kiln::losses {

// Keras 3's reductions. sum_over_batch_size and mean divide the weighted sum by the number
// of per-sample values (0 / 0 gives 0: divide_no_nan); mean_with_sample_weight divides by
// the sum of the sample weights instead (by the count when there are none); none returns
// the weighted per-sample losses.
enum class Reduction { sum_over_batch_size, sum, mean, mean_with_sample_weight, none };
// "sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"; ValueError else.
Reduction reduction_from_string(std::string_view name);
std::string to_string(Reduction reduction);

class Loss {
 public:
  Loss(std::string name, Reduction reduction) : name_(std::move(name)), reduction_(reduction) {}
  virtual ~Loss() = default;

  // Keras' Loss.call: the per-sample losses (y_pred's shape without the reduced axis).
  virtual Tensor call(const Tensor& y_true, const Tensor& y_pred) const = 0;
  // Keras' __call__: call, sample weighting, reduction. sample_weight (optional) is a
  // float tensor on y_pred's device: a scalar, per sample (N,) or (N, 1), or per value.
  virtual Tensor operator()(const Tensor& y_true, const Tensor& y_pred,
                            const Tensor& sample_weight = Tensor()) const;

  const std::string& name() const { return name_; }
  Reduction reduction() const { return reduction_; }
  virtual std::string class_name() const = 0;  // Keras' class name
  // Keras' get_config(): {"name", "reduction", and the loss's own arguments}.
  virtual nlohmann::json get_config() const;

 protected:
  // Subclasses with a fused reduced form (no weights): the reduced loss for `reduction`
  // (sum or mean), or an undefined tensor to take the generic path.
  virtual Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const;

 private:
  std::string name_;
  Reduction reduction_;
};

struct SparseCategoricalCrossentropyOptions {
  bool from_logits = false;
  // Labels equal to ignore_class add no loss and, with sum_over_batch_size, do not count
  // in the divisor (Keras' mask).
  std::optional<std::int64_t> ignore_class{};
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "sparse_categorical_crossentropy";
};
// y_true: integer class indices (int32/int64) of y_pred's shape without the last axis (or
// with it as extent 1); y_pred: probabilities (or logits) over the last axis.
class SparseCategoricalCrossentropy final : public Loss {
 public:
  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) const override;
  std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
  nlohmann::json get_config() const override;
  const SparseCategoricalCrossentropyOptions& options() const { return options_; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;

 private:
  SparseCategoricalCrossentropyOptions options_;
};

struct CategoricalCrossentropyOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  std::int64_t axis = -1;
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "categorical_crossentropy";
};
class CategoricalCrossentropy final : public Loss {
 public:
  explicit CategoricalCrossentropy(CategoricalCrossentropyOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "CategoricalCrossentropy"; }
  nlohmann::json get_config() const override;
  const CategoricalCrossentropyOptions& options() const { return options_; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;

 private:
  CategoricalCrossentropyOptions options_;
};

struct BinaryCrossentropyOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  std::int64_t axis = -1;  // the per-sample loss is the mean over this axis
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "binary_crossentropy";
};
class BinaryCrossentropy final : public Loss {
 public:
  explicit BinaryCrossentropy(BinaryCrossentropyOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "BinaryCrossentropy"; }
  nlohmann::json get_config() const override;
  const BinaryCrossentropyOptions& options() const { return options_; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;

 private:
  BinaryCrossentropyOptions options_;
};

// The regression losses reduce the last axis by its mean (kl_divergence by its sum).
struct MeanSquaredErrorOptions {
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "mean_squared_error";
};
struct MeanAbsoluteErrorOptions {
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "mean_absolute_error";
};
struct HuberOptions {
  double delta = 1.0;
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "huber_loss";
};
struct KLDivergenceOptions {
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "kl_divergence";
};

class MeanSquaredError final : public Loss {
 public:
  explicit MeanSquaredError(MeanSquaredErrorOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "MeanSquaredError"; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;
};

class MeanAbsoluteError final : public Loss {
 public:
  explicit MeanAbsoluteError(MeanAbsoluteErrorOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "MeanAbsoluteError"; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;
};

class Huber final : public Loss {
 public:
  explicit Huber(HuberOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "Huber"; }
  nlohmann::json get_config() const override;
  double delta() const { return delta_; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;

 private:
  double delta_;
};

class KLDivergence final : public Loss {
 public:
  explicit KLDivergence(KLDivergenceOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "KLDivergence"; }

 protected:
  Tensor fused_reduced(const Tensor& y_true, const Tensor& y_pred, bool mean) const override;
};

// A per-sample loss function (y_true, y_pred) -> losses, wrapped with Keras' weighting
// and reduction (Keras' LossFunctionWrapper): a custom loss for compile().
using LossFn = std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)>;
class LossFunctionWrapper final : public Loss {
 public:
  LossFunctionWrapper(LossFn fn, std::string name,
                      Reduction reduction = Reduction::sum_over_batch_size);
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "LossFunctionWrapper"; }

 private:
  LossFn fn_;
};

// A loss with default arguments from a Keras identifier: the function names
// "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
// "mean_squared_error", "mean_absolute_error", "huber", "kl_divergence", the aliases
// "mse"/"MSE", "mae"/"MAE", "bce"/"BCE", "kld"/"KLD", and the class names
// ("SparseCategoricalCrossentropy", ..., "Huber", "KLDivergence"). A function name or alias
// gives a loss named after the function ("mse" -> "mean_squared_error"). Unknown names
// throw ValueError listing the valid ones.
std::shared_ptr<Loss> get(std::string_view name);
// The canonical Keras function name of an identifier ("mse" -> "mean_squared_error",
// "SparseCategoricalCrossentropy" -> "sparse_categorical_crossentropy"), or "" if unknown.
std::string canonical_name(std::string_view name);
// Keras' serialize/deserialize: {"class_name": ..., "config": get_config()}.
nlohmann::json serialize(const Loss& loss);
std::shared_ptr<Loss> deserialize(const nlohmann::json& config);

// What compile() takes for its loss: a Keras name, a loss object (moved into a shared
// handle), a shared handle, or a per-sample function with a name.
class LossRef {
 public:
  LossRef(const char* name) : name_(name) {}             // NOLINT: implicit by design
  LossRef(std::string name) : name_(std::move(name)) {}  // NOLINT
  LossRef(std::shared_ptr<Loss> loss) : loss_(std::move(loss)) {}  // NOLINT
  template <class L>
    requires std::derived_from<L, Loss>
  LossRef(L&& loss) : loss_(std::make_shared<L>(std::move(loss))) {}  // NOLINT: rvalues
  LossRef(LossFn fn, std::string name) : loss_(std::make_shared<LossFunctionWrapper>(std::move(fn), std::move(name))) {}

  bool empty() const { return name_.empty() && !loss_; }
  std::shared_ptr<Loss> resolve() const;  // get(name) for a name
  // The name given, or the object's name (what metrics::get resolves "accuracy" with).
  std::string name() const { return loss_ ? loss_->name() : name_; }

 private:
  std::string name_;
  std::shared_ptr<Loss> loss_;
};

}  // namespace kiln::losses
