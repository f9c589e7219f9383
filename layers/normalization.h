// Keras' normalization layers: BatchNormalization (batch statistics while training, moving
// statistics at inference) and LayerNormalization, on kernels/normalization.h.
//   kiln::layers::BatchNormalization({.momentum = 0.9})
//   kiln::layers::LayerNormalization({.axis = {1, 2, 3}})
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layers/layer.h"

namespace kiln::layers {

// ---- BatchNormalization ----

struct BatchNormalizationOptions {
  std::int64_t axis = -1;  // the feature axis (channels); statistics over every other axis
  double momentum = 0.99;  // moving = moving * momentum + batch * (1 - momentum)
  double epsilon = 1e-3;
  bool center = true;  // beta
  bool scale = true;   // gamma
  initializers::Spec beta_initializer = "zeros";
  initializers::Spec gamma_initializer = "ones";
  initializers::Spec moving_mean_initializer = "zeros";
  initializers::Spec moving_variance_initializer = "ones";
  regularizers::Spec beta_regularizer;
  regularizers::Spec gamma_regularizer;
  constraints::Spec beta_constraint;
  constraints::Spec gamma_constraint;
  bool synchronized = false;  // cross-replica statistics: not supported (ValueError when true)
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// (..., C, ...) -> same shape. Weights, in Keras' order: gamma (C) if scale, beta (C) if
// center, moving_mean (C) and moving_variance (C) non-trainable.
// call(x, training): when training and the layer is trainable, normalizes with the batch's
// statistics and updates the moving ones in place (no autograd); otherwise (inference, or
// a frozen layer, as Keras) normalizes with the moving statistics.
class BatchNormalizationLayer : public Layer {
 public:
  explicit BatchNormalizationLayer(BatchNormalizationOptions options = {});
  const BatchNormalizationOptions& options() const { return options_; }
  const Variable& gamma() const { return gamma_; }  // undefined without scale
  const Variable& beta() const { return beta_; }    // undefined without center
  const Variable& moving_mean() const { return moving_mean_; }
  const Variable& moving_variance() const { return moving_variance_; }

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  int feature_axis(const Shape& shape) const;  // options' axis, checked against the rank
  void check_input(const Shape& shape) const;
  BatchNormalizationOptions options_;
  Variable gamma_;
  Variable beta_;
  Variable moving_mean_;
  Variable moving_variance_;
};
Ref<BatchNormalizationLayer> BatchNormalization(BatchNormalizationOptions options = {});

// ---- LayerNormalization ----

// Keras' "an int or a list of ints": .axis = -1 or .axis = {1, 2, 3}.
struct AxisList {
  std::vector<std::int64_t> axes;
  bool is_list = false;  // written back as a list (else as an int) in get_config
  AxisList(std::int64_t axis) : axes{axis} {}
  AxisList(std::initializer_list<std::int64_t> list) : axes(list), is_list(true) {}
  AxisList(std::vector<std::int64_t> list) : axes(std::move(list)), is_list(true) {}
};

struct LayerNormalizationOptions {
  AxisList axis = -1;  // the axes normalized together (each sample's features)
  double epsilon = 1e-3;
  bool center = true;
  bool scale = true;
  // Keras' rms_scaling: x * rsqrt(var(x) + epsilon) * gamma (Keras' formula: the variance,
  // not the mean square); center and scale are then ignored and only gamma is made.
  bool rms_scaling = false;
  initializers::Spec beta_initializer = "zeros";
  initializers::Spec gamma_initializer = "ones";
  regularizers::Spec beta_regularizer;
  regularizers::Spec gamma_regularizer;
  constraints::Spec beta_constraint;
  constraints::Spec gamma_constraint;
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// Normalizes each sample over `axis`: gamma and beta have the extents of those axes, in
// the order given (Keras). Weights: gamma (if scale or rms_scaling), beta (if center and
// not rms_scaling).
class LayerNormalizationLayer : public Layer {
 public:
  explicit LayerNormalizationLayer(LayerNormalizationOptions options = {});
  const LayerNormalizationOptions& options() const { return options_; }
  const Variable& gamma() const { return gamma_; }
  const Variable& beta() const { return beta_; }

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  std::vector<std::int64_t> normalized_axes(const Shape& shape) const;  // in [0, rank), checked
  LayerNormalizationOptions options_;
  Variable gamma_;
  Variable beta_;
};
Ref<LayerNormalizationLayer> LayerNormalization(LayerNormalizationOptions options = {});

}  // namespace kiln::layers
