// The layer registry and Keras' serialized-layer form (see registry.h).
#include "kiln/layers/registry.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace kiln::layers {

using nlohmann::json;

LayerRegistry& LayerRegistry::instance() {
  // Note [Registration order]: filled here, on first use, by explicit calls.
  static LayerRegistry* registry = [] {
    auto* r = new LayerRegistry();  // never destroyed: layers may be made during exit
    register_core_layers(*r);
    register_image_layers(*r);
    return r;
  }();
  return *registry;
}

void LayerRegistry::add(const std::string& class_name, LayerFactory factory) {
  KILN_CHECK(!class_name.empty() && factory, ValueError, "register_layer: needs a class name and a factory");
  std::lock_guard lock(mutex_);
  factories_[class_name] = std::move(factory);
}

bool LayerRegistry::contains(std::string_view class_name) const {
  std::lock_guard lock(mutex_);
  return factories_.count(std::string(class_name)) != 0;
}

std::vector<std::string> LayerRegistry::names() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, _] : factories_) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

LayerRef LayerRegistry::create(std::string_view class_name, const json& config) const {
  LayerFactory factory;
  {
    std::lock_guard lock(mutex_);
    if (auto it = factories_.find(std::string(class_name)); it != factories_.end()) factory = it->second;
  }
  if (!factory) {
    std::string valid;
    for (const auto& n : names()) valid += (valid.empty() ? "" : ", ") + n;
    KILN_THROW(ValueError, "layer registry: unknown layer class '", class_name,
               "' (register custom layers with kiln::layers::register_layer); registered: ", valid);
  }
  return factory(config);
}

void register_layer(const std::string& class_name, LayerFactory factory) {
  LayerRegistry::instance().add(class_name, std::move(factory));
}

json serialize_layer(const Layer& layer) {
  json out = {{"module", "keras.layers"},
              {"class_name", layer.class_name()},
              {"config", layer.get_config()},
              {"registered_name", nullptr}};
  if (layer.built()) {
    const auto& shapes = layer.built_input_shapes();
    if (shapes.size() == 1) {
      out["build_config"] = {{"input_shape", shape_to_json(shapes[0])}};
    } else if (!shapes.empty()) {
      json list = json::array();
      for (const Shape& s : shapes) list.push_back(shape_to_json(s));
      out["build_config"] = {{"input_shape", list}};
    }
  }
  return out;
}

LayerRef deserialize_layer(const json& serialized) {
  KILN_CHECK(serialized.is_object() && serialized.contains("class_name"), FormatError,
             "deserialize_layer: expected {\"class_name\", \"config\"}, got ", serialized.dump());
  const json config = serialized.contains("config") ? serialized["config"] : json::object();
  LayerRef layer = LayerRegistry::instance().create(serialized["class_name"].get<std::string>(), config);
  if (serialized.contains("build_config") && serialized["build_config"].contains("input_shape") && !layer->built()) {
    const json& s = serialized["build_config"]["input_shape"];
    std::vector<Shape> shapes;
    // A list of shapes (several inputs) has lists as its elements.
    if (!s.empty() && s[0].is_array()) {
      for (const json& one : s) shapes.push_back(shape_from_json(one));
    } else {
      shapes.push_back(shape_from_json(s));
    }
    layer->maybe_build(shapes);
  }
  return layer;
}

json shape_to_json(const Shape& shape) {
  json out = json::array();
  for (std::int64_t d : shape) out.push_back(d < 0 ? json(nullptr) : json(d));
  return out;
}

Shape shape_from_json(const json& j) {
  KILN_CHECK(j.is_array(), FormatError, "shape_from_json: expected a list, got ", j.dump());
  KILN_CHECK(j.size() <= static_cast<std::size_t>(Shape::kMaxDims), FormatError,
             "shape_from_json: at most ", Shape::kMaxDims, " axes, got ", j.dump());
  Shape out;
  for (const json& d : j) out.push_back(d.is_null() ? -1 : d.get<std::int64_t>());
  return out;
}

std::string dtype_to_json(DType dtype) { return std::string(name(dtype)); }

DType dtype_from_json(const json& j) {
  std::string s;
  if (j.is_string()) {
    s = j.get<std::string>();
  } else if (j.is_object() && j.contains("config") && j["config"].contains("name")) {
    s = j["config"]["name"].get<std::string>();  // Keras 3's DTypePolicy object
  } else {
    KILN_THROW(FormatError, "dtype_from_json: expected a dtype name or a DTypePolicy, got ", j.dump());
  }
  for (DType d : {DType::float32, DType::float16, DType::bfloat16, DType::float64, DType::int32, DType::int64,
                  DType::uint8, DType::bool_}) {
    if (s == name(d)) return d;
  }
  if (s == "bool") return DType::bool_;
  KILN_THROW(FormatError, "dtype_from_json: unknown dtype '", s, "'");
}

LayerOptions common_options_from_config(const json& c) {
  LayerOptions o;
  if (c.contains("name") && c["name"].is_string()) o.name = c["name"].get<std::string>();
  if (c.contains("trainable")) o.trainable = c["trainable"].get<bool>();
  if (c.contains("dtype") && !c["dtype"].is_null()) o.dtype = dtype_from_json(c["dtype"]);
  for (const char* key : {"batch_shape", "batch_input_shape"}) {
    if (c.contains(key) && c[key].is_array()) {
      const Shape s = shape_from_json(c[key]);
      for (int i = 1; i < s.ndim(); ++i) o.input_shape.push_back(s[i]);
    }
  }
  return o;
}

}  // namespace kiln::layers
