// Keras' core layers: Input, Dense, Activation, Dropout, Embedding (see core.h).
#include "kiln/layers/core.h"

#include <nlohmann/json.hpp>

#include "kiln/kernels/dropout.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/kernels/unary.h"
#include "kiln/layers/registry.h"

namespace kiln::layers {

using nlohmann::json;

namespace {

// Validates an activation name at construction (kiln::activation lists the valid names),
// so a typo fails where the layer is made, naming the layer.
std::string checked_activation(const std::string& layer_name, const std::string& activation_name) {
  const std::string act = activation_name.empty() ? "linear" : activation_name;
  try {
    (void)kiln::activation(zeros({1}, {.dtype = DType::float32, .device = Device::cpu()}), act);
  } catch (const ValueError& e) {
    KILN_THROW(ValueError, layer_name, ": ", e.message());
  }
  return act;
}

json optional_json(const regularizers::RegularizerPtr& r) {
  return r ? regularizers::serialize(*r) : json(nullptr);
}
json optional_json(const constraints::ConstraintPtr& c) {
  return c ? constraints::serialize(*c) : json(nullptr);
}

}  // namespace

// ---- Input ----

InputLayer::InputLayer(Shape batch_shape, InputOptions options)
    : Layer("InputLayer", LayerOptions{.name = std::move(options.name)}),
      batch_shape_(batch_shape),
      input_dtype_(options.dtype.value_or(DType::float32)) {
  set_built({batch_shape_});
}

Tensor InputLayer::call(const Tensor& x, bool) {
  KILN_CHECK(shapes_compatible(batch_shape_, x.shape()), ShapeError, name(), ": expected input of shape ",
             shape_str(batch_shape_), ", got ", shape_str(x.shape()));
  return x;
}

Shape InputLayer::compute_output_shape(const Shape&) const { return batch_shape_; }

std::vector<DType> InputLayer::compute_output_dtype(const std::vector<DType>&, std::size_t num_outputs) const {
  return std::vector<DType>(num_outputs, input_dtype_);
}

json InputLayer::get_config() const {
  return {{"batch_shape", shape_to_json(batch_shape_)},
          {"dtype", dtype_to_json(input_dtype_)},
          {"sparse", false},
          {"name", name()}};
}

KerasTensor Input(std::vector<std::int64_t> shape, InputOptions options) {
  Shape batch = batch_shape(shape);
  if (options.batch_size) {
    KILN_CHECK(*options.batch_size > 0, ValueError, "Input: batch_size must be positive, got ", *options.batch_size);
    batch[0] = *options.batch_size;
  }
  return std::make_shared<InputLayer>(batch, std::move(options))->output_tensor();
}

KerasTensor InputLayer::output_tensor() { return make_node({}, {batch_shape_}, {input_dtype_})[0]; }

// ---- Dense ----

DenseLayer::DenseLayer(std::int64_t units, DenseOptions options)
    : Layer("Dense", common_options(options)), units_(units), options_(std::move(options)) {
  KILN_CHECK(units_ > 0, ValueError, name(), ": units must be positive, got ", units_);
  activation_ = checked_activation(name(), options_.activation);
  // Resolved now so unknown names fail at construction, naming the valid ones.
  options_.kernel_initializer = options_.kernel_initializer.resolve();
  options_.bias_initializer = options_.bias_initializer.resolve();
  options_.kernel_regularizer = options_.kernel_regularizer.resolve();
  options_.bias_regularizer = options_.bias_regularizer.resolve();
  options_.kernel_constraint = options_.kernel_constraint.resolve();
  options_.bias_constraint = options_.bias_constraint.resolve();
}

void DenseLayer::check_input(const Shape& s) const {
  const std::int64_t in = kernel_.defined() ? kernel_.shape()[0] : -1;
  KILN_CHECK(s.ndim() >= 2, ShapeError, name(), ": expected input of rank >= 2 (batch, ..., features), got ",
             shape_str(s));
  KILN_CHECK(in < 0 || s[s.ndim() - 1] == in, ShapeError, name(), ": expected input with last dimension ", in,
             ", got ", shape_str(s));
}

void DenseLayer::build(const Shape& input_shape) {
  KILN_CHECK(input_shape.ndim() >= 2 && input_shape[input_shape.ndim() - 1] > 0, ShapeError, name(),
             ": expected input of rank >= 2 with a known last dimension, got ", shape_str(input_shape));
  const std::int64_t in = input_shape[input_shape.ndim() - 1];
  kernel_ = add_weight("kernel", {in, units_},
                       {.initializer = options_.kernel_initializer,
                        .regularizer = options_.kernel_regularizer,
                        .constraint = options_.kernel_constraint});
  if (options_.use_bias) {
    bias_ = add_weight("bias", {units_},
                       {.initializer = options_.bias_initializer,
                        .regularizer = options_.bias_regularizer,
                        .constraint = options_.bias_constraint});
  }
}

Tensor DenseLayer::call(const Tensor& x, bool) {
  check_input(x.shape());
  // linear takes w as (out, in): the kernel (in, units) transposed, a view.
  const Tensor y = linear(x, kernel_.value().t(), bias_.defined() ? bias_.value() : Tensor());
  return activation_ == "linear" ? y : kiln::activation(y, activation_);
}

Shape DenseLayer::compute_output_shape(const Shape& input_shape) const {
  check_input(input_shape);
  Shape out = input_shape;
  out[out.ndim() - 1] = units_;
  return out;
}

json DenseLayer::get_config() const {
  json c = Layer::get_config();
  c["units"] = units_;
  c["activation"] = activation_;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = initializers::serialize(*options_.kernel_initializer.resolve());
  c["bias_initializer"] = initializers::serialize(*options_.bias_initializer.resolve());
  c["kernel_regularizer"] = optional_json(options_.kernel_regularizer.resolve());
  c["bias_regularizer"] = optional_json(options_.bias_regularizer.resolve());
  c["activity_regularizer"] = nullptr;
  c["kernel_constraint"] = optional_json(options_.kernel_constraint.resolve());
  c["bias_constraint"] = optional_json(options_.bias_constraint.resolve());
  return c;
}

Ref<DenseLayer> Dense(std::int64_t units, DenseOptions options) {
  return std::make_shared<DenseLayer>(units, std::move(options));
}

// ---- Activation ----

ActivationLayer::ActivationLayer(std::string activation, ActivationOptions options)
    : Layer("Activation", common_options(options)) {
  activation_ = checked_activation(name(), activation);
}

Tensor ActivationLayer::call(const Tensor& x, bool) { return kiln::activation(x, activation_); }

json ActivationLayer::get_config() const {
  json c = Layer::get_config();
  c["activation"] = activation_;
  return c;
}

Ref<ActivationLayer> Activation(std::string activation, ActivationOptions options) {
  return std::make_shared<ActivationLayer>(std::move(activation), std::move(options));
}

// ---- Dropout ----

DropoutLayer::DropoutLayer(double rate, DropoutOptions options)
    : Layer("Dropout", common_options(options)), rate_(rate), seed_(options.seed) {
  KILN_CHECK(rate >= 0 && rate < 1, ValueError, name(), ": rate must be in [0, 1), got ", rate);
  if (seed_) generator_ = std::make_unique<Generator>(*seed_);
}

Tensor DropoutLayer::call(const Tensor& x, bool training) {
  return dropout(x, rate_, training, generator_.get());
}

json DropoutLayer::get_config() const {
  json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = seed_ ? json(*seed_) : json(nullptr);
  c["noise_shape"] = nullptr;
  return c;
}

Ref<DropoutLayer> Dropout(double rate, DropoutOptions options) {
  return std::make_shared<DropoutLayer>(rate, std::move(options));
}

// ---- Embedding ----

EmbeddingLayer::EmbeddingLayer(std::int64_t input_dim, std::int64_t output_dim, EmbeddingOptions options)
    : Layer("Embedding", common_options(options)),
      input_dim_(input_dim),
      output_dim_(output_dim),
      options_(std::move(options)) {
  KILN_CHECK(input_dim_ > 0 && output_dim_ > 0, ValueError, name(),
             ": input_dim and output_dim must be positive, got ", input_dim_, " and ", output_dim_);
  options_.embeddings_initializer = options_.embeddings_initializer.resolve();
  options_.embeddings_regularizer = options_.embeddings_regularizer.resolve();
  options_.embeddings_constraint = options_.embeddings_constraint.resolve();
}

void EmbeddingLayer::build(const Shape&) {
  embeddings_ = add_weight("embeddings", {input_dim_, output_dim_},
                           {.initializer = options_.embeddings_initializer,
                            .regularizer = options_.embeddings_regularizer,
                            .constraint = options_.embeddings_constraint});
}

Tensor EmbeddingLayer::call(const Tensor& indices, bool) {
  KILN_CHECK(indices.dtype() != DType::bool_, TypeError, name(), ": indices must be integers, got bool");
  // Keras casts non-integer indices to int; kiln::take checks the range.
  const Tensor idx = is_integral(indices.dtype()) ? indices : cast(indices, DType::int64);
  return take(embeddings_.value(), idx, 0);
}

Shape EmbeddingLayer::compute_output_shape(const Shape& input_shape) const {
  KILN_CHECK(input_shape.ndim() < Shape::kMaxDims, ShapeError, name(), ": input of rank ", input_shape.ndim(),
             " leaves no room for the embedding axis");
  Shape out = input_shape;
  out.push_back(output_dim_);
  return out;
}

json EmbeddingLayer::get_config() const {
  json c = Layer::get_config();
  c["input_dim"] = input_dim_;
  c["output_dim"] = output_dim_;
  c["embeddings_initializer"] = initializers::serialize(*options_.embeddings_initializer.resolve());
  c["embeddings_regularizer"] = optional_json(options_.embeddings_regularizer.resolve());
  c["activity_regularizer"] = nullptr;
  c["embeddings_constraint"] = optional_json(options_.embeddings_constraint.resolve());
  c["mask_zero"] = false;
  return c;
}

Ref<EmbeddingLayer> Embedding(std::int64_t input_dim, std::int64_t output_dim, EmbeddingOptions options) {
  return std::make_shared<EmbeddingLayer>(input_dim, output_dim, std::move(options));
}

}  // namespace kiln::layers
