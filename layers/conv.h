// Keras' 2-D convolution layers, NHWC (channels_last): Conv2D, DepthwiseConv2D,
// SeparableConv2D, Conv2DTranspose, on kiln::conv2d / conv2d_transpose (kernels/conv.h).
//   auto c = kiln::layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {28, 28, 1}});
//
// Note [Kernel layout]: kiln keeps each kernel in the layout its conv op takes, not Keras':
//   Conv2D           kernel            kiln (filters, kh, kw, in / groups)   Keras (kh, kw, in / groups, filters)
//   DepthwiseConv2D  kernel            kiln (in * dm, kh, kw, 1)             Keras (kh, kw, in, dm)
//   SeparableConv2D  depthwise_kernel  as DepthwiseConv2D's kernel
//                    pointwise_kernel  kiln (filters, 1, 1, in * dm)         Keras (1, 1, in * dm, filters)
//   Conv2DTranspose  kernel            kiln (in, kh, kw, filters)            Keras (kh, kw, filters, in)
// (dm = depth_multiplier; depthwise output channel c * dm + m comes from input channel c,
// as Keras'.) Initializers are called with Keras' shape and their result is permuted into
// kiln's, so fans (glorot, he: receptive field * channels) and the values drawn equal
// Keras'; constraints are applied in Keras' layout too (MaxNorm({.axis = {0, 1, 2}}) means
// what it means in Keras). layers/conv_layout.h converts whole weights; the
// Keras weight-name mapping is the saving code's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layers/conv_layout.h"
#include "kiln/layers/image_common.h"
#include "kiln/layers/layer.h"

namespace kiln::layers {

// ---- Conv2D ----

struct Conv2DOptions {
  Int2 strides = 1;
  std::string padding = "valid";  // "valid" or "same" (Keras: extra padding at bottom/right)
  std::string data_format = "channels_last";
  Int2 dilation_rate = 1;  // strides > 1 with dilation_rate > 1 is refused, as Keras
  std::int64_t groups = 1;
  std::string activation = "linear";  // Keras' None
  bool use_bias = true;
  initializers::Spec kernel_initializer = "glorot_uniform";
  initializers::Spec bias_initializer = "zeros";
  regularizers::Spec kernel_regularizer;
  regularizers::Spec bias_regularizer;
  constraints::Spec kernel_constraint;
  constraints::Spec bias_constraint;
  // common (LayerOptions)
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// activation(conv2d(x, kernel) + bias): (N, H, W, in) -> (N, OH, OW, filters).
// kernel (filters, kh, kw, in / groups) (Note [Kernel layout]); bias (filters).
class Conv2DLayer : public Layer {
 public:
  Conv2DLayer(std::int64_t filters, Int2 kernel_size, Conv2DOptions options = {});
  std::int64_t filters() const { return filters_; }
  Int2 kernel_size() const { return kernel_size_; }
  const Conv2DOptions& options() const { return options_; }
  const Variable& kernel() const { return kernel_; }
  const Variable& bias() const { return bias_; }  // undefined without use_bias

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  void check_input(const Shape& shape) const;
  std::int64_t filters_;
  Int2 kernel_size_;
  Conv2DOptions options_;
  Variable kernel_;
  Variable bias_;
};
Ref<Conv2DLayer> Conv2D(std::int64_t filters, Int2 kernel_size, Conv2DOptions options = {});

// ---- DepthwiseConv2D ----

struct DepthwiseConv2DOptions {
  Int2 strides = 1;
  std::string padding = "valid";
  std::int64_t depth_multiplier = 1;
  std::string data_format = "channels_last";
  Int2 dilation_rate = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Spec depthwise_initializer = "glorot_uniform";
  initializers::Spec bias_initializer = "zeros";
  regularizers::Spec depthwise_regularizer;
  regularizers::Spec bias_regularizer;
  constraints::Spec depthwise_constraint;
  constraints::Spec bias_constraint;
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// Each input channel convolved with its own depth_multiplier filters (groups = in):
// (N, H, W, in) -> (N, OH, OW, in * depth_multiplier). kernel (in * dm, kh, kw, 1) (Keras
// names it "kernel"); bias (in * dm).
class DepthwiseConv2DLayer : public Layer {
 public:
  DepthwiseConv2DLayer(Int2 kernel_size, DepthwiseConv2DOptions options = {});
  Int2 kernel_size() const { return kernel_size_; }
  const DepthwiseConv2DOptions& options() const { return options_; }
  const Variable& kernel() const { return kernel_; }
  const Variable& bias() const { return bias_; }

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  void check_input(const Shape& shape) const;
  Int2 kernel_size_;
  DepthwiseConv2DOptions options_;
  Variable kernel_;
  Variable bias_;
};
Ref<DepthwiseConv2DLayer> DepthwiseConv2D(Int2 kernel_size, DepthwiseConv2DOptions options = {});

// ---- SeparableConv2D ----

struct SeparableConv2DOptions {
  Int2 strides = 1;
  std::string padding = "valid";
  std::string data_format = "channels_last";
  Int2 dilation_rate = 1;
  std::int64_t depth_multiplier = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Spec depthwise_initializer = "glorot_uniform";
  initializers::Spec pointwise_initializer = "glorot_uniform";
  initializers::Spec bias_initializer = "zeros";
  regularizers::Spec depthwise_regularizer;
  regularizers::Spec pointwise_regularizer;
  regularizers::Spec bias_regularizer;
  constraints::Spec depthwise_constraint;
  constraints::Spec pointwise_constraint;
  constraints::Spec bias_constraint;
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// A depthwise convolution (strides, padding, dilation; no bias) then a 1x1 convolution to
// `filters` with the bias: (N, H, W, in) -> (N, OH, OW, filters).
// depthwise_kernel (in * dm, kh, kw, 1), pointwise_kernel (filters, 1, 1, in * dm), bias (filters).
class SeparableConv2DLayer : public Layer {
 public:
  SeparableConv2DLayer(std::int64_t filters, Int2 kernel_size, SeparableConv2DOptions options = {});
  std::int64_t filters() const { return filters_; }
  Int2 kernel_size() const { return kernel_size_; }
  const SeparableConv2DOptions& options() const { return options_; }
  const Variable& depthwise_kernel() const { return depthwise_kernel_; }
  const Variable& pointwise_kernel() const { return pointwise_kernel_; }
  const Variable& bias() const { return bias_; }

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  void check_input(const Shape& shape) const;
  std::int64_t filters_;
  Int2 kernel_size_;
  SeparableConv2DOptions options_;
  Variable depthwise_kernel_;
  Variable pointwise_kernel_;
  Variable bias_;
};
Ref<SeparableConv2DLayer> SeparableConv2D(std::int64_t filters, Int2 kernel_size,
                                          SeparableConv2DOptions options = {});

// ---- Conv2DTranspose ----

struct Conv2DTransposeOptions {
  Int2 strides = 1;
  std::string padding = "valid";
  // Extra rows/columns on the bottom/right of the output; each must be < its stride.
  // {-1, -1}: Keras' None (the output size follows from padding alone).
  Int2 output_padding = {-1, -1};
  std::string data_format = "channels_last";
  Int2 dilation_rate = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Spec kernel_initializer = "glorot_uniform";
  initializers::Spec bias_initializer = "zeros";
  regularizers::Spec kernel_regularizer;
  regularizers::Spec bias_regularizer;
  constraints::Spec kernel_constraint;
  constraints::Spec bias_constraint;
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};

// The transpose (gradient) of a convolution: (N, H, W, in) -> (N, OH, OW, filters) with
// OH from image::conv_transpose_output_length. kernel (in, kh, kw, filters), bias (filters).
class Conv2DTransposeLayer : public Layer {
 public:
  Conv2DTransposeLayer(std::int64_t filters, Int2 kernel_size, Conv2DTransposeOptions options = {});
  std::int64_t filters() const { return filters_; }
  Int2 kernel_size() const { return kernel_size_; }
  const Conv2DTransposeOptions& options() const { return options_; }
  const Variable& kernel() const { return kernel_; }
  const Variable& bias() const { return bias_; }

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  void check_input(const Shape& shape) const;
  std::int64_t filters_;
  Int2 kernel_size_;
  Conv2DTransposeOptions options_;
  Variable kernel_;
  Variable bias_;
};
Ref<Conv2DTransposeLayer> Conv2DTranspose(std::int64_t filters, Int2 kernel_size,
                                          Conv2DTransposeOptions options = {});

}  // namespace kiln::layers
