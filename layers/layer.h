// The Keras layer: kiln::layers::Layer (the abstract base every layer and model derives
// from), its handle Ref<L> / LayerRef, symbolic tensors (KerasTensor) for the functional
// API, and automatic layer names.
//
//   auto in = kiln::layers::Input({32});                                   // (None, 32)
//   auto h = kiln::layers::Dense(64, {.activation = "relu"})(in);          // symbolic call
//   kiln::Tensor y = dense(x_tensor);                                      // eager call
//
// A custom layer subclasses Layer and overrides (see Note [Writing a layer] below):
//   build(input_shape)                 create weights with add_weight (shapes have -1 batch)
//   call(x, training)                  the forward computation on Tensors (records autograd)
//   compute_output_shape(input_shape)  shape inference for symbolic calls (-1 = unknown batch)
//   get_config()                       the constructor arguments, Keras-style JSON
// and is held by a shared_ptr: kiln::layers::make_layer<MyLayer>(args...).
//
// Note [Layer names]: a layer without an explicit name gets Keras' automatic unique name
// from its class name in snake case plus a per-process counter per base name: the first
// Dense is "dense", then "dense_1", "dense_2", ...; Conv2D gives "conv2d", BatchNormalization
// "batch_normalization". The counters are global to the process and thread-safe, as
// Keras' per-session counters; clear_session() resets them (keras.backend.clear_session).
//
// Note [Batch axis]: shapes given to build and compute_output_shape, and KerasTensor
// shapes, hold -1 for the batch axis (Keras' None). Options' input_shape excludes the batch.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/core/tensor.h"
#include "kiln/layers/initializers.h"
#include "kiln/layers/regularizers.h"
#include "kiln/layers/variable.h"

namespace kiln {
class Generator;  // core/random.h
}  // namespace kiln

namespace kiln::layers {

class Layer;
struct KerasNode;

// ---- names and shapes ----

// Keras' to_snake_case: "Conv2DTranspose" -> "conv2d_transpose", "Dense" -> "dense".
std::string to_snake_case(std::string_view class_name);
// The next automatic name for `base` (see Note [Layer names]): "dense", "dense_1", ...
std::string unique_name(std::string_view base);
// Resets the automatic-name counters (keras.backend.clear_session()).
void clear_session();
// Keras' shape text: -1 prints as None. "(None, 28, 28, 1)", "(None, 10)", "(5,)".
std::string shape_str(const Shape& shape);
// Shape with the batch axis (axis 0) replaced by -1; a scalar shape stays as it is.
Shape with_unknown_batch(const Shape& shape);
// (None, input_shape...) from an options' input_shape (which excludes the batch).
Shape batch_shape(const std::vector<std::int64_t>& input_shape);
// Whether `actual` fits `expected` where -1 in either matches any extent (same rank required).
bool shapes_compatible(const Shape& expected, const Shape& actual);

// The options every layer accepts (Keras' base-layer keyword arguments). Each layer's
// options struct repeats these four fields, LAST, with these names and defaults, so
// designated initializers read as Keras: Dense(64, {.activation = "relu", .input_shape = {32}}).
// common_options(opts) extracts them.
struct LayerOptions {
  std::string name;                       // empty: automatic (Note [Layer names])
  bool trainable = true;
  std::vector<std::int64_t> input_shape;  // without the batch axis; for a model's first layer
  std::optional<DType> dtype;             // weights and computation; float32 when unset
};
template <class Options>
LayerOptions common_options(const Options& o) {
  return LayerOptions{o.name, o.trainable, o.input_shape, o.dtype};
}

// ---- symbolic tensors (the functional API) ----

// A symbolic tensor (Keras' KerasTensor): shape with -1 batch, dtype, and where it came
// from: output `index` of `node`, one call of a layer on symbolic inputs. Cheap to copy.
class KerasTensor {
 public:
  KerasTensor() = default;
  KerasTensor(std::shared_ptr<const KerasNode> node, int index);

  bool defined() const { return node_ != nullptr; }
  const Shape& shape() const;
  int ndim() const { return shape().ndim(); }
  DType dtype() const;
  const std::shared_ptr<const KerasNode>& node() const { return node_; }
  int index() const { return index_; }  // which output of the node
  // The layer that produced it (an InputLayer for a model input).
  const std::shared_ptr<Layer>& layer() const;
  // "<KerasTensor shape=(None, 64), dtype=float32, source=dense[0][0]>"
  std::string str() const;

  friend bool operator==(const KerasTensor& a, const KerasTensor& b) {
    return a.node_ == b.node_ && a.index_ == b.index_;
  }

 private:
  std::shared_ptr<const KerasNode> node_;
  int index_ = 0;
};

// One call of a layer on symbolic inputs (Keras' Node). Immutable once made. Nodes point
// to their layer and inputs only (never to their outputs), so graphs hold no cycles.
struct KerasNode {
  std::shared_ptr<Layer> layer;
  int node_index = 0;      // which symbolic call of `layer` this is: Keras' node index
  std::uint64_t id = 0;    // process-wide creation order; a topological order of any graph
  std::vector<KerasTensor> inputs;  // empty for an InputLayer's node
  std::vector<Shape> output_shapes;
  std::vector<DType> output_dtypes;
};

// What a call on a list returns: the outputs as a vector, which also converts to the one
// output of a single-output layer (Keras returns a tensor, not a list, then):
//   KerasTensor s = kiln::layers::Add()({a, b});   Tensor y = concat_layer({x1, x2}, false);
template <class T>
class Outputs : public std::vector<T> {
 public:
  Outputs() = default;
  Outputs(std::vector<T> outputs) : std::vector<T>(std::move(outputs)) {}
  operator T() const {
    KILN_CHECK(this->size() == 1, ValueError, "a call with ", this->size(),
               " outputs used as one tensor; index the outputs instead");
    return this->front();
  }
};

// ---- the layer handle ----

// A shared handle to a layer that is also callable, as Keras layers are:
//   Ref<DenseLayer> d = Dense(64);  d->units();  d(keras_tensor);  d(tensor, /*training=*/true);
// Converts implicitly to Ref<Base> (LayerRef) and to std::shared_ptr<L>.
template <class L>
class Ref {
 public:
  Ref() = default;
  Ref(std::shared_ptr<L> layer) : ptr_(std::move(layer)) {}
  template <class U>
    requires std::derived_from<U, L>
  Ref(std::shared_ptr<U> layer) : ptr_(std::move(layer)) {}
  template <class U>
    requires std::derived_from<U, L>
  Ref(const Ref<U>& other) : ptr_(other.ptr()) {}

  L* operator->() const { return checked(); }
  L& operator*() const { return *checked(); }
  L* get() const { return ptr_.get(); }
  explicit operator bool() const { return ptr_ != nullptr; }
  const std::shared_ptr<L>& ptr() const { return ptr_; }
  operator std::shared_ptr<L>() const { return ptr_; }
  template <class U>
    requires std::derived_from<L, U>
  operator std::shared_ptr<U>() const { return ptr_; }

  // Symbolic calls (functional API) and eager calls; see Layer's operator().
  KerasTensor operator()(const KerasTensor& x) const { return (*checked())(x); }
  Outputs<KerasTensor> operator()(const std::vector<KerasTensor>& xs) const { return (*checked())(xs); }
  Tensor operator()(const Tensor& x, bool training = false) const { return (*checked())(x, training); }
  Outputs<Tensor> operator()(const std::vector<Tensor>& xs, bool training = false) const {
    return (*checked())(xs, training);
  }

  friend bool operator==(const Ref& a, const Ref& b) { return a.ptr_ == b.ptr_; }

 private:
  L* checked() const {
    KILN_CHECK(ptr_ != nullptr, ValueError, "layer handle is empty (default-constructed Ref)");
    return ptr_.get();
  }
  std::shared_ptr<L> ptr_;
};
using LayerRef = Ref<Layer>;

// Makes a layer of a user subclass, held by a shared_ptr as every layer must be.
template <class L, class... Args>
Ref<L> make_layer(Args&&... args) {
  return Ref<L>(std::make_shared<L>(std::forward<Args>(args)...));
}

// What add_weight accepts besides the name and shape.
struct WeightOptions {
  initializers::Spec initializer = "glorot_uniform";
  regularizers::Spec regularizer;
  constraints::Spec constraint;
  bool trainable = true;       // false: a statistic (BatchNormalization's moving mean)
  std::optional<DType> dtype;  // the layer's dtype when unset
};

// ---- the layer ----

// Note [Writing a layer]
// A single-input, single-output layer overrides the Shape / Tensor forms:
//   void build(const Shape& input_shape) override;                 // (-1, ..., in)
//   Tensor call(const Tensor& x, bool training) override;
//   Shape compute_output_shape(const Shape& input_shape) const override;
// A layer with several inputs or outputs (Add, Concatenate, a model) overrides the
// vector forms instead; the default vector forms forward to the single forms and check
// that there is exactly one input. Add `using Layer::call;` (and build,
// compute_output_shape) in a subclass that overrides only one form, to keep the other
// visible. Errors name the layer and the shapes:
//   KILN_CHECK(ok, ShapeError, name(), ": expected input with last dimension ", n,
//              ", got ", shape_str(s));
class Layer : public std::enable_shared_from_this<Layer> {
 public:
  // `class_name` is Keras' class name ("Dense"); it names the layer's type in summaries,
  // configs and the registry, and gives the automatic name.
  explicit Layer(std::string class_name, LayerOptions options = {});
  virtual ~Layer();
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const std::string& name() const { return name_; }
  const std::string& class_name() const { return class_name_; }
  DType dtype() const { return dtype_; }

  // ---- calling ----

  // Symbolic: builds from the input shapes if needed, checks them, and returns the
  // output KerasTensors of a new KerasNode. The layer must be held by a shared_ptr.
  KerasTensor operator()(const KerasTensor& x);
  Outputs<KerasTensor> operator()(const std::vector<KerasTensor>& xs);
  // Eager: builds from the input shapes (batch axis as -1) if needed, checks that the
  // inputs are on the device of the layer's own weights (a layer without weights runs on
  // any device), casts floating inputs to dtype() (as Keras' autocast), and runs call
  // (which records autograd).
  Tensor operator()(const Tensor& x, bool training = false);
  Outputs<Tensor> operator()(const std::vector<Tensor>& xs, bool training = false);

  // ---- what subclasses override (Note [Writing a layer]) ----

  virtual void build(const std::vector<Shape>& input_shapes);
  virtual void build(const Shape& input_shape);  // default: no weights
  virtual std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training);
  virtual Tensor call(const Tensor& input, bool training);  // default: ValueError (not overridden)
  virtual std::vector<Shape> compute_output_shape(const std::vector<Shape>& input_shapes) const;
  virtual Shape compute_output_shape(const Shape& input_shape) const;  // default: identity
  // Output dtypes of a symbolic call; default: dtype() for every output.
  virtual std::vector<DType> compute_output_dtype(const std::vector<DType>& input_dtypes,
                                                  std::size_t num_outputs) const;
  // The layer's arguments as Keras writes them: {"name", "trainable", "dtype", ...}.
  // Subclasses call Layer::get_config() and add theirs.
  virtual nlohmann::json get_config() const;

  // ---- build state ----

  bool built() const { return built_; }
  // Builds once from `input_shapes` (batch axis -1); later calls do nothing.
  void maybe_build(const std::vector<Shape>& input_shapes);
  // The shapes the layer was built from (Keras' build_config), empty before.
  const std::vector<Shape>& built_input_shapes() const { return built_input_shapes_; }
  // The options' input_shape (without batch), empty when not given.
  const std::vector<std::int64_t>& declared_input_shape() const { return declared_input_shape_; }
  // How many symbolic calls the layer has had (its next node index).
  int num_nodes() const { return num_nodes_; }

  // ---- weights ----

  // Own variables, then those of tracked sublayers; deduplicated, in creation order.
  std::vector<Variable> weights() const;
  // Keras: the trainable variables if the layer is trainable, else none.
  std::vector<Variable> trainable_weights() const;
  std::vector<Variable> non_trainable_weights() const;
  // Tensors of trainable_weights(), as an optimizer takes them.
  std::vector<Tensor> trainable_parameters() const;
  std::int64_t count_params() const;  // elements of weights(); ValueError if not built
  bool trainable() const { return trainable_; }
  // Sets the flag on this layer and its sublayers and (un)freezes their variables.
  virtual void set_trainable(bool trainable);
  // Sum of the weights' regularizer penalties as a float32 scalar on device() (0 when
  // there are none); part of the autograd graph.
  Tensor regularization_loss() const;
  // Applies each weight's constraint in place (after an optimizer step).
  void apply_constraints();
  // Sets the values from `values` (same order and shapes as weights()).
  void set_weights(const std::vector<Tensor>& values);
  std::vector<Tensor> get_weights() const;  // copies on the host

  // Layers whose weights this layer includes (a model's layers, a custom block's parts).
  const std::vector<LayerRef>& sublayers() const { return sublayers_; }
  // The layer's own random generator (a seeded Dropout's); null when it draws from the
  // default generator or not at all. BackupAndRestore saves its state to resume bitwise.
  virtual Generator* generator() { return nullptr; }

  // ---- device and dtype ----

  // Where weights live and are created: the device given to to(), else default_device().
  Device device() const;
  // Moves the weights (and those of sublayers) to `device`; layers built later create
  // theirs there.
  virtual Layer& to(Device device);
  // Converts floating weights to `dtype` and makes it the layer's compute dtype
  // (float64 for gradient checks).
  virtual Layer& to(DType dtype);

 protected:
  // Creates a variable named "<layer name>/<name>" on device() with the initializer's
  // values and registers it as a weight of this layer.
  Variable add_weight(const std::string& name, const Shape& shape, WeightOptions options = {});
  // Includes `layer`'s weights in this layer's (Keras' automatic tracking).
  void track_layer(const LayerRef& layer);
  void untrack_layers();
  // Throws ShapeError "<name>: expected <n> input(s), got <m>".
  void check_input_count(std::size_t got, std::size_t expected) const;
  // Records a symbolic call of this layer: a new KerasNode with the next node index and
  // the given outputs (what operator() does after building; InputLayer uses it directly).
  std::vector<KerasTensor> make_node(std::vector<KerasTensor> inputs, std::vector<Shape> output_shapes,
                                     std::vector<DType> output_dtypes);
  // Whether eager calls cast floating inputs to dtype() (Keras' autocast); false for
  // layers whose inputs are not activations (Embedding's indices).
  virtual bool autocast_inputs() const { return true; }
  // For rebuilding from a config: the saved name, and the class a Network turns out to be.
  void set_name(std::string name) { name_ = std::move(name); }
  void set_class_name(std::string class_name) { class_name_ = std::move(class_name); }
  // Marks the layer built without running build (a model built by its graph).
  void set_built(const std::vector<Shape>& input_shapes);
  const std::vector<Variable>& own_variables() const { return variables_; }

 private:
  std::string class_name_;
  std::string name_;
  DType dtype_ = DType::float32;
  bool trainable_ = true;
  bool built_ = false;
  int num_nodes_ = 0;
  std::optional<Device> device_;
  std::vector<std::int64_t> declared_input_shape_;
  std::vector<Shape> built_input_shapes_;
  std::vector<Variable> variables_;
  std::vector<LayerRef> sublayers_;
};

}  // namespace kiln::layers
