// What the image layers (conv.h, pooling.h, normalization.h, reshaping.h) share: Keras'
// "int or pair of ints" argument type, the output-size arithmetic of convolutions and
// pooling windows, input checks, and the JSON helpers of their configs. Images are NHWC
// (Keras' channels_last), the only layout kiln has.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "kiln/layers/layer.h"

namespace kiln::layers {

// Keras' "an integer or a tuple of 2 integers" (kernel_size, strides, dilation_rate,
// pool_size, size): Conv2D(32, 3) and Conv2D(32, {3, 5}) both read as Keras.
struct Int2 {
  std::int64_t h = 1;  // rows (height)
  std::int64_t w = 1;  // columns (width)
  Int2() = default;
  Int2(std::int64_t both) : h(both), w(both) {}
  Int2(std::int64_t h_, std::int64_t w_) : h(h_), w(w_) {}
  std::array<std::int64_t, 2> array() const { return {h, w}; }
  friend bool operator==(const Int2&, const Int2&) = default;
};

namespace image {

// Keras' standardize_padding: "valid" or "same", any letter case; ValueError naming the
// layer otherwise.
std::string standardize_padding(const std::string& padding, std::string_view layer);
// kiln is channels_last only: ValueError naming the layer for "channels_first" or anything
// else but "channels_last".
void check_data_format(const std::string& data_format, std::string_view layer);
// ValueError "<layer>: <what> must be positive, got (a, b)" unless both are >= 1.
void check_positive(Int2 value, std::string_view what, std::string_view layer);

// ShapeError unless `shape` is 4-D (batch, rows, cols, channels), as every 2-D image layer needs.
void check_image_shape(const Shape& shape, std::string_view layer);

// Output extent of a convolution or pooling window along one axis (Keras'
// compute_conv_output_shape): valid: floor((in - dk) / stride) + 1 with the dilated kernel
// dk = (k - 1) * dilation + 1; same: ceil(in / stride). -1 (unknown) stays -1.
std::int64_t conv_output_length(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                std::int64_t dilation, const std::string& padding);
// Output extent of a transposed convolution along one axis (Keras' conv-transpose
// arithmetic, dk the dilated kernel): output_padding < 0 (None): valid (in - 1) * stride +
// max(dk, stride), same in * stride; else valid (in - 1) * stride + dk + output_padding,
// same (in - 1) * stride + dk % 2 + output_padding. -1 stays -1.
std::int64_t conv_transpose_output_length(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                          std::int64_t dilation, const std::string& padding,
                                          std::int64_t output_padding);

// ---- JSON helpers for get_config and registry factories ----

nlohmann::json to_json(Int2 value);  // [h, w]
// An integer (both) or a list of two integers; ValueError naming `key` otherwise.
Int2 int2_from_json(const nlohmann::json& value, std::string_view key);
// A config's Int2 entry; a missing key or null gives `fallback`.
Int2 int2_from_config(const nlohmann::json& config, const char* key, Int2 fallback);
// Validates an activation name at construction (kiln::activation lists the valid names),
// so a typo fails where the layer is made, naming the layer. "" means "linear".
std::string checked_activation(std::string_view layer, const std::string& activation);
// Copies the common options (name, trainable, input_shape, dtype) into a layer's options.
template <class Options>
Options with_common(Options options, const LayerOptions& common) {
  options.name = common.name;
  options.trainable = common.trainable;
  options.input_shape = common.input_shape;
  options.dtype = common.dtype;
  return options;
}

// A layer option resolved once, at construction (unknown names fail there, as in Keras):
// an empty initializer spec means the layer's default `fallback`; an empty regularizer or
// constraint spec means none (nullptr).
initializers::InitializerPtr resolve(const initializers::Spec& spec, const char* fallback);
// Keras' serialized forms; no regularizer or constraint gives null.
nlohmann::json to_json(const initializers::InitializerPtr& initializer);
nlohmann::json to_json(const regularizers::RegularizerPtr& regularizer);
nlohmann::json to_json(const constraints::ConstraintPtr& constraint);
// From a config entry; a missing key or null gives an empty spec (the layer's default).
initializers::Spec initializer_from_json(const nlohmann::json& config, const char* key);
regularizers::Spec regularizer_from_json(const nlohmann::json& config, const char* key);
constraints::Spec constraint_from_json(const nlohmann::json& config, const char* key);
// Keras' activity_regularizer: kiln's image layers take none; ValueError naming the layer
// when a config carries a non-null one, so a model is never silently changed.
void reject_activity_regularizer(const nlohmann::json& config, std::string_view class_name);

}  // namespace image
}  // namespace kiln::layers
