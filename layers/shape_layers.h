// Keras' reshaping layers that move no data across the batch: Flatten, Reshape, Permute.
// (ZeroPadding2D, UpSampling2D and friends are in layers/reshaping.h.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layers/layer.h"

namespace kiln::layers {

// The common options only (name, trainable, input_shape, dtype).
using ShapeLayerOptions = LayerOptions;

// (batch, d1, d2, ...) -> (batch, d1 * d2 * ...); (batch,) -> (batch, 1) as Keras.
class FlattenLayer : public Layer {
 public:
  explicit FlattenLayer(ShapeLayerOptions options = {});
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;  // {"data_format": "channels_last", ...}
  using Layer::call;
  using Layer::compute_output_shape;
};
Ref<FlattenLayer> Flatten(ShapeLayerOptions options = {});

// (batch, ...) -> (batch, target_shape...); one entry of target_shape may be -1 (inferred).
// The element count must match: ShapeError naming the layer and both shapes otherwise.
class ReshapeLayer : public Layer {
 public:
  ReshapeLayer(std::vector<std::int64_t> target_shape, ShapeLayerOptions options = {});
  const std::vector<std::int64_t>& target_shape() const { return target_shape_; }
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  Shape resolve(const Shape& input_shape) const;  // the output shape, batch kept
  std::vector<std::int64_t> target_shape_;
};
Ref<ReshapeLayer> Reshape(std::vector<std::int64_t> target_shape, ShapeLayerOptions options = {});

// Permutes the non-batch axes; dims are 1-based as Keras (Permute({2, 1}) swaps axes 1
// and 2 of (batch, a, b)). The result is a view (no copy until a later op needs one).
class PermuteLayer : public Layer {
 public:
  PermuteLayer(std::vector<std::int64_t> dims, ShapeLayerOptions options = {});
  const std::vector<std::int64_t>& dims() const { return dims_; }
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  std::vector<std::int64_t> dims_;
};
Ref<PermuteLayer> Permute(std::vector<std::int64_t> dims, ShapeLayerOptions options = {});

}  // namespace kiln::layers
