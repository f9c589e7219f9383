// Keras' 2-D pooling layers, NHWC: MaxPooling2D, AveragePooling2D (windows, on
// kernels/pool.h), GlobalAveragePooling2D, GlobalMaxPooling2D. No weights.
//   kiln::layers::MaxPooling2D({2, 2})                       // (N, 28, 28, C) -> (N, 14, 14, C)
//   kiln::layers::GlobalAveragePooling2D({.keepdims = true})  // (N, H, W, C) -> (N, 1, 1, C)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layers/image_common.h"
#include "kiln/layers/layer.h"

namespace kiln::layers {

enum class PoolMode { max, average };

// ---- MaxPooling2D, AveragePooling2D ----

struct Pooling2DOptions {
  Int2 strides = {-1, -1};         // {-1, -1}: Keras' None, i.e. pool_size
  std::string padding = "valid";  // or "same" (Keras: extra padding at bottom/right)
  std::string data_format = "channels_last";
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// (N, H, W, C) -> (N, OH, OW, C), OH = floor((H - pool) / stride) + 1 (valid) or
// ceil(H / stride) (same). Max routes the gradient to the first maximum of each window;
// average divides by the number of input (not padding) elements in the window, as Keras.
class Pooling2DLayer : public Layer {
 public:
  Pooling2DLayer(PoolMode mode, Int2 pool_size, Pooling2DOptions options = {});
  PoolMode mode() const { return mode_; }
  Int2 pool_size() const { return pool_size_; }
  Int2 strides() const { return options_.strides; }  // pool_size when not given
  const std::string& padding() const { return options_.padding; }

  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;  // pool_size, padding, strides, data_format
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  PoolMode mode_;
  Int2 pool_size_;
  Pooling2DOptions options_;
};
Ref<Pooling2DLayer> MaxPooling2D(Int2 pool_size = 2, Pooling2DOptions options = {});
Ref<Pooling2DLayer> AveragePooling2D(Int2 pool_size = 2, Pooling2DOptions options = {});

// ---- GlobalAveragePooling2D, GlobalMaxPooling2D ----

struct GlobalPooling2DOptions {
  std::string data_format = "channels_last";
  bool keepdims = false;  // (N, 1, 1, C) instead of (N, C)
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// The mean or max over rows and columns: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims.
class GlobalPooling2DLayer : public Layer {
 public:
  GlobalPooling2DLayer(PoolMode mode, GlobalPooling2DOptions options = {});
  PoolMode mode() const { return mode_; }
  bool keepdims() const { return options_.keepdims; }

  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;  // data_format, keepdims
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  PoolMode mode_;
  GlobalPooling2DOptions options_;
};
Ref<GlobalPooling2DLayer> GlobalAveragePooling2D(GlobalPooling2DOptions options = {});
Ref<GlobalPooling2DLayer> GlobalMaxPooling2D(GlobalPooling2DOptions options = {});

}  // namespace kiln::layers
