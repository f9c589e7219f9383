// Registers the image layers (conv.h, pooling.h, normalization.h, reshaping.h) with the
// layer registry: one factory per Keras class name, reading the layer's get_config()
// (Note [Registration order] in registry.h).
#include <nlohmann/json.hpp>

#include "kiln/layers/conv.h"
#include "kiln/layers/image_common.h"
#include "kiln/layers/normalization.h"
#include "kiln/layers/pooling.h"
#include "kiln/layers/registry.h"
#include "kiln/layers/reshaping.h"

namespace kiln::layers {

using nlohmann::json;

namespace {

std::string str(const json& c, const char* key, const char* fallback) {
  return c.contains(key) && c[key].is_string() ? c[key].get<std::string>() : std::string(fallback);
}
// Keras writes activation None as null.
std::string activation(const json& c) { return str(c, "activation", "linear"); }

LayerRef conv2d_from_config(const json& c) {
  image::reject_activity_regularizer(c, "Conv2D");
  Conv2DOptions o{.strides = image::int2_from_config(c, "strides", 1),
                  .padding = str(c, "padding", "valid"),
                  .data_format = str(c, "data_format", "channels_last"),
                  .dilation_rate = image::int2_from_config(c, "dilation_rate", 1),
                  .groups = c.value("groups", std::int64_t{1}),
                  .activation = activation(c),
                  .use_bias = c.value("use_bias", true),
                  .kernel_initializer = image::initializer_from_json(c, "kernel_initializer"),
                  .bias_initializer = image::initializer_from_json(c, "bias_initializer"),
                  .kernel_regularizer = image::regularizer_from_json(c, "kernel_regularizer"),
                  .bias_regularizer = image::regularizer_from_json(c, "bias_regularizer"),
                  .kernel_constraint = image::constraint_from_json(c, "kernel_constraint"),
                  .bias_constraint = image::constraint_from_json(c, "bias_constraint")};
  return Conv2D(c.at("filters").get<std::int64_t>(), image::int2_from_json(c.at("kernel_size"), "kernel_size"),
                image::with_common(std::move(o), common_options_from_config(c)));
}

LayerRef depthwise_conv2d_from_config(const json& c) {
  image::reject_activity_regularizer(c, "DepthwiseConv2D");
  DepthwiseConv2DOptions o{.strides = image::int2_from_config(c, "strides", 1),
                           .padding = str(c, "padding", "valid"),
                           .depth_multiplier = c.value("depth_multiplier", std::int64_t{1}),
                           .data_format = str(c, "data_format", "channels_last"),
                           .dilation_rate = image::int2_from_config(c, "dilation_rate", 1),
                           .activation = activation(c),
                           .use_bias = c.value("use_bias", true),
                           .depthwise_initializer = image::initializer_from_json(c, "depthwise_initializer"),
                           .bias_initializer = image::initializer_from_json(c, "bias_initializer"),
                           .depthwise_regularizer = image::regularizer_from_json(c, "depthwise_regularizer"),
                           .bias_regularizer = image::regularizer_from_json(c, "bias_regularizer"),
                           .depthwise_constraint = image::constraint_from_json(c, "depthwise_constraint"),
                           .bias_constraint = image::constraint_from_json(c, "bias_constraint")};
  return DepthwiseConv2D(image::int2_from_json(c.at("kernel_size"), "kernel_size"),
                         image::with_common(std::move(o), common_options_from_config(c)));
}

LayerRef separable_conv2d_from_config(const json& c) {
  image::reject_activity_regularizer(c, "SeparableConv2D");
  SeparableConv2DOptions o{.strides = image::int2_from_config(c, "strides", 1),
                           .padding = str(c, "padding", "valid"),
                           .data_format = str(c, "data_format", "channels_last"),
                           .dilation_rate = image::int2_from_config(c, "dilation_rate", 1),
                           .depth_multiplier = c.value("depth_multiplier", std::int64_t{1}),
                           .activation = activation(c),
                           .use_bias = c.value("use_bias", true),
                           .depthwise_initializer = image::initializer_from_json(c, "depthwise_initializer"),
                           .pointwise_initializer = image::initializer_from_json(c, "pointwise_initializer"),
                           .bias_initializer = image::initializer_from_json(c, "bias_initializer"),
                           .depthwise_regularizer = image::regularizer_from_json(c, "depthwise_regularizer"),
                           .pointwise_regularizer = image::regularizer_from_json(c, "pointwise_regularizer"),
                           .bias_regularizer = image::regularizer_from_json(c, "bias_regularizer"),
                           .depthwise_constraint = image::constraint_from_json(c, "depthwise_constraint"),
                           .pointwise_constraint = image::constraint_from_json(c, "pointwise_constraint"),
                           .bias_constraint = image::constraint_from_json(c, "bias_constraint")};
  return SeparableConv2D(c.at("filters").get<std::int64_t>(), image::int2_from_json(c.at("kernel_size"), "kernel_size"),
                         image::with_common(std::move(o), common_options_from_config(c)));
}

LayerRef conv2d_transpose_from_config(const json& c) {
  image::reject_activity_regularizer(c, "Conv2DTranspose");
  Conv2DTransposeOptions o{.strides = image::int2_from_config(c, "strides", 1),
                           .padding = str(c, "padding", "valid"),
                           .output_padding = image::int2_from_config(c, "output_padding", {-1, -1}),
                           .data_format = str(c, "data_format", "channels_last"),
                           .dilation_rate = image::int2_from_config(c, "dilation_rate", 1),
                           .activation = activation(c),
                           .use_bias = c.value("use_bias", true),
                           .kernel_initializer = image::initializer_from_json(c, "kernel_initializer"),
                           .bias_initializer = image::initializer_from_json(c, "bias_initializer"),
                           .kernel_regularizer = image::regularizer_from_json(c, "kernel_regularizer"),
                           .bias_regularizer = image::regularizer_from_json(c, "bias_regularizer"),
                           .kernel_constraint = image::constraint_from_json(c, "kernel_constraint"),
                           .bias_constraint = image::constraint_from_json(c, "bias_constraint")};
  return Conv2DTranspose(c.at("filters").get<std::int64_t>(), image::int2_from_json(c.at("kernel_size"), "kernel_size"),
                         image::with_common(std::move(o), common_options_from_config(c)));
}

LayerRef pooling2d_from_config(PoolMode mode, const json& c) {
  Pooling2DOptions o{.strides = image::int2_from_config(c, "strides", {-1, -1}),
                     .padding = str(c, "padding", "valid"),
                     .data_format = str(c, "data_format", "channels_last")};
  o = image::with_common(std::move(o), common_options_from_config(c));
  const Int2 pool = image::int2_from_config(c, "pool_size", 2);
  return mode == PoolMode::max ? LayerRef(MaxPooling2D(pool, std::move(o))) : LayerRef(AveragePooling2D(pool, std::move(o)));
}

LayerRef global_pooling2d_from_config(PoolMode mode, const json& c) {
  GlobalPooling2DOptions o{.data_format = str(c, "data_format", "channels_last"), .keepdims = c.value("keepdims", false)};
  o = image::with_common(std::move(o), common_options_from_config(c));
  return mode == PoolMode::max ? LayerRef(GlobalMaxPooling2D(std::move(o))) : LayerRef(GlobalAveragePooling2D(std::move(o)));
}

LayerRef batch_normalization_from_config(const json& c) {
  BatchNormalizationOptions o{.axis = c.value("axis", std::int64_t{-1}),
                              .momentum = c.value("momentum", 0.99),
                              .epsilon = c.value("epsilon", 1e-3),
                              .center = c.value("center", true),
                              .scale = c.value("scale", true),
                              .beta_initializer = image::initializer_from_json(c, "beta_initializer"),
                              .gamma_initializer = image::initializer_from_json(c, "gamma_initializer"),
                              .moving_mean_initializer = image::initializer_from_json(c, "moving_mean_initializer"),
                              .moving_variance_initializer = image::initializer_from_json(c, "moving_variance_initializer"),
                              .beta_regularizer = image::regularizer_from_json(c, "beta_regularizer"),
                              .gamma_regularizer = image::regularizer_from_json(c, "gamma_regularizer"),
                              .beta_constraint = image::constraint_from_json(c, "beta_constraint"),
                              .gamma_constraint = image::constraint_from_json(c, "gamma_constraint"),
                              .synchronized = c.value("synchronized", false)};
  return BatchNormalization(image::with_common(std::move(o), common_options_from_config(c)));
}

AxisList axis_from_json(const json& c) {
  if (!c.contains("axis") || c["axis"].is_null()) return AxisList(-1);
  const json& a = c["axis"];
  if (a.is_number_integer()) return AxisList(a.get<std::int64_t>());
  KILN_CHECK(a.is_array(), ValueError, "LayerNormalization config: \"axis\" must be an integer or a list, got ", a.dump());
  return AxisList(a.get<std::vector<std::int64_t>>());
}

LayerRef layer_normalization_from_config(const json& c) {
  LayerNormalizationOptions o{.axis = axis_from_json(c),
                              .epsilon = c.value("epsilon", 1e-3),
                              .center = c.value("center", true),
                              .scale = c.value("scale", true),
                              .rms_scaling = c.value("rms_scaling", false),
                              .beta_initializer = image::initializer_from_json(c, "beta_initializer"),
                              .gamma_initializer = image::initializer_from_json(c, "gamma_initializer"),
                              .beta_regularizer = image::regularizer_from_json(c, "beta_regularizer"),
                              .gamma_regularizer = image::regularizer_from_json(c, "gamma_regularizer"),
                              .beta_constraint = image::constraint_from_json(c, "beta_constraint"),
                              .gamma_constraint = image::constraint_from_json(c, "gamma_constraint")};
  return LayerNormalization(image::with_common(std::move(o), common_options_from_config(c)));
}

// Keras' ZeroPadding2D padding: int, [rows, cols] or [[top, bottom], [left, right]].
Padding2D padding2d_from_json(const json& c) {
  if (!c.contains("padding") || c["padding"].is_null()) return Padding2D(1);
  const json& p = c["padding"];
  if (p.is_array() && p.size() == 2 && p[0].is_array()) {
    return Padding2D(image::int2_from_json(p[0], "padding"), image::int2_from_json(p[1], "padding"));
  }
  const Int2 rc = image::int2_from_json(p, "padding");
  return Padding2D(rc.h, rc.w);
}

LayerRef zero_padding2d_from_config(const json& c) {
  ZeroPadding2DOptions o{.data_format = str(c, "data_format", "channels_last")};
  return ZeroPadding2D(padding2d_from_json(c), image::with_common(std::move(o), common_options_from_config(c)));
}

LayerRef upsampling2d_from_config(const json& c) {
  UpSampling2DOptions o{.data_format = str(c, "data_format", "channels_last"),
                        .interpolation = str(c, "interpolation", "nearest")};
  return UpSampling2D(image::int2_from_config(c, "size", 2),
                      image::with_common(std::move(o), common_options_from_config(c)));
}

}  // namespace

void register_image_layers(LayerRegistry& registry) {
  registry.add("Conv2D", conv2d_from_config);
  registry.add("DepthwiseConv2D", depthwise_conv2d_from_config);
  registry.add("SeparableConv2D", separable_conv2d_from_config);
  registry.add("Conv2DTranspose", conv2d_transpose_from_config);
  registry.add("MaxPooling2D", [](const json& c) { return pooling2d_from_config(PoolMode::max, c); });
  registry.add("AveragePooling2D", [](const json& c) { return pooling2d_from_config(PoolMode::average, c); });
  registry.add("GlobalMaxPooling2D", [](const json& c) { return global_pooling2d_from_config(PoolMode::max, c); });
  registry.add("GlobalAveragePooling2D",
               [](const json& c) { return global_pooling2d_from_config(PoolMode::average, c); });
  registry.add("BatchNormalization", batch_normalization_from_config);
  registry.add("LayerNormalization", layer_normalization_from_config);
  registry.add("ZeroPadding2D", zero_padding2d_from_config);
  registry.add("UpSampling2D", upsampling2d_from_config);
}

}  // namespace kiln::layers
