// Keras' merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum (elementwise,
// inputs of one shape) and Concatenate (along an axis). Called on a list:
//   auto s = kiln::layers::Add()({a, b});
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layers/layer.h"

namespace kiln::layers {

using MergeOptions = LayerOptions;

enum class MergeOp { add, subtract, multiply, average, maximum, minimum };

// Two or more inputs of one shape (Subtract: exactly two) -> that shape. A shape mismatch
// throws ShapeError naming the layer and every input shape.
class ElementwiseMergeLayer : public Layer {
 public:
  ElementwiseMergeLayer(MergeOp op, MergeOptions options = {});
  MergeOp op() const { return op_; }
  std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training) override;
  std::vector<Shape> compute_output_shape(const std::vector<Shape>& input_shapes) const override;
  void build(const std::vector<Shape>& input_shapes) override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  void check_shapes(const std::vector<Shape>& shapes) const;
  MergeOp op_;
};
Ref<ElementwiseMergeLayer> Add(MergeOptions options = {});
Ref<ElementwiseMergeLayer> Subtract(MergeOptions options = {});
Ref<ElementwiseMergeLayer> Multiply(MergeOptions options = {});
Ref<ElementwiseMergeLayer> Average(MergeOptions options = {});
Ref<ElementwiseMergeLayer> Maximum(MergeOptions options = {});
Ref<ElementwiseMergeLayer> Minimum(MergeOptions options = {});

struct ConcatenateOptions {
  std::int64_t axis = -1;
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};
// Two or more inputs equal except along `axis` -> concatenated along it.
class ConcatenateLayer : public Layer {
 public:
  explicit ConcatenateLayer(ConcatenateOptions options = {});
  std::int64_t axis() const { return axis_; }
  std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training) override;
  std::vector<Shape> compute_output_shape(const std::vector<Shape>& input_shapes) const override;
  void build(const std::vector<Shape>& input_shapes) override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  std::int64_t axis_;
};
Ref<ConcatenateLayer> Concatenate(ConcatenateOptions options = {});

}  // namespace kiln::layers
