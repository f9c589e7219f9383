// Keras' core layers: Input / InputLayer, Dense, Activation, Dropout, Embedding.
// Each has a Keras-named factory taking Keras' positional arguments and an options struct
// (C++20 designated initializers for Keras' keyword arguments), returning a callable handle:
//   auto d = kiln::layers::Dense(64, {.activation = "relu", .input_shape = {32}});
// The layer classes carry a "Layer" suffix (DenseLayer) so the factories keep Keras' names.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/random.h"
#include "kiln/layers/layer.h"

namespace kiln::layers {

// ---- Input ----

// In keras.Input's argument order: Input({28, 28, 1}, {.batch_size = 32, .dtype = ..., .name = "img"}).
struct InputOptions {
  std::optional<std::int64_t> batch_size;  // fixed batch size; unknown (-1) when unset
  std::optional<DType> dtype;              // float32 when unset (int32/int64 for Embedding indices)
  std::string name;                        // automatic "input_layer", "input_layer_1", ...
};

// The layer behind a model input: holds the batch shape; calling it eagerly is the identity.
class InputLayer : public Layer {
 public:
  InputLayer(Shape batch_shape, InputOptions options = {});
  const Shape& batch_shape() const { return batch_shape_; }
  // A new symbolic output of this layer (a node without inputs): what Input() returns;
  // rebuilding a model from its config calls it once per InputLayer.
  KerasTensor output_tensor();
  // The input's dtype (any dtype: int32/int64 for indices), which its output carries.
  DType input_dtype() const { return input_dtype_; }
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  std::vector<DType> compute_output_dtype(const std::vector<DType>& input_dtypes,
                                          std::size_t num_outputs) const override;
  nlohmann::json get_config() const override;  // {"batch_shape", "dtype", "sparse": false, "name"}
  using Layer::call;
  using Layer::compute_output_shape;

 protected:
  bool autocast_inputs() const override { return false; }

 private:
  Shape batch_shape_;
  DType input_dtype_;
  // (No stored output KerasTensor: it would point back to this layer through its node.)
};
// keras.Input: a symbolic tensor of shape (batch, shape...). shape excludes the batch.
KerasTensor Input(std::vector<std::int64_t> shape, InputOptions options = {});

// ---- Dense ----

struct DenseOptions {
  std::string activation = "linear";  // Keras' None; any name kiln::activation accepts
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

// activation(x · kernel + bias) on the last axis: (..., in) -> (..., units).
// kernel (in, units) as Keras stores it; bias (units).
class DenseLayer : public Layer {
 public:
  DenseLayer(std::int64_t units, DenseOptions options = {});
  std::int64_t units() const { return units_; }
  const std::string& activation() const { return activation_; }
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
  std::int64_t units_;
  DenseOptions options_;
  std::string activation_;
  Variable kernel_;
  Variable bias_;
};
Ref<DenseLayer> Dense(std::int64_t units, DenseOptions options = {});

// ---- Activation ----

struct ActivationOptions {
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};
class ActivationLayer : public Layer {
 public:
  ActivationLayer(std::string activation, ActivationOptions options = {});
  const std::string& activation() const { return activation_; }
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  std::string activation_;
};
// Unknown names throw ValueError listing the valid ones.
Ref<ActivationLayer> Activation(std::string activation, ActivationOptions options = {});

// ---- Dropout ----

struct DropoutOptions {
  std::optional<std::uint64_t> seed;  // its own Philox generator; the global one when unset
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};
// Inverted dropout (kernels/dropout.h) when training, the identity otherwise.
class DropoutLayer : public Layer {
 public:
  DropoutLayer(double rate, DropoutOptions options = {});
  double rate() const { return rate_; }
  Tensor call(const Tensor& x, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;
  Generator* generator() override { return generator_.get(); }
  using Layer::call;
  using Layer::compute_output_shape;

 private:
  double rate_;
  std::optional<std::uint64_t> seed_;
  std::unique_ptr<Generator> generator_;  // set when seeded
};
// rate in [0, 1) (ValueError otherwise).
Ref<DropoutLayer> Dropout(double rate, DropoutOptions options = {});

// ---- Embedding ----

struct EmbeddingOptions {
  initializers::Spec embeddings_initializer = "uniform";  // Keras: RandomUniform(-0.05, 0.05)
  regularizers::Spec embeddings_regularizer;
  constraints::Spec embeddings_constraint;
  std::string name;
  bool trainable = true;
  std::vector<std::int64_t> input_shape;
  std::optional<DType> dtype;
};
// Integer indices (any shape, int32/int64; floating inputs holding integers are accepted,
// as Keras) -> rows of embeddings (input_dim, output_dim): (...) -> (..., output_dim).
// Indices outside [-input_dim, input_dim) throw IndexError; negative ones count from the
// end, as kiln::take (numpy.take) does.
class EmbeddingLayer : public Layer {
 public:
  EmbeddingLayer(std::int64_t input_dim, std::int64_t output_dim, EmbeddingOptions options = {});
  std::int64_t input_dim() const { return input_dim_; }
  std::int64_t output_dim() const { return output_dim_; }
  const Variable& embeddings() const { return embeddings_; }

  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& indices, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  using Layer::build;
  using Layer::call;
  using Layer::compute_output_shape;

 protected:
  bool autocast_inputs() const override { return false; }  // inputs are indices

 private:
  std::int64_t input_dim_;
  std::int64_t output_dim_;
  EmbeddingOptions options_;
  Variable embeddings_;
};
Ref<EmbeddingLayer> Embedding(std::int64_t input_dim, std::int64_t output_dim, EmbeddingOptions options = {});

}  // namespace kiln::layers
