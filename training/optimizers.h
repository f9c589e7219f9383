// Optimizers with Keras 3's names, defaults and update formulas: SGD (momentum, nesterov),
// Adam (amsgrad), AdamW, RMSprop (momentum, centered), Adagrad, Adadelta, Nadam; decoupled
// weight decay and gradient clipping (clipnorm, clipvalue, global_clipnorm) on every one.
//
//   kiln::optimizers::Adam opt({.learning_rate = 1e-3, .global_clipnorm = 1.0});
//   kiln::backward(loss);
//   opt.apply_gradients(params);   // each parameter updated in place from its .grad()
//
// Note [Flat parameter buffers]
// The first apply_gradients (or build) for a parameter list packs the parameters into one
// flat buffer per (device, dtype) group: it allocates the buffer, copies each parameter's
// values in, and re-points the parameter's TensorImpl (storage, offset, contiguous
// strides) at its view of the buffer. Every handle to the parameter (a layer's Variable)
// shares that TensorImpl, so it sees the move; its autograd state (requires_grad, grad,
// the leaf's gradient accumulator) is untouched. Views taken of a parameter *before* the
// packing keep the old storage. Each parameter's view starts on a kChunk-element boundary
// (the gap is zero padding), so a chunk of the buffer belongs to one parameter.
// The optimizer's slots (Adam's m and v, ...) are flat buffers of the same layout, and a
// flat gradient buffer receives each parameter's .grad() by one copy per parameter (the
// autograd engine accumulates out of place — kernels/autograd/node.cpp — so a gradient
// cannot be re-pointed once and written in place by later backward passes). One step is
// then ONE fused kernel launch per group (cpu: one OpenMP loop), plus, with clipnorm or
// global_clipnorm, a two-kernel norm reduction before it (per chunk, then per parameter).
// A different parameter list (other tensors, or a parameter re-pointed elsewhere, e.g.
// moved to another device) repacks; slots of parameters seen before carry over.
// 16-bit parameters keep their slots in float32; float64 parameters in float64. The
// per-step scalars (Adam's alpha, Nadam's u products, 1 - beta, ...) are computed on the
// host in double and rounded once to the compute type (Keras rounds them in the variable's
// dtype first), so float32 results can differ from Keras' in the last bits.
//
// Step order, as Keras' apply(): skip parameters without a gradient; clip (clipnorm per
// parameter: g * c / max(||g||, c); global_clipnorm: g * c * min(1/||G||, 1/c), NaN when
// ||G|| is not finite; clipvalue: clip to [-c, c]); weight decay (p -= p * wd * lr, on
// every optimizer when weight_decay is set); the optimizer's update; iterations += 1. The
// learning rate is learning_rate() at iterations() before the increment.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/core/tensor.h"
#include "kiln/training/schedules.h"

namespace kiln::optimizers {

namespace detail {
enum class UpdateKind : std::uint8_t;  // the fused kernel's variant (training/optimizer_math.h)
struct StepScalars;                    // per-step host scalars for the kernel
struct FlatState;                      // the packed groups (training/optimizer_flat.h)
}  // namespace detail

// Elements per chunk of a flat buffer: each parameter's view starts on a chunk boundary.
inline constexpr std::int64_t kChunk = 1024;

// A named tensor of optimizer state (see Optimizer::state).
using NamedTensor = std::pair<std::string, Tensor>;

// One slot kind of an optimizer: Keras' variable name ("momentum") and its initial value.
struct SlotSpec {
  std::string name;
  double initial = 0.0;
};

class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(Optimizer&&) noexcept;
  Optimizer& operator=(Optimizer&&) noexcept;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One step: updates each parameter (a floating leaf tensor) in place from its .grad().
  // Parameters whose grad is undefined are skipped (no update, no decay, not in the global
  // norm), as Keras skips None gradients. Runs without recording autograd.
  void apply_gradients(const std::vector<Tensor>& params);
  // Keras' apply(grads, trainable_variables): the same with explicit gradients (grads[i]
  // of params[i]'s shape, on its device; undefined = skip).
  void apply(const std::vector<Tensor>& grads, const std::vector<Tensor>& params);
  // Packs `params` now and creates the slots (Keras' optimizer.build(var_list)).
  void build(const std::vector<Tensor>& params);
  bool built() const;

  // The learning rate of the next step (the schedule's value at iterations()).
  double learning_rate() const;
  // Sets a constant learning rate; TypeError when it was created with a schedule.
  void set_learning_rate(double value);
  const LearningRate& learning_rate_setting() const { return learning_rate_; }
  std::int64_t iterations() const { return iterations_; }

  const std::string& name() const { return name_; }
  virtual std::string class_name() const = 0;  // Keras' class name: "Adam", "SGD", ...
  std::optional<double> weight_decay() const { return weight_decay_; }
  std::optional<double> clipnorm() const { return clipnorm_; }
  std::optional<double> clipvalue() const { return clipvalue_; }
  std::optional<double> global_clipnorm() const { return global_clipnorm_; }
  // Slot kinds in Keras' order (e.g. Adam: momentum, velocity[, velocity_hat]).
  virtual std::vector<SlotSpec> slot_specs() const = 0;

  // State for checkpoints, as named tensors: "iterations" (int64 scalar, cpu), "learning_rate"
  // (float64 scalar, cpu; only for a constant rate), optimizer scalars (Nadam: "u_product"),
  // then for each slot kind and parameter index i "<slot>/<i>" (e.g. "momentum/0"): a view
  // of the flat slot buffer with the parameter's shape, on its device (no copy).
  std::vector<NamedTensor> state() const;
  // Restores state() output. Built: copies now (names, shapes checked: ValueError/ShapeError
  // naming the entry). Not built yet: kept and applied when the parameters are packed.
  void load_state(const std::vector<NamedTensor>& state);
  // The slot `slot` ("velocity") of `param` (a view; ValueError if unknown or not built).
  Tensor slot(const Tensor& param, std::string_view slot) const;

  // Keras' get_config(): {"name", "learning_rate" (number or serialized schedule),
  // "weight_decay", "clipnorm", "global_clipnorm", "clipvalue" (null when unset), and the
  // optimizer's own arguments ("beta_1", ...)}.
  nlohmann::json get_config() const;

 protected:
  // The arguments every Keras optimizer takes. Throws ValueError when more than one of
  // clipnorm, clipvalue, global_clipnorm is set, or a value is negative or not finite.
  struct Common {
    LearningRate learning_rate;
    std::optional<double> weight_decay{}, clipnorm{}, clipvalue{}, global_clipnorm{};
    std::string name;
  };
  explicit Optimizer(Common common);

  // The fused kernel variant for this optimizer and its options.
  virtual detail::UpdateKind update_kind() const = 0;
  // Fills the per-step scalars (called once per step; lr already resolved; `step` =
  // iterations() + 1, Keras' local_step). May advance optimizer scalars (Nadam).
  virtual void fill_step(detail::StepScalars& s, double lr, std::int64_t step) = 0;
  // The optimizer's own config entries and its extra scalar state.
  virtual void add_config(nlohmann::json& config) const = 0;
  virtual std::vector<NamedTensor> scalar_state() const { return {}; }
  virtual void load_scalar_state(const std::string& name, const Tensor& value);

 private:
  LearningRate learning_rate_;
  std::optional<double> weight_decay_, clipnorm_, clipvalue_, global_clipnorm_;
  std::string name_;
  std::int64_t iterations_ = 0;
  std::unique_ptr<detail::FlatState> flat_;
  std::vector<NamedTensor> pending_state_;  // load_state before build
};

// ---- the optimizers: options structs with Keras' defaults ----

struct SGDOptions {
  LearningRate learning_rate = 0.01;
  double momentum = 0.0;  // in [0, 1]
  bool nesterov = false;
  std::optional<double> weight_decay{};
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "SGD";
};
// m = momentum * m - lr * g; p += m (nesterov: p += momentum * m - lr * g). Without
// momentum: p -= lr * g (no slot).
class SGD final : public Optimizer {
 public:
  explicit SGD(SGDOptions options = {});
  std::string class_name() const override { return "SGD"; }
  std::vector<SlotSpec> slot_specs() const override;
  const SGDOptions& options() const { return options_; }

 private:
  detail::UpdateKind update_kind() const override;
  void fill_step(detail::StepScalars& s, double lr, std::int64_t step) override;
  void add_config(nlohmann::json& config) const override;
  SGDOptions options_;
};

struct AdamOptions {
  LearningRate learning_rate = 0.001;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  bool amsgrad = false;
  std::optional<double> weight_decay{};
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "adam";
};
// alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t); m += (g - m)(1 - beta_1);
// v += (g^2 - v)(1 - beta_2); amsgrad: v_hat = max(v_hat, v), used for v;
// p -= alpha * m / (sqrt(v) + epsilon).
class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions options = {});
  std::string class_name() const override { return "Adam"; }
  std::vector<SlotSpec> slot_specs() const override;
  const AdamOptions& options() const { return options_; }

 protected:
  detail::UpdateKind update_kind() const override;
  void fill_step(detail::StepScalars& s, double lr, std::int64_t step) override;
  void add_config(nlohmann::json& config) const override;
  AdamOptions options_;
};

struct AdamWOptions {
  LearningRate learning_rate = 0.001;
  double weight_decay = 0.004;  // required (Keras raises on None)
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  bool amsgrad = false;
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "adamw";
};
// Adam with decoupled weight decay (p -= p * weight_decay * lr before the Adam update).
class AdamW final : public Adam {
 public:
  explicit AdamW(AdamWOptions options = {});
  std::string class_name() const override { return "AdamW"; }
};

struct RMSpropOptions {
  LearningRate learning_rate = 0.001;
  double rho = 0.9;
  double momentum = 0.0;
  double epsilon = 1e-7;
  bool centered = false;
  std::optional<double> weight_decay{};
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "rmsprop";
};
// v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g, d = v - a^2 + eps, else
// d = v + eps; inc = lr g / sqrt(d); momentum > 0: m = momentum m + inc, p -= m; else
// p -= inc. Slots: velocity[, momentum][, average_gradient].
class RMSprop final : public Optimizer {
 public:
  explicit RMSprop(RMSpropOptions options = {});
  std::string class_name() const override { return "RMSprop"; }
  std::vector<SlotSpec> slot_specs() const override;
  const RMSpropOptions& options() const { return options_; }

 private:
  detail::UpdateKind update_kind() const override;
  void fill_step(detail::StepScalars& s, double lr, std::int64_t step) override;
  void add_config(nlohmann::json& config) const override;
  RMSpropOptions options_;
};

struct AdagradOptions {
  LearningRate learning_rate = 0.001;
  double initial_accumulator_value = 0.1;
  double epsilon = 1e-7;
  std::optional<double> weight_decay{};
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "adagrad";
};
// acc += g^2; p -= lr g / sqrt(acc + eps). Slot: accumulator.
class Adagrad final : public Optimizer {
 public:
  explicit Adagrad(AdagradOptions options = {});
  std::string class_name() const override { return "Adagrad"; }
  std::vector<SlotSpec> slot_specs() const override;
  const AdagradOptions& options() const { return options_; }

 private:
  detail::UpdateKind update_kind() const override;
  void fill_step(detail::StepScalars& s, double lr, std::int64_t step) override;
  void add_config(nlohmann::json& config) const override;
  AdagradOptions options_;
};

struct AdadeltaOptions {
  LearningRate learning_rate = 0.001;
  double rho = 0.95;
  double epsilon = 1e-7;
  std::optional<double> weight_decay{};
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "adadelta";
};
// Eg = rho Eg + (1 - rho) g^2; d = -sqrt(Ed + eps) g / sqrt(Eg + eps);
// Ed = rho Ed + (1 - rho) d^2; p += lr d. Slots: accumulated_grad, accumulated_delta_var.
class Adadelta final : public Optimizer {
 public:
  explicit Adadelta(AdadeltaOptions options = {});
  std::string class_name() const override { return "Adadelta"; }
  std::vector<SlotSpec> slot_specs() const override;
  const AdadeltaOptions& options() const { return options_; }

 private:
  detail::UpdateKind update_kind() const override;
  void fill_step(detail::StepScalars& s, double lr, std::int64_t step) override;
  void add_config(nlohmann::json& config) const override;
  AdadeltaOptions options_;
};

struct NadamOptions {
  LearningRate learning_rate = 0.001;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  std::optional<double> weight_decay{};
  std::optional<double> clipnorm{};
  std::optional<double> clipvalue{};
  std::optional<double> global_clipnorm{};
  std::string name = "nadam";
};
// Keras 3's Nadam: u_t = beta_1 (1 - 0.5 * 0.96^t), u_product *= u_t each step;
// m, v as Adam; m_hat = u_{t+1} m / (1 - u_product u_{t+1}) + (1 - u_t) g / (1 - u_product);
// v_hat = v / (1 - beta_2^t); p -= lr m_hat / (sqrt(v_hat) + epsilon).
class Nadam final : public Optimizer {
 public:
  explicit Nadam(NadamOptions options = {});
  std::string class_name() const override { return "Nadam"; }
  std::vector<SlotSpec> slot_specs() const override;
  const NadamOptions& options() const { return options_; }

 private:
  detail::UpdateKind update_kind() const override;
  void fill_step(detail::StepScalars& s, double lr, std::int64_t step) override;
  void add_config(nlohmann::json& config) const override;
  std::vector<NamedTensor> scalar_state() const override;
  void load_scalar_state(const std::string& name, const Tensor& value) override;
  NadamOptions options_;
  double u_product_ = 1.0;
};

// ---- by name ----

// A new optimizer with Keras' defaults from its Keras string identifier, case-insensitive:
// "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam". Unknown names throw
// ValueError listing the valid ones.
std::shared_ptr<Optimizer> get(std::string_view name);
// Keras' serialize/deserialize: {"class_name": "Adam", "config": get_config()}.
nlohmann::json serialize(const Optimizer& optimizer);
std::shared_ptr<Optimizer> deserialize(const nlohmann::json& config);

// What compile() takes for its optimizer: a Keras name, an optimizer object (moved into a
// shared handle) or a shared handle. resolve() gives the optimizer (get(name) for a name).
//   compile({.optimizer = "adam"});  compile({.optimizer = kiln::optimizers::SGD({.momentum = 0.9})});
class OptimizerRef {
 public:
  OptimizerRef(const char* name) : name_(name) {}         // NOLINT: implicit by design
  OptimizerRef(std::string name) : name_(std::move(name)) {}  // NOLINT
  OptimizerRef(std::shared_ptr<Optimizer> optimizer) : optimizer_(std::move(optimizer)) {}  // NOLINT
  template <class O>
    requires std::derived_from<O, Optimizer>
  OptimizerRef(O&& optimizer)  // NOLINT: takes an rvalue optimizer object
      : optimizer_(std::make_shared<O>(std::move(optimizer))) {}

  std::shared_ptr<Optimizer> resolve() const;

 private:
  std::string name_;
  std::shared_ptr<Optimizer> optimizer_;
};

}  // namespace kiln::optimizers
