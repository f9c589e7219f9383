// The optimizers (Keras 3's SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Nadam): their
// slots, per-step scalars (the element math is in training/optimizer_math.h) and configs,
// and the registry behind optimizers::get / deserialize.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "kiln/training/optimizer_math.h"
#include "kiln/training/optimizers.h"

namespace kiln::optimizers {
namespace {

using detail::StepScalars;
using detail::UpdateKind;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Reads the optional Keras keys of a config into an options struct's fields.
template <class O>
void read_common(const nlohmann::json& c, O& o) {
  if (c.contains("learning_rate")) o.learning_rate = LearningRate::from_json(c["learning_rate"]);
  auto opt = [&](const char* key, std::optional<double>& field) {
    if (c.contains(key) && !c[key].is_null()) field = c[key].template get<double>();
  };
  if constexpr (requires { o.weight_decay.has_value(); }) opt("weight_decay", o.weight_decay);
  opt("clipnorm", o.clipnorm);
  opt("clipvalue", o.clipvalue);
  opt("global_clipnorm", o.global_clipnorm);
  if (c.contains("name")) o.name = c["name"].template get<std::string>();
}

template <class T>
void read(const nlohmann::json& c, const char* key, T& field) {
  if (c.contains(key) && !c[key].is_null()) field = c[key].template get<T>();
}

}  // namespace

// ---- SGD ----

SGD::SGD(SGDOptions o)
    : Optimizer({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, o.name}),
      options_(std::move(o)) {
  KILN_CHECK(options_.momentum >= 0.0 && options_.momentum <= 1.0, ValueError, options_.name,
             ": `momentum` must be a float between [0, 1]; got ", options_.momentum);
}
std::vector<SlotSpec> SGD::slot_specs() const {
  if (options_.momentum == 0.0) return {};
  return {{"momentum", 0.0}};
}
detail::UpdateKind SGD::update_kind() const { return UpdateKind::sgd; }
void SGD::fill_step(StepScalars& s, double, std::int64_t) {
  s.momentum_on = options_.momentum != 0.0;
  s.momentum = options_.momentum;
  s.nesterov = options_.nesterov;
}
void SGD::add_config(nlohmann::json& c) const {
  c["momentum"] = options_.momentum;
  c["nesterov"] = options_.nesterov;
}

// ---- Adam, AdamW ----

Adam::Adam(AdamOptions o)
    : Optimizer({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, o.name}),
      options_(std::move(o)) {}
std::vector<SlotSpec> Adam::slot_specs() const {
  std::vector<SlotSpec> s{{"momentum", 0.0}, {"velocity", 0.0}};
  if (options_.amsgrad) s.push_back({"velocity_hat", 0.0});
  return s;
}
detail::UpdateKind Adam::update_kind() const { return UpdateKind::adam; }
void Adam::fill_step(StepScalars& s, double lr, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double beta_1_power = std::pow(options_.beta_1, t), beta_2_power = std::pow(options_.beta_2, t);
  s.alpha = lr * std::sqrt(1.0 - beta_2_power) / (1.0 - beta_1_power);
  s.one_minus_beta_1 = 1.0 - options_.beta_1;
  s.one_minus_beta_2 = 1.0 - options_.beta_2;
  s.epsilon = options_.epsilon;
  s.amsgrad = options_.amsgrad;
}
void Adam::add_config(nlohmann::json& c) const {
  c["beta_1"] = options_.beta_1;
  c["beta_2"] = options_.beta_2;
  c["epsilon"] = options_.epsilon;
  c["amsgrad"] = options_.amsgrad;
}

AdamW::AdamW(AdamWOptions o)
    : Adam({.learning_rate = o.learning_rate,
            .beta_1 = o.beta_1,
            .beta_2 = o.beta_2,
            .epsilon = o.epsilon,
            .amsgrad = o.amsgrad,
            .weight_decay = o.weight_decay,
            .clipnorm = o.clipnorm,
            .clipvalue = o.clipvalue,
            .global_clipnorm = o.global_clipnorm,
            .name = o.name}) {}

// ---- RMSprop ----

RMSprop::RMSprop(RMSpropOptions o)
    : Optimizer({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, o.name}),
      options_(std::move(o)) {}
std::vector<SlotSpec> RMSprop::slot_specs() const {
  std::vector<SlotSpec> s{{"velocity", 0.0}};
  if (options_.momentum > 0.0) s.push_back({"momentum", 0.0});
  if (options_.centered) s.push_back({"average_gradient", 0.0});
  return s;
}
detail::UpdateKind RMSprop::update_kind() const { return UpdateKind::rmsprop; }
void RMSprop::fill_step(StepScalars& s, double, std::int64_t) {
  s.rho = options_.rho;
  s.one_minus_rho = 1.0 - options_.rho;
  s.momentum_on = options_.momentum > 0.0;
  s.momentum = options_.momentum;
  s.epsilon = options_.epsilon;
  s.centered = options_.centered;
}
void RMSprop::add_config(nlohmann::json& c) const {
  c["rho"] = options_.rho;
  c["momentum"] = options_.momentum;
  c["epsilon"] = options_.epsilon;
  c["centered"] = options_.centered;
}

// ---- Adagrad ----

Adagrad::Adagrad(AdagradOptions o)
    : Optimizer({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, o.name}),
      options_(std::move(o)) {}
std::vector<SlotSpec> Adagrad::slot_specs() const { return {{"accumulator", options_.initial_accumulator_value}}; }
detail::UpdateKind Adagrad::update_kind() const { return UpdateKind::adagrad; }
void Adagrad::fill_step(StepScalars& s, double, std::int64_t) {
  s.epsilon = options_.epsilon;
}
void Adagrad::add_config(nlohmann::json& c) const {
  c["initial_accumulator_value"] = options_.initial_accumulator_value;
  c["epsilon"] = options_.epsilon;
}

// ---- Adadelta ----

Adadelta::Adadelta(AdadeltaOptions o)
    : Optimizer({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, o.name}),
      options_(std::move(o)) {}
std::vector<SlotSpec> Adadelta::slot_specs() const {
  return {{"accumulated_grad", 0.0}, {"accumulated_delta_var", 0.0}};
}
detail::UpdateKind Adadelta::update_kind() const { return UpdateKind::adadelta; }
void Adadelta::fill_step(StepScalars& s, double, std::int64_t) {
  s.rho = options_.rho;
  s.one_minus_rho = 1.0 - options_.rho;
  s.epsilon = options_.epsilon;
}
void Adadelta::add_config(nlohmann::json& c) const {
  c["rho"] = options_.rho;
  c["epsilon"] = options_.epsilon;
}

// ---- Nadam ----

Nadam::Nadam(NadamOptions o)
    : Optimizer({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, o.name}),
      options_(std::move(o)) {}
std::vector<SlotSpec> Nadam::slot_specs() const { return {{"momentum", 0.0}, {"velocity", 0.0}}; }
detail::UpdateKind Nadam::update_kind() const { return UpdateKind::nadam; }
// Keras advances u_product (= prod of u_k for k <= t) before the update step.
void Nadam::fill_step(StepScalars& s, double, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double b1 = options_.beta_1;
  const double u_t = b1 * (1.0 - 0.5 * std::pow(0.96, t));
  const double u_t_1 = b1 * (1.0 - 0.5 * std::pow(0.96, t + 1.0));
  u_product_ *= u_t;
  s.one_minus_beta_1 = 1.0 - b1;
  s.one_minus_beta_2 = 1.0 - options_.beta_2;
  s.epsilon = options_.epsilon;
  s.u_t_1 = u_t_1;
  s.one_minus_u_t = 1.0 - u_t;
  s.one_minus_u_product_t = 1.0 - u_product_;
  s.one_minus_u_product_t_1 = 1.0 - u_product_ * u_t_1;
  s.one_minus_beta_2_power = 1.0 - std::pow(options_.beta_2, t);
}
void Nadam::add_config(nlohmann::json& c) const {
  c["beta_1"] = options_.beta_1;
  c["beta_2"] = options_.beta_2;
  c["epsilon"] = options_.epsilon;
}
std::vector<NamedTensor> Nadam::scalar_state() const {
  return {{"u_product", from_vector(std::vector<double>{u_product_}, Shape{}, {.device = Device::cpu()})}};
}
void Nadam::load_scalar_state(const std::string& name, const Tensor& value) {
  if (name != "u_product") {
    Optimizer::load_scalar_state(name, value);  // throws: unknown entry
    return;
  }
  u_product_ = value.item<double>();
}

// ---- by name ----

namespace {

struct Entry {
  const char* key;  // Keras' lower-case class name
  std::function<std::shared_ptr<Optimizer>(const nlohmann::json&)> make;
};

template <class Opt, class Options>
std::shared_ptr<Optimizer> make_from(const nlohmann::json& c, const std::function<void(Options&)>& extra) {
  Options o;
  read_common(c, o);
  extra(o);
  return std::make_shared<Opt>(std::move(o));
}

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"sgd", [](const nlohmann::json& c) {
         return make_from<SGD, SGDOptions>(c, [&](SGDOptions& o) {
           read(c, "momentum", o.momentum);
           read(c, "nesterov", o.nesterov);
         });
       }},
      {"adam", [](const nlohmann::json& c) {
         return make_from<Adam, AdamOptions>(c, [&](AdamOptions& o) {
           read(c, "beta_1", o.beta_1);
           read(c, "beta_2", o.beta_2);
           read(c, "epsilon", o.epsilon);
           read(c, "amsgrad", o.amsgrad);
         });
       }},
      {"adamw", [](const nlohmann::json& c) {
         return make_from<AdamW, AdamWOptions>(c, [&](AdamWOptions& o) {
           read(c, "weight_decay", o.weight_decay);
           read(c, "beta_1", o.beta_1);
           read(c, "beta_2", o.beta_2);
           read(c, "epsilon", o.epsilon);
           read(c, "amsgrad", o.amsgrad);
         });
       }},
      {"rmsprop", [](const nlohmann::json& c) {
         return make_from<RMSprop, RMSpropOptions>(c, [&](RMSpropOptions& o) {
           read(c, "rho", o.rho);
           read(c, "momentum", o.momentum);
           read(c, "epsilon", o.epsilon);
           read(c, "centered", o.centered);
         });
       }},
      {"adagrad", [](const nlohmann::json& c) {
         return make_from<Adagrad, AdagradOptions>(c, [&](AdagradOptions& o) {
           read(c, "initial_accumulator_value", o.initial_accumulator_value);
           read(c, "epsilon", o.epsilon);
         });
       }},
      {"adadelta", [](const nlohmann::json& c) {
         return make_from<Adadelta, AdadeltaOptions>(c, [&](AdadeltaOptions& o) {
           read(c, "rho", o.rho);
           read(c, "epsilon", o.epsilon);
         });
       }},
      {"nadam", [](const nlohmann::json& c) {
         return make_from<Nadam, NadamOptions>(c, [&](NadamOptions& o) {
           read(c, "beta_1", o.beta_1);
           read(c, "beta_2", o.beta_2);
           read(c, "epsilon", o.epsilon);
         });
       }},
  };
  return entries;
}

const Entry& find(std::string_view name, const char* op) {
  const std::string key = lower(name);
  for (const Entry& e : registry()) {
    if (key == e.key) return e;
  }
  std::string valid;
  for (const Entry& e : registry()) valid += std::string(valid.empty() ? "" : ", ") + "'" + e.key + "'";
  KILN_THROW(ValueError, op, ": could not interpret optimizer identifier '", name, "'; valid names: ", valid);
}

}  // namespace

std::shared_ptr<Optimizer> get(std::string_view name) {
  return find(name, "optimizers::get").make(nlohmann::json::object());
}

nlohmann::json serialize(const Optimizer& optimizer) {
  return {{"class_name", optimizer.class_name()}, {"config", optimizer.get_config()}};
}

std::shared_ptr<Optimizer> deserialize(const nlohmann::json& config) {
  KILN_CHECK(config.is_object() && config.contains("class_name"), ValueError,
             "optimizers::deserialize: expected {\"class_name\": ..., \"config\": {...}}, got ", config.dump());
  const nlohmann::json inner = config.contains("config") ? config["config"] : nlohmann::json::object();
  return find(config["class_name"].get<std::string>(), "optimizers::deserialize").make(inner);
}

}  // namespace kiln::optimizers
