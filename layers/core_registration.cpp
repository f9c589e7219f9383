// register_core_layers: the registry factories (Keras class name -> layer from its
// config) for the layers of core.h, shape_layers.h, merge.h and network.h
// (Note [Registration order] in registry.h).
#include <nlohmann/json.hpp>

#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/network.h"
#include "kiln/layers/registry.h"
#include "kiln/layers/shape_layers.h"

namespace kiln::layers {

using nlohmann::json;

namespace {

std::string activation_of(const json& c) {
  if (!c.contains("activation") || c["activation"].is_null()) return "linear";
  const json& a = c["activation"];
  // Keras may write a serialized function {"class_name": "function", "config": "relu"}.
  if (a.is_object() && a.contains("config") && a["config"].is_string()) return a["config"].get<std::string>();
  return a.get<std::string>();
}

initializers::Spec initializer_of(const json& c, const char* key, const char* fallback) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  return initializers::deserialize(c[key]);
}
regularizers::Spec regularizer_of(const json& c, const char* key) {
  if (!c.contains(key)) return {};
  return regularizers::deserialize(c[key]);
}
constraints::Spec constraint_of(const json& c, const char* key) {
  if (!c.contains(key)) return {};
  return constraints::deserialize(c[key]);
}

template <class Options>
Options with_common(Options o, const json& c) {
  const LayerOptions common = common_options_from_config(c);
  o.name = common.name;
  o.trainable = common.trainable;
  o.input_shape = common.input_shape;
  o.dtype = common.dtype;
  return o;
}

LayerRef make_input_layer(const json& c) {
  const char* key = c.contains("batch_shape") ? "batch_shape" : "batch_input_shape";
  KILN_CHECK(c.contains(key), FormatError, "InputLayer config: needs batch_shape, got ", c.dump());
  InputOptions o;
  if (c.contains("name")) o.name = c["name"].get<std::string>();
  if (c.contains("dtype") && !c["dtype"].is_null()) o.dtype = dtype_from_json(c["dtype"]);
  return std::make_shared<InputLayer>(shape_from_json(c[key]), std::move(o));
}

LayerRef make_dense(const json& c) {
  DenseOptions o;
  o.activation = activation_of(c);
  o.use_bias = c.value("use_bias", true);
  o.kernel_initializer = initializer_of(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = initializer_of(c, "bias_initializer", "zeros");
  o.kernel_regularizer = regularizer_of(c, "kernel_regularizer");
  o.bias_regularizer = regularizer_of(c, "bias_regularizer");
  o.kernel_constraint = constraint_of(c, "kernel_constraint");
  o.bias_constraint = constraint_of(c, "bias_constraint");
  return Dense(c.at("units").get<std::int64_t>(), with_common(std::move(o), c));
}

LayerRef make_embedding(const json& c) {
  KILN_CHECK(!c.value("mask_zero", false), ValueError, "Embedding: mask_zero=True is not supported by kiln");
  EmbeddingOptions o;
  o.embeddings_initializer = initializer_of(c, "embeddings_initializer", "uniform");
  o.embeddings_regularizer = regularizer_of(c, "embeddings_regularizer");
  o.embeddings_constraint = constraint_of(c, "embeddings_constraint");
  return Embedding(c.at("input_dim").get<std::int64_t>(), c.at("output_dim").get<std::int64_t>(),
                   with_common(std::move(o), c));
}

LayerRef make_dropout(const json& c) {
  DropoutOptions o;
  if (c.contains("seed") && !c["seed"].is_null()) o.seed = c["seed"].get<std::uint64_t>();
  return Dropout(c.at("rate").get<double>(), with_common(std::move(o), c));
}

}  // namespace

void register_core_layers(LayerRegistry& r) {
  r.add("InputLayer", make_input_layer);
  r.add("Dense", make_dense);
  r.add("Activation", [](const json& c) -> LayerRef {
    return Activation(activation_of(c), with_common(ActivationOptions{}, c));
  });
  r.add("Dropout", make_dropout);
  r.add("Embedding", make_embedding);
  r.add("Flatten", [](const json& c) -> LayerRef { return Flatten(common_options_from_config(c)); });
  r.add("Reshape", [](const json& c) -> LayerRef {
    return Reshape(c.at("target_shape").get<std::vector<std::int64_t>>(), common_options_from_config(c));
  });
  r.add("Permute", [](const json& c) -> LayerRef {
    return Permute(c.at("dims").get<std::vector<std::int64_t>>(), common_options_from_config(c));
  });
  r.add("Add", [](const json& c) -> LayerRef { return Add(common_options_from_config(c)); });
  r.add("Subtract", [](const json& c) -> LayerRef { return Subtract(common_options_from_config(c)); });
  r.add("Multiply", [](const json& c) -> LayerRef { return Multiply(common_options_from_config(c)); });
  r.add("Average", [](const json& c) -> LayerRef { return Average(common_options_from_config(c)); });
  r.add("Maximum", [](const json& c) -> LayerRef { return Maximum(common_options_from_config(c)); });
  r.add("Minimum", [](const json& c) -> LayerRef { return Minimum(common_options_from_config(c)); });
  r.add("Concatenate", [](const json& c) -> LayerRef {
    ConcatenateOptions o = with_common(ConcatenateOptions{}, c);
    o.axis = c.value("axis", std::int64_t{-1});
    return Concatenate(std::move(o));
  });
  // Models nested as layers; kiln::Model re-registers these to make Models.
  r.add("Sequential", [](const json& c) -> LayerRef { return Network::from_config(c, "Sequential"); });
  r.add("Functional", [](const json& c) -> LayerRef { return Network::from_config(c, "Functional"); });
}

}  // namespace kiln::layers
