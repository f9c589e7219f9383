// Shared helpers of the image layers (see image_common.h).
#include "kiln/layers/image_common.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "kiln/kernels/unary.h"

namespace kiln::layers {

using nlohmann::json;

namespace image {

std::string standardize_padding(const std::string& padding, std::string_view layer) {
  std::string p = padding;
  std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  KILN_CHECK(p == "valid" || p == "same", ValueError, layer, ": padding must be \"valid\" or \"same\", got \"",
             padding, "\"");
  return p;
}

void check_data_format(const std::string& data_format, std::string_view layer) {
  KILN_CHECK(data_format == "channels_last", ValueError, layer,
             ": kiln images are NHWC; data_format must be \"channels_last\", got \"", data_format, "\"");
}

void check_positive(Int2 value, std::string_view what, std::string_view layer) {
  KILN_CHECK(value.h >= 1 && value.w >= 1, ValueError, layer, ": ", what, " must be positive, got (", value.h,
             ", ", value.w, ")");
}

void check_image_shape(const Shape& shape, std::string_view layer) {
  KILN_CHECK(shape.ndim() == 4, ShapeError, layer, ": expected a 4-D input (batch, rows, cols, channels), got ",
             shape_str(shape));
}

std::int64_t conv_output_length(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                                const std::string& padding) {
  if (in < 0) return -1;
  if (padding == "same") return (in + stride - 1) / stride;
  const std::int64_t dk = (kernel - 1) * dilation + 1;
  return in >= dk ? (in - dk) / stride + 1 : 0;
}

std::int64_t conv_transpose_output_length(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                          std::int64_t dilation, const std::string& padding,
                                          std::int64_t output_padding) {
  if (in < 0) return -1;
  const std::int64_t dk = (kernel - 1) * dilation + 1;
  if (output_padding < 0) {
    return padding == "valid" ? (in - 1) * stride + std::max(dk, stride) : in * stride;
  }
  return padding == "valid" ? (in - 1) * stride + dk + output_padding
                            : (in - 1) * stride + dk % 2 + output_padding;
}

json to_json(Int2 value) { return json::array({value.h, value.w}); }

Int2 int2_from_json(const json& value, std::string_view key) {
  if (value.is_number_integer()) return Int2(value.get<std::int64_t>());
  KILN_CHECK(value.is_array() && value.size() == 2 && value[0].is_number_integer() && value[1].is_number_integer(),
             ValueError, "config: \"", key, "\" must be an integer or a list of two integers, got ", value.dump());
  return Int2(value[0].get<std::int64_t>(), value[1].get<std::int64_t>());
}

Int2 int2_from_config(const json& config, const char* key, Int2 fallback) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  return int2_from_json(config[key], key);
}

std::string checked_activation(std::string_view layer, const std::string& activation) {
  const std::string act = activation.empty() ? "linear" : activation;
  try {
    (void)kiln::activation(zeros({1}, {.dtype = DType::float32, .device = Device::cpu()}), act);
  } catch (const ValueError& e) {
    KILN_THROW(ValueError, layer, ": ", e.message());
  }
  return act;
}

initializers::InitializerPtr resolve(const initializers::Spec& spec, const char* fallback) {
  return spec.empty() ? initializers::get(fallback) : spec.resolve();
}

json to_json(const initializers::InitializerPtr& initializer) { return initializers::serialize(*initializer); }
json to_json(const regularizers::RegularizerPtr& regularizer) {
  return regularizer ? regularizers::serialize(*regularizer) : json(nullptr);
}
json to_json(const constraints::ConstraintPtr& constraint) {
  return constraint ? constraints::serialize(*constraint) : json(nullptr);
}

initializers::Spec initializer_from_json(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return {};
  return initializers::Spec(initializers::deserialize(config[key]));
}
regularizers::Spec regularizer_from_json(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return {};
  return regularizers::Spec(regularizers::deserialize(config[key]));
}
constraints::Spec constraint_from_json(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return {};
  return constraints::Spec(constraints::deserialize(config[key]));
}

void reject_activity_regularizer(const json& config, std::string_view class_name) {
  KILN_CHECK(!config.contains("activity_regularizer") || config["activity_regularizer"].is_null(), ValueError,
             class_name, ": activity_regularizer is not supported by kiln's image layers (got ",
             config["activity_regularizer"].dump(), ")");
}

}  // namespace image
}  // namespace kiln::layers
