// Keras' regularizers and constraints (see regularizers.h), computed with kiln's ops on
// the weight's device.
#include "kiln/layers/regularizers.h"

#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/kernels/unary.h"

namespace kiln {

using nlohmann::json;

namespace {
template <class Table>
std::string valid_names(const Table& table) {
  std::string s;
  for (const auto& [name, _] : table) s += (s.empty() ? "" : ", ") + name;
  return s;
}
double num(const json& c, const char* key, double fallback) {
  return c.contains(key) && !c[key].is_null() ? c[key].get<double>() : fallback;
}
}  // namespace

// ---- regularizers ----

namespace regularizers {

json Regularizer::get_config() const { return json::object(); }

namespace {
class L1L2Reg final : public Regularizer {
 public:
  L1L2Reg(std::string class_name, double l1, double l2) : class_name_(std::move(class_name)), l1_(l1), l2_(l2) {
    KILN_CHECK(l1 >= 0 && l2 >= 0, ValueError, class_name_, ": factors must be >= 0, got l1=", l1, ", l2=", l2);
  }
  Tensor operator()(const Tensor& w) const override {
    Tensor penalty;
    if (l1_ != 0 || class_name_ == "L1") penalty = mul(sum(abs(w)), l1_);
    if (l2_ != 0 || class_name_ == "L2") {
      Tensor p2 = mul(sum(square(w)), l2_);
      penalty = penalty.defined() ? add(penalty, p2) : p2;
    }
    if (!penalty.defined()) penalty = mul(sum(w), 0.0);  // L1L2(0, 0): zero, still on the graph
    return penalty;
  }
  std::string class_name() const override { return class_name_; }
  json get_config() const override {
    if (class_name_ == "L1") return {{"l1", l1_}};
    if (class_name_ == "L2") return {{"l2", l2_}};
    return {{"l1", l1_}, {"l2", l2_}};
  }

 private:
  std::string class_name_;
  double l1_, l2_;
};

using Factory = std::function<RegularizerPtr(const json&)>;
const std::map<std::string, Factory, std::less<>>& factories() {
  static const std::map<std::string, Factory, std::less<>> table = {
      {"L1", [](const json& c) { return L1(num(c, "l1", 0.01)); }},
      {"L2", [](const json& c) { return L2(num(c, "l2", 0.01)); }},
      {"L1L2", [](const json& c) { return L1L2(num(c, "l1", 0.0), num(c, "l2", 0.0)); }},
  };
  return table;
}
const std::map<std::string, std::function<RegularizerPtr()>, std::less<>>& identifiers() {
  static const std::map<std::string, std::function<RegularizerPtr()>, std::less<>> table = {
      {"l1", [] { return L1(); }},
      {"l2", [] { return L2(); }},
      {"l1_l2", [] { return L1L2(0.01, 0.01); }},
  };
  return table;
}
}  // namespace

RegularizerPtr L1(double l1) { return std::make_shared<L1L2Reg>("L1", l1, 0.0); }
RegularizerPtr L2(double l2) { return std::make_shared<L1L2Reg>("L2", 0.0, l2); }
RegularizerPtr L1L2(double l1, double l2) { return std::make_shared<L1L2Reg>("L1L2", l1, l2); }

RegularizerPtr get(std::string_view name) {
  if (auto it = identifiers().find(name); it != identifiers().end()) return it->second();
  if (auto it = factories().find(name); it != factories().end()) return it->second(json::object());
  KILN_THROW(ValueError, "regularizers.get: unknown regularizer '", name, "'; valid names: ",
             valid_names(identifiers()));
}

json serialize(const Regularizer& r) {
  return {{"module", "keras.regularizers"},
          {"class_name", r.class_name()},
          {"config", r.get_config()},
          {"registered_name", nullptr}};
}

RegularizerPtr deserialize(const json& j) {
  if (j.is_null()) return nullptr;
  if (j.is_string()) return get(j.get<std::string>());
  KILN_CHECK(j.is_object() && j.contains("class_name"), FormatError,
             "regularizers.deserialize: expected null, a string or {\"class_name\", \"config\"}, got ", j.dump());
  const std::string cls = j["class_name"].get<std::string>();
  const auto it = factories().find(cls);
  if (it == factories().end()) return get(cls);
  return it->second(j.contains("config") ? j["config"] : json::object());
}

RegularizerPtr Spec::resolve() const {
  if (object_) return object_;
  if (name_.empty()) return nullptr;
  return get(name_);
}

}  // namespace regularizers

// ---- constraints ----

namespace constraints {

json Constraint::get_config() const { return json::object(); }

namespace {
constexpr double kEpsilon = 1e-7;  // Keras' backend epsilon

// sqrt(sum(w^2 over axis)), kept broadcastable against w.
Tensor norms(const Tensor& w, const std::vector<std::int64_t>& axis) {
  for (std::int64_t a : axis) (void)w.shape().normalize_axis(a, "constraint");
  return sqrt(sum(square(w), axis, /*keepdims=*/true));
}

class NormConstraint final : public Constraint {
 public:
  // kind: MaxNorm (clip to [0, max]), UnitNorm (to 1), MinMaxNorm (rate-blended clip).
  NormConstraint(std::string class_name, double min_value, double max_value, double rate,
                 std::vector<std::int64_t> axis)
      : class_name_(std::move(class_name)), min_(min_value), max_(max_value), rate_(rate), axis_(std::move(axis)) {
    KILN_CHECK(!axis_.empty(), ValueError, class_name_, ": axis must name at least one axis");
    KILN_CHECK(min_ <= max_, ValueError, class_name_, ": min_value ", min_, " > max_value ", max_);
  }
  Tensor operator()(const Tensor& w) const override {
    const Tensor n = norms(w, axis_);
    Tensor desired;
    if (class_name_ == "UnitNorm") return div(w, add(n, kEpsilon));
    if (class_name_ == "MaxNorm") {
      desired = clamp(n, 0.0, max_);
    } else {
      desired = add(mul(clamp(n, min_, max_), rate_), mul(n, 1.0 - rate_));
    }
    return mul(w, div(desired, add(n, kEpsilon)));
  }
  std::string class_name() const override { return class_name_; }
  json get_config() const override {
    if (class_name_ == "UnitNorm") return {{"axis", axis_json()}};
    if (class_name_ == "MaxNorm") return {{"max_value", max_}, {"axis", axis_json()}};
    return {{"min_value", min_}, {"max_value", max_}, {"rate", rate_}, {"axis", axis_json()}};
  }

 private:
  json axis_json() const { return axis_.size() == 1 ? json(axis_[0]) : json(axis_); }
  std::string class_name_;
  double min_, max_, rate_;
  std::vector<std::int64_t> axis_;
};

class NonNegConstraint final : public Constraint {
 public:
  Tensor operator()(const Tensor& w) const override { return mul(w, cast(ge(w, 0.0), w.dtype())); }
  std::string class_name() const override { return "NonNeg"; }
};

std::vector<std::int64_t> axis_of(const json& c) {
  if (!c.contains("axis") || c["axis"].is_null()) return {0};
  if (c["axis"].is_number()) return {c["axis"].get<std::int64_t>()};
  return c["axis"].get<std::vector<std::int64_t>>();
}

using Factory = std::function<ConstraintPtr(const json&)>;
const std::map<std::string, Factory, std::less<>>& factories() {
  static const std::map<std::string, Factory, std::less<>> table = {
      {"MaxNorm", [](const json& c) { return MaxNorm({num(c, "max_value", 2.0), axis_of(c)}); }},
      {"NonNeg", [](const json&) { return NonNeg(); }},
      {"UnitNorm", [](const json& c) { return UnitNorm(axis_of(c)); }},
      {"MinMaxNorm", [](const json& c) {
         return MinMaxNorm({num(c, "min_value", 0.0), num(c, "max_value", 1.0), num(c, "rate", 1.0), axis_of(c)});
       }},
  };
  return table;
}
const std::map<std::string, std::string, std::less<>>& identifiers() {
  static const std::map<std::string, std::string, std::less<>> table = {
      {"max_norm", "MaxNorm"}, {"non_neg", "NonNeg"}, {"unit_norm", "UnitNorm"}, {"min_max_norm", "MinMaxNorm"},
  };
  return table;
}
}  // namespace

ConstraintPtr MaxNorm(MaxNormOptions o) {
  KILN_CHECK(o.max_value >= 0, ValueError, "MaxNorm: max_value must be >= 0, got ", o.max_value);
  return std::make_shared<NormConstraint>("MaxNorm", 0.0, o.max_value, 1.0, std::move(o.axis));
}
ConstraintPtr NonNeg() { return std::make_shared<NonNegConstraint>(); }
ConstraintPtr UnitNorm(std::vector<std::int64_t> axis) {
  return std::make_shared<NormConstraint>("UnitNorm", 1.0, 1.0, 1.0, std::move(axis));
}
ConstraintPtr MinMaxNorm(MinMaxNormOptions o) {
  KILN_CHECK(o.min_value >= 0, ValueError, "MinMaxNorm: min_value must be >= 0, got ", o.min_value);
  return std::make_shared<NormConstraint>("MinMaxNorm", o.min_value, o.max_value, o.rate, std::move(o.axis));
}

ConstraintPtr get(std::string_view name) {
  if (auto it = identifiers().find(name); it != identifiers().end()) {
    return factories().at(it->second)(json::object());
  }
  if (auto it = factories().find(name); it != factories().end()) return it->second(json::object());
  KILN_THROW(ValueError, "constraints.get: unknown constraint '", name, "'; valid names: ",
             valid_names(identifiers()));
}

json serialize(const Constraint& c) {
  return {{"module", "keras.constraints"},
          {"class_name", c.class_name()},
          {"config", c.get_config()},
          {"registered_name", nullptr}};
}

ConstraintPtr deserialize(const json& j) {
  if (j.is_null()) return nullptr;
  if (j.is_string()) return get(j.get<std::string>());
  KILN_CHECK(j.is_object() && j.contains("class_name"), FormatError,
             "constraints.deserialize: expected null, a string or {\"class_name\", \"config\"}, got ", j.dump());
  const std::string cls = j["class_name"].get<std::string>();
  const auto it = factories().find(cls);
  if (it == factories().end()) return get(cls);
  return it->second(j.contains("config") ? j["config"] : json::object());
}

ConstraintPtr Spec::resolve() const {
  if (object_) return object_;
  if (name_.empty()) return nullptr;
  return get(name_);
}

}  // namespace constraints
}  // namespace kiln
