// Learning-rate schedules with Keras 3's names, arguments and formulas
// (keras.optimizers.schedules), and LearningRate: what an optimizer's `learning_rate`
// option holds, a constant or a schedule.
//
//   auto opt = kiln::optimizers::SGD({.learning_rate = kiln::schedules::ExponentialDecay(0.1, 1000, 0.96)});
//   auto adam = kiln::optimizers::Adam({.learning_rate = 3e-4});
//
// A schedule is evaluated on the host, once per optimizer step, at `step` = the optimizer's
// iterations() before that step's update (0 for the first step), as Keras does. The value
// is passed to the fused update kernel as an argument: no device work, no host sync.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kiln::schedules {

// Keras' LearningRateSchedule: subclass it for a custom schedule (override the call and
// class_name; get_config for saving).
class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  // The learning rate at optimizer step `step` (>= 0).
  virtual double operator()(std::int64_t step) const = 0;
  // Keras' class name ("ExponentialDecay"), used by serialize().
  virtual std::string class_name() const = 0;
  // Keras' get_config(): {"initial_learning_rate": ..., "decay_steps": ..., "name": ...}.
  virtual nlohmann::json get_config() const;
};

// lr = initial_learning_rate * decay_rate ^ (step / decay_steps); with staircase the
// exponent is floor(step / decay_steps). decay_steps must be > 0.
class ExponentialDecay final : public LearningRateSchedule {
 public:
  ExponentialDecay(double initial_learning_rate, double decay_steps, double decay_rate,
                   bool staircase = false, std::string name = "ExponentialDecay");
  double operator()(std::int64_t step) const override;
  std::string class_name() const override { return "ExponentialDecay"; }
  nlohmann::json get_config() const override;

  double initial_learning_rate, decay_steps, decay_rate;
  bool staircase;
  std::string name;
};

// values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <=
// boundaries[i], values.back() after the last boundary. Needs values.size() ==
// boundaries.size() + 1 and increasing boundaries (ValueError otherwise).
class PiecewiseConstantDecay final : public LearningRateSchedule {
 public:
  PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values,
                         std::string name = "PiecewiseConstant");
  double operator()(std::int64_t step) const override;
  std::string class_name() const override { return "PiecewiseConstantDecay"; }
  nlohmann::json get_config() const override;

  std::vector<double> boundaries, values;
  std::string name;
};

// Keras 3's CosineDecay, with optional linear warmup.
//   Without warmup_target: s = min(step, decay_steps);
//     lr = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha).
//   With warmup_target: s = min(step, warmup_steps + decay_steps);
//     s < warmup_steps: lr = initial + (warmup_target - initial) * s / warmup_steps;
//     else the cosine above from warmup_target over s - warmup_steps.
struct CosineDecayOptions {
  double alpha = 0.0;                    // the floor, as a fraction of the decayed-from rate
  std::string name = "CosineDecay";
  std::optional<double> warmup_target{};   // none: no warmup
  double warmup_steps = 0;
};
class CosineDecay final : public LearningRateSchedule {
 public:
  CosineDecay(double initial_learning_rate, double decay_steps, CosineDecayOptions options = {});
  double operator()(std::int64_t step) const override;
  std::string class_name() const override { return "CosineDecay"; }
  nlohmann::json get_config() const override;

  double initial_learning_rate, decay_steps;
  CosineDecayOptions options;
};

// lr = initial_learning_rate / (1 + decay_rate * step / decay_steps) (floor with staircase).
class InverseTimeDecay final : public LearningRateSchedule {
 public:
  InverseTimeDecay(double initial_learning_rate, double decay_steps, double decay_rate,
                   bool staircase = false, std::string name = "InverseTimeDecay");
  double operator()(std::int64_t step) const override;
  std::string class_name() const override { return "InverseTimeDecay"; }
  nlohmann::json get_config() const override;

  double initial_learning_rate, decay_steps, decay_rate;
  bool staircase;
  std::string name;
};

// lr = (initial - end) * (1 - s / decay_steps) ^ power + end, s = min(step, decay_steps);
// with cycle, decay_steps grows to decay_steps * ceil(step / decay_steps) (1 at step 0).
struct PolynomialDecayOptions {
  double end_learning_rate = 0.0001;
  double power = 1.0;
  bool cycle = false;
  std::string name = "PolynomialDecay";
};
class PolynomialDecay final : public LearningRateSchedule {
 public:
  PolynomialDecay(double initial_learning_rate, double decay_steps, PolynomialDecayOptions options = {});
  double operator()(std::int64_t step) const override;
  std::string class_name() const override { return "PolynomialDecay"; }
  nlohmann::json get_config() const override;

  double initial_learning_rate, decay_steps;
  PolynomialDecayOptions options;
};

// Keras' serialize/deserialize: {"class_name": "ExponentialDecay", "config": {...}}.
// deserialize knows the five schedules above; another class name throws ValueError.
nlohmann::json serialize(const LearningRateSchedule& schedule);
std::shared_ptr<const LearningRateSchedule> deserialize(const nlohmann::json& config);

}  // namespace kiln::schedules

namespace kiln {

// An optimizer's learning rate: a constant (settable, e.g. by ReduceLROnPlateau) or a
// schedule (not settable, as in Keras). Converts implicitly from a number and from any
// schedule object, so options read `.learning_rate = 1e-3` or `.learning_rate =
// schedules::CosineDecay(1e-3, 10000)`.
class LearningRate {
 public:
  LearningRate(double value) : value_(value) {}  // NOLINT: implicit by design
  LearningRate(std::shared_ptr<const schedules::LearningRateSchedule> schedule);  // NOLINT
  template <class S>
    requires std::derived_from<S, schedules::LearningRateSchedule>
  LearningRate(S schedule)  // NOLINT
      : LearningRate(std::shared_ptr<const schedules::LearningRateSchedule>(
            std::make_shared<S>(std::move(schedule)))) {}

  bool is_schedule() const { return schedule_ != nullptr; }
  // The rate at optimizer step `step`: the constant, or the schedule's value.
  double at(std::int64_t step) const { return schedule_ ? (*schedule_)(step) : value_; }
  const std::shared_ptr<const schedules::LearningRateSchedule>& schedule() const { return schedule_; }
  // Keras' config value: the number, or the serialized schedule.
  nlohmann::json to_json() const;
  static LearningRate from_json(const nlohmann::json& value);

 private:
  double value_ = 0.0;
  std::shared_ptr<const schedules::LearningRateSchedule> schedule_;
};

}  // namespace kiln
