// Weight regularizers (keras.regularizers) and constraints (keras.constraints), with
// Keras' names, arguments and defaults.
//   Regularizer: a penalty on a weight, a scalar Tensor that the model adds to its loss
//     (Layer::regularization_loss sums them). Differentiable: it is part of the graph.
//   Constraint: a projection applied to a weight after each optimizer step
//     (Layer::apply_constraints writes it back into the weight in place, without autograd).
//
//   kiln::layers::Dense(64, {.kernel_regularizer = "l2",                      // L2(0.01)
//                            .kernel_constraint = kiln::constraints::MaxNorm({.max_value = 3})});
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/core/tensor.h"

namespace kiln::regularizers {

class Regularizer {
 public:
  virtual ~Regularizer() = default;
  // The penalty for weight `w`: a scalar Tensor of w's dtype on w's device.
  virtual Tensor operator()(const Tensor& w) const = 0;
  virtual std::string class_name() const = 0;  // Keras' class name: "L1", "L2", "L1L2"
  virtual nlohmann::json get_config() const;   // {"l2": 0.01}
};
using RegularizerPtr = std::shared_ptr<const Regularizer>;

// l1 * sum(|w|)
RegularizerPtr L1(double l1 = 0.01);
// l2 * sum(w^2)   (Keras 3: no factor 1/2)
RegularizerPtr L2(double l2 = 0.01);
// l1 * sum(|w|) + l2 * sum(w^2); Keras' class defaults are 0 and 0 (the string "l1_l2"
// gives 0.01 and 0.01, as keras.regularizers.l1_l2()).
RegularizerPtr L1L2(double l1 = 0.0, double l2 = 0.0);

// Keras' identifiers "l1", "l2", "l1_l2" (and class names "L1", "L2", "L1L2"); unknown
// names throw ValueError listing the valid ones.
RegularizerPtr get(std::string_view name);
nlohmann::json serialize(const Regularizer& regularizer);  // Keras' {"module", "class_name", "config", ...}
RegularizerPtr deserialize(const nlohmann::json& json);    // null -> nullptr

// What a layer option accepts: nothing (default), a string identifier, or an object.
class Spec {
 public:
  Spec() = default;
  Spec(const char* name) : name_(name) {}
  Spec(std::string name) : name_(std::move(name)) {}
  template <class T>
    requires std::is_base_of_v<Regularizer, T>
  Spec(std::shared_ptr<T> regularizer) : object_(std::move(regularizer)) {}

  bool empty() const { return name_.empty() && !object_; }
  RegularizerPtr resolve() const;  // nullptr when empty

 private:
  std::string name_;
  RegularizerPtr object_;
};

}  // namespace kiln::regularizers

namespace kiln::constraints {

class Constraint {
 public:
  virtual ~Constraint() = default;
  // The projected weight (a new tensor shaped like w; w itself is not changed).
  virtual Tensor operator()(const Tensor& w) const = 0;
  virtual std::string class_name() const = 0;  // "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm"
  virtual nlohmann::json get_config() const;
};
using ConstraintPtr = std::shared_ptr<const Constraint>;

// Norms are taken over `axis` (Keras' default 0: for a Dense kernel (in, units) each
// unit's incoming weight vector; for a Conv2D kernel (kh, kw, in, out) use {0, 1, 2}).
struct MaxNormOptions {
  double max_value = 2.0;
  std::vector<std::int64_t> axis = {0};
};
// w * clip(norm, 0, max_value) / (epsilon + norm), epsilon = 1e-7 (Keras' backend epsilon)
ConstraintPtr MaxNorm(MaxNormOptions options = {});
// w * (w >= 0)
ConstraintPtr NonNeg();
// w / (epsilon + norm)
ConstraintPtr UnitNorm(std::vector<std::int64_t> axis = {0});
struct MinMaxNormOptions {
  double min_value = 0.0;
  double max_value = 1.0;
  double rate = 1.0;
  std::vector<std::int64_t> axis = {0};
};
// w * (rate * clip(norm, min, max) + (1 - rate) * norm) / (epsilon + norm)
ConstraintPtr MinMaxNorm(MinMaxNormOptions options = {});

// Keras' identifiers "max_norm", "non_neg", "unit_norm", "min_max_norm" (and class
// names); unknown names throw ValueError listing the valid ones.
ConstraintPtr get(std::string_view name);
nlohmann::json serialize(const Constraint& constraint);
ConstraintPtr deserialize(const nlohmann::json& json);  // null -> nullptr

class Spec {
 public:
  Spec() = default;
  Spec(const char* name) : name_(name) {}
  Spec(std::string name) : name_(std::move(name)) {}
  template <class T>
    requires std::is_base_of_v<Constraint, T>
  Spec(std::shared_ptr<T> constraint) : object_(std::move(constraint)) {}

  bool empty() const { return name_.empty() && !object_; }
  ConstraintPtr resolve() const;  // nullptr when empty

 private:
  std::string name_;
  ConstraintPtr object_;
};

}  // namespace kiln::constraints
