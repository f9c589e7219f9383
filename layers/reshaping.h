// Keras' spatial reshaping layers, NHWC: ZeroPadding2D and UpSampling2D, on
// kernels/resize.h. No weights. (Flatten, Reshape, Permute are in layers/shape_layers.h.)
//   kiln::layers::ZeroPadding2D({{1, 2}, {3, 4}})                 // ((top, bottom), (left, right))
//   kiln::layers::UpSampling2D(2, {.interpolation = "bilinear"})  // (N, H, W, C) -> (N, 2H, 2W, C)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layers/image_common.h"
#include "kiln/layers/layer.h"

namespace kiln::layers {

// ZeroPadding2D's padding, as Keras: an int (all four sides), a pair (rows, cols) padded
// symmetrically, or ((top, bottom), (left, right)).
struct Padding2D {
  std::int64_t top = 1, bottom = 1, left = 1, right = 1;
  Padding2D(std::int64_t all) : top(all), bottom(all), left(all), right(all) {}
  Padding2D(std::int64_t rows, std::int64_t cols) : top(rows), bottom(rows), left(cols), right(cols) {}
  Padding2D(Int2 rows, Int2 cols) : top(rows.h), bottom(rows.w), left(cols.h), right(cols.w) {}
};

// ---- ZeroPadding2D ----

struct ZeroPadding2DOptions {
  std::string data_format = "channels_last";
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// (N, H, W, C) -> (N, top + H + bottom, left + W + right, C), zeros around.
class ZeroPadding2DLayer : public Layer {
 public:
  ZeroPadding2DLayer(Padding2D padding, ZeroPadding2DOptions options = {});
  const Padding2D& padding() const { return padding_; }

  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;  // padding [[top, bottom], [left, right]], data_format
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  Padding2D padding_;
  ZeroPadding2DOptions options_;
};
Ref<ZeroPadding2DLayer> ZeroPadding2D(Padding2D padding = 1, ZeroPadding2DOptions options = {});

// ---- UpSampling2D ----

struct UpSampling2DOptions {
  std::string data_format = "channels_last";
  // "nearest" (rows and columns repeated) or "bilinear" (TF's half-pixel centres). Keras'
  // bicubic and lanczos are not supported (ValueError).
  std::string interpolation = "nearest";
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// (N, H, W, C) -> (N, H * size.h, W * size.w, C).
class UpSampling2DLayer : public Layer {
 public:
  UpSampling2DLayer(Int2 size, UpSampling2DOptions options = {});
  Int2 size() const { return size_; }
  const std::string& interpolation() const { return options_.interpolation; }

  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;  // size, data_format, interpolation
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  Int2 size_;
  UpSampling2DOptions options_;
};
Ref<UpSampling2DLayer> UpSampling2D(Int2 size = 2, UpSampling2DOptions options = {});

}  // namespace kiln::layers
