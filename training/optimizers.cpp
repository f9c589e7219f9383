// The Optimizer base: options checks, the step (Keras' apply: skip, clip, decay, update,
// count), packing (training/optimizer_flat.cpp), state for checkpoints, get_config.
// The optimizers themselves and the by-name registry are in training/optimizer_types.cpp.
#include "kiln/training/optimizers.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/core/autograd_meta.h"
#include "kiln/training/optimizer_flat.h"

namespace kiln::optimizers {
namespace {

void check_option(const std::optional<double>& value, const char* option, const std::string& name,
                  bool nonnegative) {
  if (!value) return;
  KILN_CHECK(std::isfinite(*value), ValueError, name, ": `", option, "` must be a finite number, got ", *value);
  KILN_CHECK(!nonnegative || *value >= 0.0, ValueError, name, ": `", option, "` must be >= 0, got ", *value);
}

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

void check_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& params) {
  bool any = false;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    if (!g.defined()) continue;
    any = true;
    const Tensor& p = params[i];
    KILN_CHECK(g.shape() == p.shape(), ShapeError, "apply_gradients: gradient ", i, " of shape ", g.shape(),
               " does not match its parameter of shape ", p.shape());
    KILN_CHECK(g.device() == p.device(), DeviceError, "apply_gradients: gradient ", i, " of shape ", g.shape(),
               " is on ", g.device(), " but its parameter is on ", p.device());
    KILN_CHECK(is_floating(g.dtype()), TypeError, "apply_gradients: gradient ", i, " of shape ", g.shape(),
               " has non-floating dtype ", g.dtype());
  }
  // Keras' _filter_empty_gradients raises the same when nothing is left to update.
  KILN_CHECK(any || params.empty(), ValueError, "apply_gradients: no gradients provided for any of the ",
             params.size(), " parameters (run backward first, and check that they require grad)");
}

}  // namespace

Optimizer::Optimizer(Common c)
    : learning_rate_(std::move(c.learning_rate)), weight_decay_(c.weight_decay), clipnorm_(c.clipnorm),
      clipvalue_(c.clipvalue), global_clipnorm_(c.global_clipnorm), name_(std::move(c.name)) {
  const int clips = (clipnorm_ ? 1 : 0) + (clipvalue_ ? 1 : 0) + (global_clipnorm_ ? 1 : 0);
  KILN_CHECK(clips <= 1, ValueError, name_,
             ": only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set; got clipnorm=",
             optional_json(clipnorm_).dump(), ", clipvalue=", optional_json(clipvalue_).dump(),
             ", global_clipnorm=", optional_json(global_clipnorm_).dump());
  check_option(weight_decay_, "weight_decay", name_, false);
  check_option(clipnorm_, "clipnorm", name_, true);
  check_option(clipvalue_, "clipvalue", name_, true);
  check_option(global_clipnorm_, "global_clipnorm", name_, true);
  if (!learning_rate_.is_schedule()) {
    check_option(learning_rate_.at(0), "learning_rate", name_, false);
  }
}

Optimizer::~Optimizer() = default;
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;

void Optimizer::apply_gradients(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  grads.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    KILN_CHECK(params[i].defined(), ValueError, "apply_gradients: parameter ", i, " is an undefined tensor");
    grads.push_back(params[i].grad());
  }
  apply(grads, params);
}

void Optimizer::apply(const std::vector<Tensor>& grads, const std::vector<Tensor>& params) {
  KILN_CHECK(grads.size() == params.size(), ValueError, "apply: got ", grads.size(), " gradients for ",
             params.size(), " parameters");
  build(params);
  check_grads(grads, params);
  if (params.empty()) return;
  detail::StepScalars s;
  s.kind = update_kind();
  const double lr = learning_rate();
  s.lr = lr;
  s.decay = weight_decay_.has_value();
  s.weight_decay = weight_decay_.value_or(0.0);
  // Keras clips only for values > 0: clipnorm=0 means no clipping.
  detail::NormMode mode = detail::NormMode::none;
  if (clipnorm_ && *clipnorm_ > 0) {
    mode = detail::NormMode::per_param;
    s.clipnorm = *clipnorm_;
  } else if (global_clipnorm_ && *global_clipnorm_ > 0) {
    mode = detail::NormMode::global;
    s.clipnorm = *global_clipnorm_;
  } else if (clipvalue_ && *clipvalue_ > 0) {
    s.clip_value = true;
    s.clipvalue = *clipvalue_;
  }
  fill_step(s, lr, iterations_ + 1);
  detail::step(*flat_, grads, s, mode);
  ++iterations_;
}

void Optimizer::build(const std::vector<Tensor>& params) {
  if (flat_ && detail::matches(*flat_, params)) return;
  flat_ = detail::pack(params, slot_specs(), flat_.get(), "apply_gradients");
  if (!pending_state_.empty()) {
    std::vector<NamedTensor> pending = std::move(pending_state_);
    pending_state_.clear();
    load_state(pending);
  }
}

bool Optimizer::built() const { return flat_ != nullptr; }

double Optimizer::learning_rate() const { return learning_rate_.at(iterations_); }

void Optimizer::set_learning_rate(double value) {
  KILN_CHECK(!learning_rate_.is_schedule(), TypeError, name_,
             ": this optimizer was created with a learning-rate schedule (",
             learning_rate_.schedule()->class_name(), "), so its learning rate cannot be set");
  check_option(value, "learning_rate", name_, false);
  learning_rate_ = LearningRate(value);
}

std::vector<NamedTensor> Optimizer::state() const {
  std::vector<NamedTensor> out;
  out.emplace_back("iterations", from_vector(std::vector<std::int64_t>{iterations_}, Shape{}, {.device = Device::cpu()}));
  if (!learning_rate_.is_schedule()) {
    out.emplace_back("learning_rate", from_vector(std::vector<double>{learning_rate_.at(0)}, Shape{},
                                                  {.device = Device::cpu()}));
  }
  for (NamedTensor& t : scalar_state()) out.push_back(std::move(t));
  if (!flat_) return out;
  for (std::size_t j = 0; j < flat_->slot_specs.size(); ++j) {
    for (std::size_t i = 0; i < flat_->params.size(); ++i) {
      const auto [g, k] = flat_->location[i];
      const detail::Group& group = flat_->groups[g];
      out.emplace_back(flat_->slot_specs[j].name + "/" + std::to_string(i), group.view(group.slots[j], k));
    }
  }
  return out;
}

void Optimizer::load_state(const std::vector<NamedTensor>& state) {
  NoGradGuard no_grad;
  for (const auto& [name, t] : state) {
    KILN_CHECK(t.defined(), ValueError, name_, ": load_state: entry '", name, "' is an undefined tensor");
    if (name == "iterations") {
      KILN_CHECK(t.numel() == 1, ShapeError, name_, ": load_state: 'iterations' must hold one value, got shape ",
                 t.shape());
      iterations_ = t.item<std::int64_t>();
      continue;
    }
    if (name == "learning_rate") {
      if (!learning_rate_.is_schedule()) set_learning_rate(t.item<double>());
      continue;
    }
    const auto slash = name.find('/');
    if (slash == std::string::npos) {
      load_scalar_state(name, t);
      continue;
    }
    if (!flat_) {  // slots need the packing: keep a copy for build() (t may be a live view)
      pending_state_.emplace_back(name, t.detach().clone());
      continue;
    }
    const std::string slot_name = name.substr(0, slash);
    std::size_t j = 0;
    while (j < flat_->slot_specs.size() && flat_->slot_specs[j].name != slot_name) ++j;
    KILN_CHECK(j < flat_->slot_specs.size(), ValueError, name_, ": load_state: '", name,
               "' names no slot of ", class_name(), " with these options");
    std::size_t index = 0;
    try {
      index = std::stoul(name.substr(slash + 1));
    } catch (const std::exception&) {
      KILN_THROW(ValueError, name_, ": load_state: '", name, "' does not end in a parameter index");
    }
    KILN_CHECK(index < flat_->params.size(), ValueError, name_, ": load_state: '", name, "' refers to parameter ",
               index, " but ", flat_->params.size(), " are packed");
    const auto [g, k] = flat_->location[index];
    const detail::Group& group = flat_->groups[g];
    Tensor dst = group.view(group.slots[j], k);
    KILN_CHECK(t.shape() == dst.shape(), ShapeError, name_, ": load_state: '", name, "' has shape ", t.shape(),
               " but parameter ", index, " has shape ", dst.shape());
    dst.copy_(t.detach());
  }
}

void Optimizer::load_scalar_state(const std::string& name, const Tensor&) {
  KILN_THROW(ValueError, name_, ": load_state: unknown entry '", name, "' for ", class_name());
}

Tensor Optimizer::slot(const Tensor& param, std::string_view slot_name) const {
  KILN_CHECK(flat_ != nullptr, ValueError, name_, ": slot: the optimizer is not built yet (no step has run)");
  std::size_t j = 0;
  while (j < flat_->slot_specs.size() && flat_->slot_specs[j].name != slot_name) ++j;
  KILN_CHECK(j < flat_->slot_specs.size(), ValueError, name_, ": slot: ", class_name(), " has no slot '",
             slot_name, "'");
  for (std::size_t i = 0; i < flat_->params.size(); ++i) {
    if (!flat_->params[i].is_same(param)) continue;
    const auto [g, k] = flat_->location[i];
    const detail::Group& group = flat_->groups[g];
    return group.view(group.slots[j], k);
  }
  KILN_THROW(ValueError, name_, ": slot: the tensor of shape ", param.shape(), " is not one of its parameters");
}

nlohmann::json Optimizer::get_config() const {
  nlohmann::json c;
  c["name"] = name_;
  c["learning_rate"] = learning_rate_.to_json();
  c["weight_decay"] = optional_json(weight_decay_);
  c["clipnorm"] = optional_json(clipnorm_);
  c["global_clipnorm"] = optional_json(global_clipnorm_);
  c["clipvalue"] = optional_json(clipvalue_);
  add_config(c);
  return c;
}

std::shared_ptr<Optimizer> OptimizerRef::resolve() const {
  if (optimizer_) return optimizer_;
  KILN_CHECK(!name_.empty(), ValueError, "compile: no optimizer given");
  return get(name_);
}

}  // namespace kiln::optimizers
