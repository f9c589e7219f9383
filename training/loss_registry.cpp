// Losses by Keras identifier: losses::get, canonical_name, serialize / deserialize.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/training/losses.h"

namespace kiln::losses {
namespace {

// A config value or the options' default.
template <class T>
void read(const nlohmann::json& c, const char* key, T& field) {
  if (c.contains(key) && !c[key].is_null()) field = c[key].get<T>();
}

template <class O>
O common(const nlohmann::json& c, std::string name) {
  O o;
  if (!name.empty()) o.name = std::move(name);  // empty: the class's default name
  read(c, "name", o.name);
  if (c.contains("reduction") && c["reduction"].is_string()) o.reduction = reduction_from_string(c["reduction"].get<std::string>());
  if (c.contains("reduction") && c["reduction"].is_null()) o.reduction = Reduction::none;
  return o;
}

using Factory = std::function<std::shared_ptr<Loss>(const nlohmann::json& config, std::string name)>;

struct Entry {
  const char* function;  // Keras' function name: the canonical name
  const char* cls;       // Keras' class name
  Factory make;          // name: the default for a class, the function name otherwise
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
       [](const nlohmann::json& c, std::string name) {
         auto o = common<SparseCategoricalCrossentropyOptions>(c, std::move(name));
         read(c, "from_logits", o.from_logits);
         if (c.contains("ignore_class") && !c["ignore_class"].is_null()) o.ignore_class = c["ignore_class"].get<std::int64_t>();
         return std::make_shared<SparseCategoricalCrossentropy>(o);
       }},
      {"categorical_crossentropy", "CategoricalCrossentropy",
       [](const nlohmann::json& c, std::string name) {
         auto o = common<CategoricalCrossentropyOptions>(c, std::move(name));
         read(c, "from_logits", o.from_logits);
         read(c, "label_smoothing", o.label_smoothing);
         read(c, "axis", o.axis);
         return std::make_shared<CategoricalCrossentropy>(o);
       }},
      {"binary_crossentropy", "BinaryCrossentropy",
       [](const nlohmann::json& c, std::string name) {
         auto o = common<BinaryCrossentropyOptions>(c, std::move(name));
         read(c, "from_logits", o.from_logits);
         read(c, "label_smoothing", o.label_smoothing);
         read(c, "axis", o.axis);
         return std::make_shared<BinaryCrossentropy>(o);
       }},
      {"mean_squared_error", "MeanSquaredError",
       [](const nlohmann::json& c, std::string name) {
         return std::make_shared<MeanSquaredError>(common<MeanSquaredErrorOptions>(c, std::move(name)));
       }},
      {"mean_absolute_error", "MeanAbsoluteError",
       [](const nlohmann::json& c, std::string name) {
         return std::make_shared<MeanAbsoluteError>(common<MeanAbsoluteErrorOptions>(c, std::move(name)));
       }},
      {"huber", "Huber",
       [](const nlohmann::json& c, std::string name) {
         auto o = common<HuberOptions>(c, std::move(name));
         read(c, "delta", o.delta);
         return std::make_shared<Huber>(o);
       }},
      {"kl_divergence", "KLDivergence",
       [](const nlohmann::json& c, std::string name) {
         return std::make_shared<KLDivergence>(common<KLDivergenceOptions>(c, std::move(name)));
       }},
  };
  return entries;
}

// Keras' aliases (keras/src/losses/__init__.py).
struct Alias {
  const char* alias;
  const char* function;
};
constexpr Alias kAliases[] = {{"mse", "mean_squared_error"}, {"MSE", "mean_squared_error"},
                              {"mae", "mean_absolute_error"}, {"MAE", "mean_absolute_error"},
                              {"bce", "binary_crossentropy"}, {"BCE", "binary_crossentropy"},
                              {"kld", "kl_divergence"},       {"KLD", "kl_divergence"}};

// The entry for an identifier, and whether it named the class.
const Entry* lookup(std::string_view name, bool* is_class) {
  std::string_view function = name;
  for (const Alias& a : kAliases) {
    if (name == a.alias) function = a.function;
  }
  for (const Entry& e : registry()) {
    if (function == e.function) {
      *is_class = false;
      return &e;
    }
    if (name == e.cls) {
      *is_class = true;
      return &e;
    }
  }
  return nullptr;
}

[[noreturn]] void unknown(std::string_view name, const char* op) {
  std::string valid;
  for (const Entry& e : registry()) valid += std::string(valid.empty() ? "" : ", ") + e.function + ", " + e.cls;
  for (const Alias& a : kAliases) valid += std::string(", ") + a.alias;
  KILN_THROW(ValueError, op, ": could not interpret loss identifier '", name, "'; valid names: ", valid);
}

}  // namespace

std::shared_ptr<Loss> get(std::string_view name) {
  bool is_class = false;
  const Entry* e = lookup(name, &is_class);
  if (!e) unknown(name, "losses::get");
  // A class gets its default name (the options' default); a function name or alias gets the
  // function's name, as Keras' compile names a wrapped loss function.
  if (is_class) return e->make(nlohmann::json::object(), "");
  return e->make(nlohmann::json::object(), e->function);
}

std::string canonical_name(std::string_view name) {
  bool is_class = false;
  const Entry* e = lookup(name, &is_class);
  return e ? e->function : "";
}

nlohmann::json serialize(const Loss& loss) {
  return {{"class_name", loss.class_name()}, {"config", loss.get_config()}};
}

std::shared_ptr<Loss> deserialize(const nlohmann::json& config) {
  KILN_CHECK(config.is_object() && config.contains("class_name") && config["class_name"].is_string(), ValueError,
             "losses::deserialize: expected {\"class_name\": ..., \"config\": {...}}, got ", config.dump());
  const std::string cls = config["class_name"].get<std::string>();
  bool is_class = false;
  const Entry* e = lookup(cls, &is_class);
  if (!e) unknown(cls, "losses::deserialize");
  const nlohmann::json inner = config.contains("config") ? config["config"] : nlohmann::json::object();
  return e->make(inner, is_class ? "" : e->function);
}

}  // namespace kiln::losses
