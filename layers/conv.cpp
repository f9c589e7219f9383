// Keras' convolution layers (see conv.h): Conv2D, DepthwiseConv2D, SeparableConv2D,
// Conv2DTranspose.
#include "kiln/layers/conv.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "kiln/kernels/conv.h"
#include "kiln/kernels/unary.h"

namespace kiln::layers {

using nlohmann::json;

namespace {

// The WeightOptions of a kernel whose Keras shape is `keras_shape`.
WeightOptions kernel_weight(const initializers::Spec& init, const regularizers::Spec& reg,
                            const constraints::Spec& constraint, const Shape& keras_shape, KernelLayout layout) {
  WeightOptions w;
  w.initializer = keras_layout_initializer(init.resolve(), keras_shape, layout);
  w.regularizer = reg;  // sums of |w| or w^2: the layout does not matter
  w.constraint = keras_layout_constraint(constraint.resolve(), layout);
  return w;
}

WeightOptions bias_weight(const initializers::Spec& init, const regularizers::Spec& reg,
                          const constraints::Spec& constraint) {
  return {.initializer = init, .regularizer = reg, .constraint = constraint};
}

// The window arithmetic every conv layer shares (valid with kernel_size, strides, dilation
// and padding already standardized).
struct Window {
  Int2 kernel, strides, dilation;
  std::string padding;

  // Keras' constructor checks.
  void validate(const std::string& layer) const {
    image::check_positive(kernel, "kernel_size", layer);
    image::check_positive(strides, "strides", layer);
    image::check_positive(dilation, "dilation_rate", layer);
    KILN_CHECK(std::max(strides.h, strides.w) == 1 || std::max(dilation.h, dilation.w) == 1, ValueError, layer,
               ": strides > 1 is not supported together with dilation_rate > 1, got strides (", strides.h, ", ",
               strides.w, ") and dilation_rate (", dilation.h, ", ", dilation.w, ")");
  }
  // (N, H, W, C) -> (N, OH, OW, out_channels); ShapeError when the image is smaller than
  // the dilated kernel (a zero-sized output).
  Shape output_shape(const Shape& in, std::int64_t out_channels, const std::string& layer) const {
    const std::int64_t oh = image::conv_output_length(in[1], kernel.h, strides.h, dilation.h, padding);
    const std::int64_t ow = image::conv_output_length(in[2], kernel.w, strides.w, dilation.w, padding);
    KILN_CHECK(oh != 0 && ow != 0, ShapeError, layer, ": input ", shape_str(in), " is smaller than the kernel (",
               (kernel.h - 1) * dilation.h + 1, ", ", (kernel.w - 1) * dilation.w + 1,
               ") (dilated); the output would be empty");
    return {in[0], oh, ow, out_channels};
  }
  Conv2dOptions conv_options(std::int64_t groups) const {
    return {.strides = strides.array(), .padding = padding, .dilation = dilation.array(), .groups = groups};
  }
};

// Checks the rank and, once built, the channel count (last axis) of an input.
void check_channels(const Shape& s, std::int64_t built_channels, const std::string& layer) {
  image::check_image_shape(s, layer);
  KILN_CHECK(built_channels < 0 || s[3] == built_channels, ShapeError, layer, ": expected input with ",
             built_channels, " channels (last axis), got ", shape_str(s));
}

std::int64_t known_channels(const Shape& s, const std::string& layer) {
  image::check_image_shape(s, layer);
  KILN_CHECK(s[3] > 0, ShapeError, layer, ": the channel axis (last) of the input must be known to build, got ",
             shape_str(s));
  return s[3];
}

Tensor activate(const Tensor& y, const std::string& activation) {
  return activation == "linear" ? y : kiln::activation(y, activation);
}

// Resolves the common conv options in place so unknown names fail at construction.
template <class Options>
void standardize(Options& o, const std::string& layer) {
  o.padding = image::standardize_padding(o.padding, layer);
  image::check_data_format(o.data_format, layer);
  o.activation = image::checked_activation(layer, o.activation);
}

}  // namespace

// ---- Conv2D ----

Conv2DLayer::Conv2DLayer(std::int64_t filters, Int2 kernel_size, Conv2DOptions options)
    : Layer("Conv2D", common_options(options)), filters_(filters), kernel_size_(kernel_size),
      options_(std::move(options)) {
  KILN_CHECK(filters_ > 0, ValueError, name(), ": filters must be positive, got ", filters_);
  KILN_CHECK(options_.groups > 0 && filters_ % options_.groups == 0, ValueError, name(),
             ": groups must be positive and divide filters, got groups ", options_.groups, ", filters ", filters_);
  standardize(options_, name());
  Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.validate(name());
  options_.kernel_initializer = image::resolve(options_.kernel_initializer, "glorot_uniform");
  options_.bias_initializer = image::resolve(options_.bias_initializer, "zeros");
  options_.kernel_regularizer = options_.kernel_regularizer.resolve();
  options_.bias_regularizer = options_.bias_regularizer.resolve();
  options_.kernel_constraint = options_.kernel_constraint.resolve();
  options_.bias_constraint = options_.bias_constraint.resolve();
}

void Conv2DLayer::check_input(const Shape& s) const {
  check_channels(s, kernel_.defined() ? kernel_.shape()[3] * options_.groups : -1, name());
  KILN_CHECK(s[3] < 0 || s[3] % options_.groups == 0, ShapeError, name(), ": input channels must divide into ",
             options_.groups, " groups, got ", shape_str(s));
}

void Conv2DLayer::build(const Shape& input_shape) {
  const std::int64_t in = known_channels(input_shape, name());
  check_input(input_shape);
  (void)compute_output_shape(input_shape);
  const std::int64_t per_group = in / options_.groups;
  kernel_ = add_weight("kernel", {filters_, kernel_size_.h, kernel_size_.w, per_group},
                       kernel_weight(options_.kernel_initializer, options_.kernel_regularizer,
                                     options_.kernel_constraint, {kernel_size_.h, kernel_size_.w, per_group, filters_},
                                     {}));
  if (options_.use_bias) {
    bias_ = add_weight("bias", {filters_},
                       bias_weight(options_.bias_initializer, options_.bias_regularizer, options_.bias_constraint));
  }
}

Tensor Conv2DLayer::call(const Tensor& x, bool) {
  check_input(x.shape());
  const Window win{kernel_size_, options_.strides, options_.dilation_rate, options_.padding};
  (void)win.output_shape(x.shape(), filters_, name());
  const Tensor y = conv2d(x, kernel_.value(), bias_.defined() ? bias_.value() : Tensor(),
                          win.conv_options(options_.groups));
  return activate(y, options_.activation);
}

Shape Conv2DLayer::compute_output_shape(const Shape& input_shape) const {
  check_input(input_shape);
  return Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.output_shape(
      input_shape, filters_, name());
}

json Conv2DLayer::get_config() const {
  json c = Layer::get_config();
  c["filters"] = filters_;
  c["kernel_size"] = image::to_json(kernel_size_);
  c["strides"] = image::to_json(options_.strides);
  c["padding"] = options_.padding;
  c["data_format"] = options_.data_format;
  c["dilation_rate"] = image::to_json(options_.dilation_rate);
  c["groups"] = options_.groups;
  c["activation"] = options_.activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = image::to_json(options_.kernel_initializer.resolve());
  c["bias_initializer"] = image::to_json(options_.bias_initializer.resolve());
  c["kernel_regularizer"] = image::to_json(options_.kernel_regularizer.resolve());
  c["bias_regularizer"] = image::to_json(options_.bias_regularizer.resolve());
  c["activity_regularizer"] = nullptr;
  c["kernel_constraint"] = image::to_json(options_.kernel_constraint.resolve());
  c["bias_constraint"] = image::to_json(options_.bias_constraint.resolve());
  return c;
}

Ref<Conv2DLayer> Conv2D(std::int64_t filters, Int2 kernel_size, Conv2DOptions options) {
  return std::make_shared<Conv2DLayer>(filters, kernel_size, std::move(options));
}

// ---- DepthwiseConv2D ----

DepthwiseConv2DLayer::DepthwiseConv2DLayer(Int2 kernel_size, DepthwiseConv2DOptions options)
    : Layer("DepthwiseConv2D", common_options(options)), kernel_size_(kernel_size), options_(std::move(options)) {
  KILN_CHECK(options_.depth_multiplier > 0, ValueError, name(), ": depth_multiplier must be positive, got ",
             options_.depth_multiplier);
  standardize(options_, name());
  Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.validate(name());
  options_.depthwise_initializer = image::resolve(options_.depthwise_initializer, "glorot_uniform");
  options_.bias_initializer = image::resolve(options_.bias_initializer, "zeros");
  options_.depthwise_regularizer = options_.depthwise_regularizer.resolve();
  options_.bias_regularizer = options_.bias_regularizer.resolve();
  options_.depthwise_constraint = options_.depthwise_constraint.resolve();
  options_.bias_constraint = options_.bias_constraint.resolve();
}

void DepthwiseConv2DLayer::check_input(const Shape& s) const {
  check_channels(s, kernel_.defined() ? kernel_.shape()[0] / options_.depth_multiplier : -1, name());
}

void DepthwiseConv2DLayer::build(const Shape& input_shape) {
  const std::int64_t in = known_channels(input_shape, name());
  (void)compute_output_shape(input_shape);
  const std::int64_t dm = options_.depth_multiplier;
  kernel_ = add_weight("kernel", {in * dm, kernel_size_.h, kernel_size_.w, 1},
                       kernel_weight(options_.depthwise_initializer, options_.depthwise_regularizer,
                                     options_.depthwise_constraint, {kernel_size_.h, kernel_size_.w, in, dm},
                                     {.depthwise = true, .depth_multiplier = dm}));
  if (options_.use_bias) {
    bias_ = add_weight("bias", {in * dm},
                       bias_weight(options_.bias_initializer, options_.bias_regularizer, options_.bias_constraint));
  }
}

Tensor DepthwiseConv2DLayer::call(const Tensor& x, bool) {
  check_input(x.shape());
  const Window win{kernel_size_, options_.strides, options_.dilation_rate, options_.padding};
  (void)win.output_shape(x.shape(), kernel_.shape()[0], name());
  const Tensor y = conv2d(x, kernel_.value(), bias_.defined() ? bias_.value() : Tensor(), win.conv_options(x.size(3)));
  return activate(y, options_.activation);
}

Shape DepthwiseConv2DLayer::compute_output_shape(const Shape& input_shape) const {
  check_input(input_shape);
  const std::int64_t out = input_shape[3] < 0 ? -1 : input_shape[3] * options_.depth_multiplier;
  return Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.output_shape(input_shape,
                                                                                                        out, name());
}

json DepthwiseConv2DLayer::get_config() const {
  json c = Layer::get_config();
  c["kernel_size"] = image::to_json(kernel_size_);
  c["strides"] = image::to_json(options_.strides);
  c["padding"] = options_.padding;
  c["depth_multiplier"] = options_.depth_multiplier;
  c["data_format"] = options_.data_format;
  c["dilation_rate"] = image::to_json(options_.dilation_rate);
  c["activation"] = options_.activation;
  c["use_bias"] = options_.use_bias;
  c["depthwise_initializer"] = image::to_json(options_.depthwise_initializer.resolve());
  c["bias_initializer"] = image::to_json(options_.bias_initializer.resolve());
  c["depthwise_regularizer"] = image::to_json(options_.depthwise_regularizer.resolve());
  c["bias_regularizer"] = image::to_json(options_.bias_regularizer.resolve());
  c["activity_regularizer"] = nullptr;
  c["depthwise_constraint"] = image::to_json(options_.depthwise_constraint.resolve());
  c["bias_constraint"] = image::to_json(options_.bias_constraint.resolve());
  return c;
}

Ref<DepthwiseConv2DLayer> DepthwiseConv2D(Int2 kernel_size, DepthwiseConv2DOptions options) {
  return std::make_shared<DepthwiseConv2DLayer>(kernel_size, std::move(options));
}

// ---- SeparableConv2D ----

SeparableConv2DLayer::SeparableConv2DLayer(std::int64_t filters, Int2 kernel_size, SeparableConv2DOptions options)
    : Layer("SeparableConv2D", common_options(options)), filters_(filters), kernel_size_(kernel_size),
      options_(std::move(options)) {
  KILN_CHECK(filters_ > 0, ValueError, name(), ": filters must be positive, got ", filters_);
  KILN_CHECK(options_.depth_multiplier > 0, ValueError, name(), ": depth_multiplier must be positive, got ",
             options_.depth_multiplier);
  standardize(options_, name());
  Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.validate(name());
  options_.depthwise_initializer = image::resolve(options_.depthwise_initializer, "glorot_uniform");
  options_.pointwise_initializer = image::resolve(options_.pointwise_initializer, "glorot_uniform");
  options_.bias_initializer = image::resolve(options_.bias_initializer, "zeros");
  options_.depthwise_regularizer = options_.depthwise_regularizer.resolve();
  options_.pointwise_regularizer = options_.pointwise_regularizer.resolve();
  options_.bias_regularizer = options_.bias_regularizer.resolve();
  options_.depthwise_constraint = options_.depthwise_constraint.resolve();
  options_.pointwise_constraint = options_.pointwise_constraint.resolve();
  options_.bias_constraint = options_.bias_constraint.resolve();
}

void SeparableConv2DLayer::check_input(const Shape& s) const {
  check_channels(s, depthwise_kernel_.defined() ? depthwise_kernel_.shape()[0] / options_.depth_multiplier : -1,
                 name());
}

void SeparableConv2DLayer::build(const Shape& input_shape) {
  const std::int64_t in = known_channels(input_shape, name());
  (void)compute_output_shape(input_shape);
  const std::int64_t dm = options_.depth_multiplier;
  depthwise_kernel_ = add_weight(
      "depthwise_kernel", {in * dm, kernel_size_.h, kernel_size_.w, 1},
      kernel_weight(options_.depthwise_initializer, options_.depthwise_regularizer, options_.depthwise_constraint,
                    {kernel_size_.h, kernel_size_.w, in, dm}, {.depthwise = true, .depth_multiplier = dm}));
  pointwise_kernel_ = add_weight("pointwise_kernel", {filters_, 1, 1, in * dm},
                                 kernel_weight(options_.pointwise_initializer, options_.pointwise_regularizer,
                                               options_.pointwise_constraint, {1, 1, in * dm, filters_}, {}));
  if (options_.use_bias) {
    bias_ = add_weight("bias", {filters_},
                       bias_weight(options_.bias_initializer, options_.bias_regularizer, options_.bias_constraint));
  }
}

Tensor SeparableConv2DLayer::call(const Tensor& x, bool) {
  check_input(x.shape());
  const Window win{kernel_size_, options_.strides, options_.dilation_rate, options_.padding};
  (void)win.output_shape(x.shape(), filters_, name());
  const Tensor depthwise = conv2d(x, depthwise_kernel_.value(), Tensor(), win.conv_options(x.size(3)));
  const Tensor y = conv2d(depthwise, pointwise_kernel_.value(), bias_.defined() ? bias_.value() : Tensor());
  return activate(y, options_.activation);
}

Shape SeparableConv2DLayer::compute_output_shape(const Shape& input_shape) const {
  check_input(input_shape);
  return Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.output_shape(
      input_shape, filters_, name());
}

json SeparableConv2DLayer::get_config() const {
  json c = Layer::get_config();
  c["filters"] = filters_;
  c["kernel_size"] = image::to_json(kernel_size_);
  c["strides"] = image::to_json(options_.strides);
  c["padding"] = options_.padding;
  c["data_format"] = options_.data_format;
  c["depth_multiplier"] = options_.depth_multiplier;
  c["dilation_rate"] = image::to_json(options_.dilation_rate);
  c["activation"] = options_.activation;
  c["use_bias"] = options_.use_bias;
  c["depthwise_initializer"] = image::to_json(options_.depthwise_initializer.resolve());
  c["pointwise_initializer"] = image::to_json(options_.pointwise_initializer.resolve());
  c["bias_initializer"] = image::to_json(options_.bias_initializer.resolve());
  c["depthwise_regularizer"] = image::to_json(options_.depthwise_regularizer.resolve());
  c["pointwise_regularizer"] = image::to_json(options_.pointwise_regularizer.resolve());
  c["bias_regularizer"] = image::to_json(options_.bias_regularizer.resolve());
  c["activity_regularizer"] = nullptr;
  c["depthwise_constraint"] = image::to_json(options_.depthwise_constraint.resolve());
  c["pointwise_constraint"] = image::to_json(options_.pointwise_constraint.resolve());
  c["bias_constraint"] = image::to_json(options_.bias_constraint.resolve());
  return c;
}

Ref<SeparableConv2DLayer> SeparableConv2D(std::int64_t filters, Int2 kernel_size, SeparableConv2DOptions options) {
  return std::make_shared<SeparableConv2DLayer>(filters, kernel_size, std::move(options));
}

// ---- Conv2DTranspose ----

Conv2DTransposeLayer::Conv2DTransposeLayer(std::int64_t filters, Int2 kernel_size, Conv2DTransposeOptions options)
    : Layer("Conv2DTranspose", common_options(options)), filters_(filters), kernel_size_(kernel_size),
      options_(std::move(options)) {
  KILN_CHECK(filters_ > 0, ValueError, name(), ": filters must be positive, got ", filters_);
  standardize(options_, name());
  Window{kernel_size_, options_.strides, options_.dilation_rate, options_.padding}.validate(name());
  const Int2 op = options_.output_padding;
  const bool none = op.h < 0 && op.w < 0;
  KILN_CHECK(none || (op.h >= 0 && op.w >= 0 && op.h < options_.strides.h && op.w < options_.strides.w), ValueError,
             name(), ": output_padding must be >= 0 and < strides (or {-1, -1} for none), got (", op.h, ", ", op.w,
             ") with strides (", options_.strides.h, ", ", options_.strides.w, ")");
  if (none) options_.output_padding = {-1, -1};
  options_.kernel_initializer = image::resolve(options_.kernel_initializer, "glorot_uniform");
  options_.bias_initializer = image::resolve(options_.bias_initializer, "zeros");
  options_.kernel_regularizer = options_.kernel_regularizer.resolve();
  options_.bias_regularizer = options_.bias_regularizer.resolve();
  options_.kernel_constraint = options_.kernel_constraint.resolve();
  options_.bias_constraint = options_.bias_constraint.resolve();
}

void Conv2DTransposeLayer::check_input(const Shape& s) const {
  check_channels(s, kernel_.defined() ? kernel_.shape()[0] : -1, name());
}

void Conv2DTransposeLayer::build(const Shape& input_shape) {
  const std::int64_t in = known_channels(input_shape, name());
  (void)compute_output_shape(input_shape);
  kernel_ = add_weight("kernel", {in, kernel_size_.h, kernel_size_.w, filters_},
                       kernel_weight(options_.kernel_initializer, options_.kernel_regularizer,
                                     options_.kernel_constraint, {kernel_size_.h, kernel_size_.w, filters_, in}, {}));
  if (options_.use_bias) {
    bias_ = add_weight("bias", {filters_},
                       bias_weight(options_.bias_initializer, options_.bias_regularizer, options_.bias_constraint));
  }
}

Tensor Conv2DTransposeLayer::call(const Tensor& x, bool) {
  check_input(x.shape());
  const Conv2dTransposeOptions o{.strides = options_.strides.array(),
                                 .padding = options_.padding,
                                 .dilation = options_.dilation_rate.array(),
                                 .output_padding = options_.output_padding.array()};
  const Tensor y = conv2d_transpose(x, kernel_.value(), bias_.defined() ? bias_.value() : Tensor(), o);
  return activate(y, options_.activation);
}

Shape Conv2DTransposeLayer::compute_output_shape(const Shape& s) const {
  check_input(s);
  const auto& o = options_;
  return {s[0],
          image::conv_transpose_output_length(s[1], kernel_size_.h, o.strides.h, o.dilation_rate.h, o.padding,
                                              o.output_padding.h),
          image::conv_transpose_output_length(s[2], kernel_size_.w, o.strides.w, o.dilation_rate.w, o.padding,
                                              o.output_padding.w),
          filters_};
}

json Conv2DTransposeLayer::get_config() const {
  json c = Layer::get_config();
  c["filters"] = filters_;
  c["kernel_size"] = image::to_json(kernel_size_);
  c["strides"] = image::to_json(options_.strides);
  c["padding"] = options_.padding;
  // Keras 3 drops output_padding from its config (it is a constructor argument, and
  // Keras 2 wrote it); kiln writes it so a config rebuilds the same layer.
  c["output_padding"] = options_.output_padding.h < 0 ? json(nullptr) : image::to_json(options_.output_padding);
  c["data_format"] = options_.data_format;
  c["dilation_rate"] = image::to_json(options_.dilation_rate);
  c["activation"] = options_.activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = image::to_json(options_.kernel_initializer.resolve());
  c["bias_initializer"] = image::to_json(options_.bias_initializer.resolve());
  c["kernel_regularizer"] = image::to_json(options_.kernel_regularizer.resolve());
  c["bias_regularizer"] = image::to_json(options_.bias_regularizer.resolve());
  c["activity_regularizer"] = nullptr;
  c["kernel_constraint"] = image::to_json(options_.kernel_constraint.resolve());
  c["bias_constraint"] = image::to_json(options_.bias_constraint.resolve());
  return c;
}

Ref<Conv2DTransposeLayer> Conv2DTranspose(std::int64_t filters, Int2 kernel_size, Conv2DTransposeOptions options) {
  return std::make_shared<Conv2DTransposeLayer>(filters, kernel_size, std::move(options));
}

}  // namespace kiln::layers
