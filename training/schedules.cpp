// Learning-rate schedules (Keras 3's formulas, in double) and LearningRate.
#include "kiln/training/schedules.h"

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <numbers>

#include "kiln/core/error.h"

namespace kiln::schedules {
namespace {

void check_decay_steps(double decay_steps, const std::string& name) {
  KILN_CHECK(std::isfinite(decay_steps) && decay_steps > 0, ValueError, name,
             ": argument `decay_steps` must be > 0, received: ", decay_steps);
}

double as_step(std::int64_t step) { return static_cast<double>(step); }

template <class T>
T value_or(const nlohmann::json& c, const char* key, T fallback) {
  return c.contains(key) && !c[key].is_null() ? c[key].get<T>() : fallback;
}

}  // namespace

nlohmann::json LearningRateSchedule::get_config() const {
  KILN_THROW(ValueError, "get_config: the learning-rate schedule ", class_name(),
             " does not implement get_config(); override it to save an optimizer that uses it");
}

// ---- ExponentialDecay ----

ExponentialDecay::ExponentialDecay(double initial_learning_rate, double decay_steps, double decay_rate,
                                   bool staircase, std::string name)
    : initial_learning_rate(initial_learning_rate), decay_steps(decay_steps), decay_rate(decay_rate),
      staircase(staircase), name(std::move(name)) {
  check_decay_steps(decay_steps, this->name);
}
double ExponentialDecay::operator()(std::int64_t step) const {
  double p = as_step(step) / decay_steps;
  if (staircase) p = std::floor(p);
  return initial_learning_rate * std::pow(decay_rate, p);
}
nlohmann::json ExponentialDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate}, {"decay_steps", decay_steps},
          {"decay_rate", decay_rate}, {"staircase", staircase}, {"name", name}};
}

// ---- PiecewiseConstantDecay ----

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values,
                                               std::string name)
    : boundaries(std::move(boundaries)), values(std::move(values)), name(std::move(name)) {
  KILN_CHECK(this->values.size() == this->boundaries.size() + 1, ValueError, this->name,
             ": the length of boundaries should be 1 less than the length of values; received ",
             this->boundaries.size(), " boundaries and ", this->values.size(), " values");
  for (std::size_t i = 1; i < this->boundaries.size(); ++i) {
    KILN_CHECK(this->boundaries[i - 1] <= this->boundaries[i], ValueError, this->name,
               ": boundaries must be increasing; boundary ", i, " (", this->boundaries[i],
               ") is below boundary ", i - 1, " (", this->boundaries[i - 1], ")");
  }
}
double PiecewiseConstantDecay::operator()(std::int64_t step) const {
  const double x = as_step(step);
  std::size_t i = 0;
  while (i < boundaries.size() && x > boundaries[i]) ++i;
  return values[i];
}
nlohmann::json PiecewiseConstantDecay::get_config() const {
  return {{"boundaries", boundaries}, {"values", values}, {"name", name}};
}

// ---- CosineDecay ----

CosineDecay::CosineDecay(double initial_learning_rate, double decay_steps, CosineDecayOptions options)
    : initial_learning_rate(initial_learning_rate), decay_steps(decay_steps), options(std::move(options)) {
  check_decay_steps(decay_steps, this->options.name);
  KILN_CHECK(this->options.warmup_steps >= 0, ValueError, this->options.name,
             ": argument `warmup_steps` must be >= 0, received: ", this->options.warmup_steps);
}
double CosineDecay::operator()(std::int64_t step) const {
  const double alpha = options.alpha;
  auto decay = [&](double s, double from) {
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * (s / decay_steps)));
    return from * ((1.0 - alpha) * cosine + alpha);
  };
  double s = as_step(step);
  if (!options.warmup_target) return decay(std::min(s, decay_steps), initial_learning_rate);
  const double target = *options.warmup_target, warmup = options.warmup_steps;
  s = std::min(s, decay_steps + warmup);
  if (s < warmup) return (target - initial_learning_rate) * (s / warmup) + initial_learning_rate;
  return decay(s - warmup, target);
}
nlohmann::json CosineDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate},
          {"decay_steps", decay_steps},
          {"alpha", options.alpha},
          {"name", options.name},
          {"warmup_target", options.warmup_target ? nlohmann::json(*options.warmup_target) : nlohmann::json()},
          {"warmup_steps", options.warmup_steps}};
}

// ---- InverseTimeDecay ----

InverseTimeDecay::InverseTimeDecay(double initial_learning_rate, double decay_steps, double decay_rate,
                                   bool staircase, std::string name)
    : initial_learning_rate(initial_learning_rate), decay_steps(decay_steps), decay_rate(decay_rate),
      staircase(staircase), name(std::move(name)) {
  check_decay_steps(decay_steps, this->name);
}
double InverseTimeDecay::operator()(std::int64_t step) const {
  double p = as_step(step) / decay_steps;
  if (staircase) p = std::floor(p);
  return initial_learning_rate / (1.0 + decay_rate * p);
}
nlohmann::json InverseTimeDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate}, {"decay_steps", decay_steps},
          {"decay_rate", decay_rate}, {"staircase", staircase}, {"name", name}};
}

// ---- PolynomialDecay ----

PolynomialDecay::PolynomialDecay(double initial_learning_rate, double decay_steps, PolynomialDecayOptions options)
    : initial_learning_rate(initial_learning_rate), decay_steps(decay_steps), options(std::move(options)) {
  check_decay_steps(decay_steps, this->options.name);
}
double PolynomialDecay::operator()(std::int64_t step) const {
  double s = as_step(step), steps = decay_steps;
  if (options.cycle) {
    steps *= s == 0.0 ? 1.0 : std::ceil(s / decay_steps);
  } else {
    s = std::min(s, steps);
  }
  const double p = s / steps;
  return (initial_learning_rate - options.end_learning_rate) * std::pow(1.0 - p, options.power) +
         options.end_learning_rate;
}
nlohmann::json PolynomialDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate}, {"decay_steps", decay_steps},
          {"end_learning_rate", options.end_learning_rate}, {"power", options.power},
          {"cycle", options.cycle}, {"name", options.name}};
}

// ---- serialization ----

nlohmann::json serialize(const LearningRateSchedule& schedule) {
  return {{"module", "keras.optimizers.schedules"},
          {"class_name", schedule.class_name()},
          {"config", schedule.get_config()},
          {"registered_name", nullptr}};
}

std::shared_ptr<const LearningRateSchedule> deserialize(const nlohmann::json& j) {
  KILN_CHECK(j.is_object() && j.contains("class_name") && j["class_name"].is_string(), ValueError,
             "schedules::deserialize: expected {\"class_name\": ..., \"config\": {...}}, got ", j.dump());
  const std::string cls = j["class_name"].get<std::string>();
  const nlohmann::json c = j.contains("config") ? j["config"] : nlohmann::json::object();
  auto need = [&](const char* key) {
    KILN_CHECK(c.contains(key) && c[key].is_number(), ValueError, "schedules::deserialize: ", cls,
               " config needs a number `", key, "`, got ", c.dump());
    return c[key].get<double>();
  };
  if (cls == "ExponentialDecay") {
    return std::make_shared<ExponentialDecay>(need("initial_learning_rate"), need("decay_steps"),
                                              need("decay_rate"), value_or(c, "staircase", false),
                                              value_or<std::string>(c, "name", "ExponentialDecay"));
  }
  if (cls == "PiecewiseConstantDecay") {
    return std::make_shared<PiecewiseConstantDecay>(value_or<std::vector<double>>(c, "boundaries", {}),
                                                    value_or<std::vector<double>>(c, "values", {}),
                                                    value_or<std::string>(c, "name", "PiecewiseConstant"));
  }
  if (cls == "CosineDecay") {
    CosineDecayOptions o;
    o.alpha = value_or(c, "alpha", 0.0);
    o.name = value_or<std::string>(c, "name", "CosineDecay");
    if (c.contains("warmup_target") && !c["warmup_target"].is_null()) o.warmup_target = c["warmup_target"].get<double>();
    o.warmup_steps = value_or(c, "warmup_steps", 0.0);
    return std::make_shared<CosineDecay>(need("initial_learning_rate"), need("decay_steps"), o);
  }
  if (cls == "InverseTimeDecay") {
    return std::make_shared<InverseTimeDecay>(need("initial_learning_rate"), need("decay_steps"),
                                              need("decay_rate"), value_or(c, "staircase", false),
                                              value_or<std::string>(c, "name", "InverseTimeDecay"));
  }
  if (cls == "PolynomialDecay") {
    PolynomialDecayOptions o;
    o.end_learning_rate = value_or(c, "end_learning_rate", 0.0001);
    o.power = value_or(c, "power", 1.0);
    o.cycle = value_or(c, "cycle", false);
    o.name = value_or<std::string>(c, "name", "PolynomialDecay");
    return std::make_shared<PolynomialDecay>(need("initial_learning_rate"), need("decay_steps"), o);
  }
  KILN_THROW(ValueError, "schedules::deserialize: unknown schedule class '", cls,
             "'; known: ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay, PolynomialDecay");
}

}  // namespace kiln::schedules

namespace kiln {

LearningRate::LearningRate(std::shared_ptr<const schedules::LearningRateSchedule> schedule)
    : schedule_(std::move(schedule)) {
  KILN_CHECK(schedule_ != nullptr, ValueError, "LearningRate: the schedule is null");
}

nlohmann::json LearningRate::to_json() const {
  return schedule_ ? schedules::serialize(*schedule_) : nlohmann::json(value_);
}

LearningRate LearningRate::from_json(const nlohmann::json& value) {
  if (value.is_number()) return LearningRate(value.get<double>());
  return LearningRate(schedules::deserialize(value));
}

}  // namespace kiln
