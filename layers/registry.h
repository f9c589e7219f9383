// The layer registry: Keras class name -> factory from a JSON config, for rebuilding
// layers and models from get_config() output (Network::from_config, saving).
//
// Note [Registration order]: the registry fills itself on first use by calling the
// registration functions of kiln's layer files explicitly (register_core_layers in
// layers/core_registration.cpp, register_image_layers in the image-layer files), never
// through static initializers, which a static library may drop or run in any order.
// User layers register with register_layer before loading a config that names them.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/layers/layer.h"

namespace kiln::layers {

// Makes a layer from its config (the "config" object of a serialized layer).
using LayerFactory = std::function<LayerRef(const nlohmann::json& config)>;

class LayerRegistry {
 public:
  // The process-wide registry, with kiln's layers registered (Note [Registration order]).
  static LayerRegistry& instance();

  // Registers (or replaces) the factory for `class_name`.
  void add(const std::string& class_name, LayerFactory factory);
  bool contains(std::string_view class_name) const;
  std::vector<std::string> names() const;  // sorted
  // A new layer from its factory; ValueError listing the registered names when unknown.
  LayerRef create(std::string_view class_name, const nlohmann::json& config) const;

 private:
  LayerRegistry() = default;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, LayerFactory> factories_;
};

// Shorthands on LayerRegistry::instance().
void register_layer(const std::string& class_name, LayerFactory factory);

// Keras' serialized layer: {"module": "keras.layers", "class_name", "config",
// "registered_name", "build_config": {"input_shape": [null, ...]}} (build_config only when built).
nlohmann::json serialize_layer(const Layer& layer);
// The inverse: makes the layer from the registry and builds it from build_config when present.
LayerRef deserialize_layer(const nlohmann::json& serialized);

// Explicit registration functions called by LayerRegistry::instance() (defined beside
// the layers they register).
void register_core_layers(LayerRegistry& registry);   // layers/core_registration.cpp
void register_image_layers(LayerRegistry& registry);  // the image-layer files (conv, pooling, ...)

// Helpers for get_config / factories: Keras' JSON for shapes and dtypes.
nlohmann::json shape_to_json(const Shape& shape);    // -1 -> null
Shape shape_from_json(const nlohmann::json& json);   // null -> -1
std::string dtype_to_json(DType dtype);              // "float32"
DType dtype_from_json(const nlohmann::json& json);   // "float32", or Keras' DTypePolicy object
// The common options (name, trainable, dtype, batch_shape/batch_input_shape -> input_shape)
// read from a layer config.
LayerOptions common_options_from_config(const nlohmann::json& config);

}  // namespace kiln::layers
