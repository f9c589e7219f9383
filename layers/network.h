// Network: a graph of layers, itself a Layer (so a model can be a layer of another).
// Two modes, as Keras' Sequential and Functional models:
//   sequential: an ordered list of single-input, single-output layers; add() / pop().
//     Built as soon as the input shape is known (the first layer's input_shape option, an
//     Input added first, or the first call), by calling the layers symbolically on an Input.
//   functional: inputs and outputs KerasTensors; the graph between them (branches,
//     merges, shared layers, several inputs and outputs) is found from the outputs.
// kiln::Model (training/model.h) derives from Network and adds compile/fit.
//
//   auto in = kiln::layers::Input({32});
//   auto a = kiln::layers::Dense(16, {.activation = "relu"})(in);
//   auto b = kiln::layers::Dense(16)(in);
//   auto out = kiln::layers::Add()({a, b});
//   kiln::layers::Network net({in}, {out});
//   std::vector<kiln::Tensor> y = net.call({x}, /*training=*/false);
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/layers/layer.h"

namespace kiln::layers {

struct NetworkOptions {
  std::string name;  // empty: automatic ("sequential", "functional", ...)
  bool trainable = true;
};

struct SummaryOptions {
  int line_length = 0;          // total table width; 0: Keras' default for the mode
  bool show_trainable = false;  // adds Keras' "Trainable" column (Y / N)
};

class Network : public Layer {
 public:
  // Sequential mode (class_name "Sequential"). Layers given here are added in order.
  explicit Network(std::vector<LayerRef> layers = {}, NetworkOptions options = {});
  // Functional mode (class_name "Functional"). Every output must depend only on `inputs`,
  // which must be Input tensors; layer names must be unique within the graph.
  Network(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs, NetworkOptions options = {});
  Network(const KerasTensor& input, const KerasTensor& output, NetworkOptions options = {});
  ~Network() override;

  bool is_sequential() const { return sequential_; }

  // ---- sequential mode ----

  // Appends a layer (sequential mode only). If the network is built, the layer is called
  // on the current output at once (and must accept its shape).
  void add(const LayerRef& layer);
  // Sets the input of an empty sequential network: add(kiln::layers::Input({28, 28, 1})).
  void add(const KerasTensor& input);
  // Removes the last layer (ValueError when empty); the graph is rebuilt.
  void pop();

  // ---- running ----

  // Eager forward pass: runs the layers in topological order, frees each intermediate as
  // soon as no later layer needs it, records autograd. Inputs must match the Input shapes
  // (batch free); a mismatch throws ShapeError naming the input layer and both shapes.
  // A sequential network not built yet builds from the first call's shapes.
  std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training) override;
  Tensor call(const Tensor& input, bool training) override;  // one input, one output
  // Builds a sequential network from input shapes (batch -1); functional: no-op.
  void build(const std::vector<Shape>& input_shapes) override;
  void build(const Shape& input_shape) override;
  std::vector<Shape> compute_output_shape(const std::vector<Shape>& input_shapes) const override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  std::vector<DType> compute_output_dtype(const std::vector<DType>& input_dtypes,
                                          std::size_t num_outputs) const override;

  // ---- structure ----

  // Keras' model.layers: functional: every layer of the graph (InputLayers included) in
  // topological order; sequential: the added layers (no InputLayer).
  const std::vector<LayerRef>& layers() const { return layers_; }
  // By name or index; throws ValueError naming the valid names / the count.
  LayerRef get_layer(std::string_view name) const;
  LayerRef get_layer(std::size_t index) const;
  // Inputs and outputs of the graph (empty for a sequential network not yet built).
  const std::vector<KerasTensor>& inputs() const { return inputs_; }
  const std::vector<KerasTensor>& outputs() const { return outputs_; }
  std::vector<Shape> input_shapes() const;   // batch axis -1
  std::vector<Shape> output_shapes() const;
  Shape input_shape() const;   // the one input's; ValueError when not exactly one
  Shape output_shape() const;  // the one output's
  std::vector<std::string> input_names() const;   // the Input layers' names
  std::vector<std::string> output_names() const;  // the names of the layers producing outputs

  // ---- summary and config ----

  // Keras 3's model.summary() table: "Model: "name"", then Layer (type) | Output Shape |
  // Param # (| Connected to, functional only), then Total / Trainable / Non-trainable
  // params with their sizes. Requires a built network.
  std::string summary(SummaryOptions options = {}) const;
  void print_summary(std::ostream& os, SummaryOptions options = {}) const;
  void print_summary(SummaryOptions options = {}) const;  // to std::cout

  // Keras' model config: sequential {"name", "trainable", "dtype", "layers": [...],
  // "build_input_shape"}; functional {"name", "trainable", "layers": [... with
  // "inbound_nodes"], "input_layers", "output_layers"}.
  nlohmann::json get_config() const override;
  // Rebuilds a network from get_config() output (layers come from the layer registry,
  // layers/registry.h). class_name is "Sequential" or "Functional".
  static std::shared_ptr<Network> from_config(const nlohmann::json& config, std::string_view class_name);

 protected:
  // Inputs pass through uncast: each layer inside casts to its own dtype.
  bool autocast_inputs() const override { return false; }
  // Fills an empty Network (or subclass, e.g. kiln::Model) from a config: what
  // from_config does after constructing. ValueError if this network has layers already.
  void configure_from_config(const nlohmann::json& config, std::string_view class_name);

 private:
  // One step of the eager run: a node of the graph and where its tensors live.
  struct Step {
    std::shared_ptr<const KerasNode> node;
    std::vector<int> input_slots;   // slot of each input tensor
    std::vector<int> output_slots;  // slot of each output tensor
    std::vector<int> free_after;    // slots whose last reader is this step
  };

  void init_graph(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs);
  void build_sequential_graph(const Shape& input_batch_shape);
  void check_call_inputs(const std::vector<Tensor>& inputs) const;
  std::vector<Tensor> run_graph(const std::vector<Tensor>& inputs, bool training);

  bool sequential_ = false;
  std::vector<LayerRef> layers_;
  std::vector<KerasTensor> inputs_;
  std::vector<KerasTensor> outputs_;
  std::vector<std::shared_ptr<const KerasNode>> nodes_;  // the graph's nodes, topological
  std::vector<Step> steps_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  int num_slots_ = 0;
  KerasTensor sequential_input_;  // an Input given by add(KerasTensor)
};

}  // namespace kiln::layers
