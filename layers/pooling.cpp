// Keras' pooling layers (see pooling.h).
#include "kiln/layers/pooling.h"

#include <nlohmann/json.hpp>

#include "kiln/kernels/pool.h"

namespace kiln::layers {

using nlohmann::json;

// ---- MaxPooling2D, AveragePooling2D ----

Pooling2DLayer::Pooling2DLayer(PoolMode mode, Int2 pool_size, Pooling2DOptions options)
    : Layer(mode == PoolMode::max ? "MaxPooling2D" : "AveragePooling2D", common_options(options)),
      mode_(mode),
      pool_size_(pool_size),
      options_(std::move(options)) {
  image::check_positive(pool_size_, "pool_size", name());
  if (options_.strides == Int2{-1, -1}) options_.strides = pool_size_;  // Keras: strides=None
  image::check_positive(options_.strides, "strides", name());
  options_.padding = image::standardize_padding(options_.padding, name());
  image::check_data_format(options_.data_format, name());
}

Tensor Pooling2DLayer::call(const Tensor& x, bool) {
  (void)compute_output_shape(x.shape());
  const Pool2dOptions o{.pool_size = pool_size_.array(), .strides = options_.strides.array(),
                        .padding = options_.padding};
  return mode_ == PoolMode::max ? max_pool2d(x, o) : avg_pool2d(x, o);
}

Shape Pooling2DLayer::compute_output_shape(const Shape& s) const {
  image::check_image_shape(s, name());
  const std::int64_t oh = image::conv_output_length(s[1], pool_size_.h, options_.strides.h, 1, options_.padding);
  const std::int64_t ow = image::conv_output_length(s[2], pool_size_.w, options_.strides.w, 1, options_.padding);
  KILN_CHECK(oh != 0 && ow != 0, ShapeError, name(), ": input ", shape_str(s), " is smaller than pool_size (",
             pool_size_.h, ", ", pool_size_.w, "); the output would be empty");
  return {s[0], oh, ow, s[3]};
}

json Pooling2DLayer::get_config() const {
  json c = Layer::get_config();
  c["pool_size"] = image::to_json(pool_size_);
  c["padding"] = options_.padding;
  c["strides"] = image::to_json(options_.strides);
  c["data_format"] = options_.data_format;
  return c;
}

Ref<Pooling2DLayer> MaxPooling2D(Int2 pool_size, Pooling2DOptions options) {
  return std::make_shared<Pooling2DLayer>(PoolMode::max, pool_size, std::move(options));
}
Ref<Pooling2DLayer> AveragePooling2D(Int2 pool_size, Pooling2DOptions options) {
  return std::make_shared<Pooling2DLayer>(PoolMode::average, pool_size, std::move(options));
}

// ---- GlobalAveragePooling2D, GlobalMaxPooling2D ----

GlobalPooling2DLayer::GlobalPooling2DLayer(PoolMode mode, GlobalPooling2DOptions options)
    : Layer(mode == PoolMode::max ? "GlobalMaxPooling2D" : "GlobalAveragePooling2D", common_options(options)),
      mode_(mode),
      options_(std::move(options)) {
  image::check_data_format(options_.data_format, name());
}

Tensor GlobalPooling2DLayer::call(const Tensor& x, bool) {
  image::check_image_shape(x.shape(), name());
  return mode_ == PoolMode::max ? global_max_pool2d(x, options_.keepdims) : global_avg_pool2d(x, options_.keepdims);
}

Shape GlobalPooling2DLayer::compute_output_shape(const Shape& s) const {
  image::check_image_shape(s, name());
  return options_.keepdims ? Shape{s[0], 1, 1, s[3]} : Shape{s[0], s[3]};
}

json GlobalPooling2DLayer::get_config() const {
  json c = Layer::get_config();
  c["data_format"] = options_.data_format;
  c["keepdims"] = options_.keepdims;
  return c;
}

Ref<GlobalPooling2DLayer> GlobalAveragePooling2D(GlobalPooling2DOptions options) {
  return std::make_shared<GlobalPooling2DLayer>(PoolMode::average, std::move(options));
}
Ref<GlobalPooling2DLayer> GlobalMaxPooling2D(GlobalPooling2DOptions options) {
  return std::make_shared<GlobalPooling2DLayer>(PoolMode::max, std::move(options));
}

}  // namespace kiln::layers
