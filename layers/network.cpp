// Network: graph construction (sequential and functional), the eager run, structure
// queries (see network.h). Summary: network_summary.cpp; config: network_config.cpp.
#include "kiln/layers/network.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kiln/layers/core.h"

namespace kiln::layers {

namespace {
bool is_input_node(const KerasNode& node) {
  return node.inputs.empty() && dynamic_cast<const InputLayer*>(node.layer.get()) != nullptr;
}
using TensorKey = std::pair<const KerasNode*, int>;
TensorKey key_of(const KerasTensor& t) { return {t.node().get(), t.index()}; }
}  // namespace

Network::Network(std::vector<LayerRef> layers, NetworkOptions options)
    : Layer("Sequential", LayerOptions{.name = std::move(options.name), .trainable = options.trainable}),
      sequential_(true) {
  for (const LayerRef& l : layers) add(l);
}

Network::Network(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs, NetworkOptions options)
    : Layer("Functional", LayerOptions{.name = std::move(options.name), .trainable = options.trainable}) {
  init_graph(std::move(inputs), std::move(outputs));
}

Network::Network(const KerasTensor& input, const KerasTensor& output, NetworkOptions options)
    : Network(std::vector<KerasTensor>{input}, std::vector<KerasTensor>{output}, std::move(options)) {}

Network::~Network() = default;

namespace {

// Checks the inputs and finds every node between them and the outputs, in creation
// order (a topological order: a node is made after its inputs). Inputs no output uses
// are included, so their layers still belong to the model.
std::vector<std::shared_ptr<const KerasNode>> graph_nodes(const std::string& model, const std::vector<KerasTensor>& inputs,
                                                          const std::vector<KerasTensor>& outputs) {
  KILN_CHECK(!inputs.empty(), ValueError, model, ": a model needs at least one input");
  KILN_CHECK(!outputs.empty(), ValueError, model, ": a model needs at least one output");
  std::set<const KerasNode*> input_nodes;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    KILN_CHECK(inputs[i].defined(), ValueError, model, ": input ", i, " is an undefined KerasTensor");
    KILN_CHECK(is_input_node(*inputs[i].node()), ValueError, model, ": input ", i, " (", inputs[i].str(),
               ") is not an Input tensor; model inputs must come from kiln::layers::Input");
    KILN_CHECK(input_nodes.insert(inputs[i].node().get()).second, ValueError, model, ": input ", i, " (",
               inputs[i].layer()->name(), ") is given twice");
  }
  std::map<const KerasNode*, std::shared_ptr<const KerasNode>> found;
  std::vector<std::shared_ptr<const KerasNode>> stack;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    KILN_CHECK(outputs[i].defined(), ValueError, model, ": output ", i, " is an undefined KerasTensor");
    stack.push_back(outputs[i].node());
  }
  while (!stack.empty()) {
    std::shared_ptr<const KerasNode> n = stack.back();
    stack.pop_back();
    if (!found.emplace(n.get(), n).second || input_nodes.count(n.get())) continue;
    if (n->inputs.empty()) {
      std::string names;
      for (const auto& in : inputs) names += (names.empty() ? "" : ", ") + in.layer()->name();
      KILN_THROW(ValueError, model, ": graph disconnected: the outputs depend on '", n->layer->name(),
                 "', which is not among the model's inputs (", names, ")");
    }
    for (const KerasTensor& t : n->inputs) stack.push_back(t.node());
  }
  std::vector<std::shared_ptr<const KerasNode>> nodes;
  for (auto& [_, n] : found) nodes.push_back(n);
  for (const KerasTensor& in : inputs) {
    if (!found.count(in.node().get())) nodes.push_back(in.node());
  }
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  return nodes;
}

}  // namespace

// Finds the graph, assigns a slot to every tensor, and records after which step each slot
// can be freed.
void Network::init_graph(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs) {
  std::vector<std::shared_ptr<const KerasNode>> nodes = graph_nodes(name(), inputs, outputs);
  std::set<const KerasNode*> input_nodes;
  for (const KerasTensor& in : inputs) input_nodes.insert(in.node().get());

  // Layers in node order, names unique.
  std::vector<LayerRef> layers;
  std::map<std::string, const Layer*> by_name;
  for (const auto& n : nodes) {
    auto [it, fresh] = by_name.emplace(n->layer->name(), n->layer.get());
    KILN_CHECK(fresh || it->second == n->layer.get(), ValueError, name(), ": the name '", n->layer->name(),
               "' is used by two layers; layer names must be unique within a model");
    if (fresh) layers.push_back(LayerRef(n->layer));
  }

  // Slots: inputs first, then each step's outputs.
  std::map<TensorKey, int> slot_of;
  int slots = 0;
  std::vector<int> input_slots;
  for (const KerasTensor& in : inputs) {
    slot_of[key_of(in)] = slots;
    input_slots.push_back(slots++);
  }
  std::vector<Step> steps;
  for (const auto& n : nodes) {
    if (input_nodes.count(n.get())) continue;
    Step step;
    step.node = n;
    for (const KerasTensor& t : n->inputs) step.input_slots.push_back(slot_of.at(key_of(t)));
    for (int i = 0; i < static_cast<int>(n->output_shapes.size()); ++i) {
      slot_of[{n.get(), i}] = slots;
      step.output_slots.push_back(slots++);
    }
    steps.push_back(std::move(step));
  }
  std::vector<int> output_slots;
  for (const KerasTensor& out : outputs) output_slots.push_back(slot_of.at(key_of(out)));
  // The last reader of each slot frees it, unless it is an output.
  std::vector<int> last_reader(slots, -1);
  for (int s = 0; s < static_cast<int>(steps.size()); ++s) {
    for (int slot : steps[s].input_slots) last_reader[slot] = s;
  }
  for (int slot : output_slots) last_reader[slot] = -1;
  for (int slot = 0; slot < slots; ++slot) {
    if (last_reader[slot] >= 0) steps[last_reader[slot]].free_after.push_back(slot);
  }

  inputs_ = std::move(inputs);
  outputs_ = std::move(outputs);
  nodes_ = std::move(nodes);
  steps_ = std::move(steps);
  input_slots_ = std::move(input_slots);
  output_slots_ = std::move(output_slots);
  num_slots_ = slots;
  if (!sequential_) {
    layers_ = layers;
    untrack_layers();
    for (const LayerRef& l : layers_) track_layer(l);
    if (!trainable()) set_trainable(false);
  }
  set_built(input_shapes());
}

// ---- sequential mode ----

void Network::add(const LayerRef& layer) {
  KILN_CHECK(sequential_, ValueError, name(), ": add() is for sequential models; a functional model's graph is fixed");
  KILN_CHECK(layer.get() != nullptr, ValueError, name(), ": add() got an empty layer handle");
  if (auto* input = dynamic_cast<InputLayer*>(layer.get())) {
    KILN_CHECK(layers_.empty() && !sequential_input_.defined(), ValueError, name(),
               ": an InputLayer can only be the first layer of a Sequential model");
    add(input->output_tensor());
    return;
  }
  for (const LayerRef& l : layers_) {
    KILN_CHECK(l->name() != layer->name(), ValueError, name(), ": the name '", layer->name(),
               "' is used by two layers; layer names must be unique within a model");
  }
  layers_.push_back(layer);
  track_layer(layer);
  if (!trainable()) layer->set_trainable(false);
  if (!inputs_.empty()) {
    std::vector<KerasTensor> out = (*layer)(std::vector<KerasTensor>{outputs_[0]});
    KILN_CHECK(out.size() == 1, ValueError, name(), ": layer '", layer->name(), "' has ", out.size(),
               " outputs; Sequential layers must have one input and one output");
    init_graph(inputs_, out);
  } else if (sequential_input_.defined()) {
    build_sequential_graph(sequential_input_.shape());
  } else if (layers_.size() == 1 && !layer->declared_input_shape().empty()) {
    build_sequential_graph(batch_shape(layer->declared_input_shape()));
  }
}

void Network::add(const KerasTensor& input) {
  KILN_CHECK(sequential_, ValueError, name(), ": add() is for sequential models");
  KILN_CHECK(input.defined() && is_input_node(*input.node()), ValueError, name(),
             ": add(KerasTensor) takes an Input tensor (kiln::layers::Input)");
  KILN_CHECK(layers_.empty() && !sequential_input_.defined(), ValueError, name(),
             ": an Input can only be added to an empty Sequential model");
  sequential_input_ = input;
}

void Network::pop() {
  KILN_CHECK(sequential_, ValueError, name(), ": pop() is for sequential models");
  KILN_CHECK(!layers_.empty(), ValueError, name(), ": pop() on a model with no layers");
  layers_.pop_back();
  untrack_layers();
  for (const LayerRef& l : layers_) track_layer(l);
  const std::vector<Shape> shapes = input_shapes();
  inputs_.clear();
  outputs_.clear();
  nodes_.clear();
  steps_.clear();
  if (!layers_.empty() && !shapes.empty()) build_sequential_graph(shapes[0]);
}

void Network::build_sequential_graph(const Shape& input_batch_shape) {
  KILN_CHECK(!layers_.empty(), ValueError, name(), ": the model has no layers");
  KerasTensor input = sequential_input_;
  if (!input.defined() || !(input.shape() == input_batch_shape)) {
    input = std::make_shared<InputLayer>(input_batch_shape)->output_tensor();
    sequential_input_ = input;
  }
  KerasTensor x = input;
  for (const LayerRef& l : layers_) {
    std::vector<KerasTensor> out = (*l)(std::vector<KerasTensor>{x});
    KILN_CHECK(out.size() == 1, ValueError, name(), ": layer '", l->name(), "' has ", out.size(),
               " outputs; Sequential layers must have one input and one output");
    x = out[0];
  }
  init_graph({input}, {x});
}

void Network::build(const std::vector<Shape>& input_shapes) {
  if (sequential_) {
    check_input_count(input_shapes.size(), 1);
    if (inputs_.empty()) build_sequential_graph(with_unknown_batch(input_shapes[0]));
    return;
  }
  check_input_count(input_shapes.size(), inputs_.size());
}

void Network::build(const Shape& input_shape) { build(std::vector<Shape>{input_shape}); }

// ---- running ----

void Network::check_call_inputs(const std::vector<Tensor>& inputs) const {
  KILN_CHECK(inputs.size() == inputs_.size(), ShapeError, name(), ": expected ", inputs_.size(), " input",
             inputs_.size() == 1 ? "" : "s", ", got ", inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    KILN_CHECK(inputs[i].defined(), ValueError, name(), ": input ", i, " is undefined");
    const Shape& expected = inputs_[i].shape();
    KILN_CHECK(shapes_compatible(expected, inputs[i].shape()), ShapeError, name(), ": input '",
               inputs_[i].layer()->name(), "' expects shape ", shape_str(expected), ", got ",
               shape_str(inputs[i].shape()));
  }
}

std::vector<Tensor> Network::run_graph(const std::vector<Tensor>& inputs, bool training) {
  std::vector<Tensor> slots(static_cast<std::size_t>(num_slots_));
  // Inputs go in as given: each layer casts floating inputs to its own dtype (Keras'
  // autocast), so a model converted with to(float64) computes in float64 throughout.
  for (std::size_t i = 0; i < inputs.size(); ++i) slots[input_slots_[i]] = inputs[i];
  for (const Step& step : steps_) {
    std::vector<Tensor> args;
    args.reserve(step.input_slots.size());
    for (int s : step.input_slots) args.push_back(slots[s]);
    std::vector<Tensor> outs = (*step.node->layer)(args, training);
    KILN_CHECK(outs.size() == step.output_slots.size(), ValueError, name(), ": layer '", step.node->layer->name(),
               "' returned ", outs.size(), " outputs, its symbolic call had ", step.output_slots.size());
    for (std::size_t i = 0; i < outs.size(); ++i) slots[step.output_slots[i]] = std::move(outs[i]);
    for (int s : step.free_after) slots[s] = Tensor();  // no later step reads it
  }
  std::vector<Tensor> out;
  for (int s : output_slots_) out.push_back(slots[s]);
  return out;
}

std::vector<Tensor> Network::call(const std::vector<Tensor>& inputs, bool training) {
  if (sequential_ && inputs_.empty()) {
    check_input_count(inputs.size(), 1);
    KILN_CHECK(inputs[0].defined(), ValueError, name(), ": input 0 is undefined");
    build_sequential_graph(with_unknown_batch(inputs[0].shape()));
  }
  check_call_inputs(inputs);
  return run_graph(inputs, training);
}

Tensor Network::call(const Tensor& input, bool training) {
  std::vector<Tensor> out = call(std::vector<Tensor>{input}, training);
  KILN_CHECK(out.size() == 1, ValueError, name(), ": the model has ", out.size(),
             " outputs; call it with a list of inputs to get them all");
  return out[0];
}

std::vector<Shape> Network::compute_output_shape(const std::vector<Shape>& shapes) const {
  KILN_CHECK(!inputs_.empty(), ValueError, name(), ": the model is not built (no input shape yet)");
  KILN_CHECK(shapes.size() == inputs_.size(), ShapeError, name(), ": expected ", inputs_.size(), " inputs, got ",
             shapes.size());
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    KILN_CHECK(shapes_compatible(inputs_[i].shape(), shapes[i]), ShapeError, name(), ": input '",
               inputs_[i].layer()->name(), "' expects shape ", shape_str(inputs_[i].shape()), ", got ",
               shape_str(shapes[i]));
  }
  return output_shapes();
}

Shape Network::compute_output_shape(const Shape& input_shape) const {
  std::vector<Shape> out = compute_output_shape(std::vector<Shape>{input_shape});
  KILN_CHECK(out.size() == 1, ValueError, name(), ": the model has ", out.size(), " outputs");
  return out[0];
}

std::vector<DType> Network::compute_output_dtype(const std::vector<DType>&, std::size_t num_outputs) const {
  std::vector<DType> out;
  for (const KerasTensor& t : outputs_) out.push_back(t.dtype());
  KILN_ASSERT(out.size() == num_outputs, name(), ": ", out.size(), " output dtypes for ", num_outputs, " outputs");
  return out;
}

// ---- structure ----

LayerRef Network::get_layer(std::string_view layer_name) const {
  std::string valid;
  for (const LayerRef& l : layers_) {
    if (l->name() == layer_name) return l;
    valid += (valid.empty() ? "" : ", ") + l->name();
  }
  KILN_THROW(ValueError, name(), ": no layer named '", layer_name, "'; layers: ", valid);
}

LayerRef Network::get_layer(std::size_t index) const {
  KILN_CHECK(index < layers_.size(), IndexError, name(), ": layer index ", index, " out of range (the model has ",
             layers_.size(), " layers)");
  return layers_[index];
}

std::vector<Shape> Network::input_shapes() const {
  std::vector<Shape> out;
  for (const KerasTensor& t : inputs_) out.push_back(t.shape());
  return out;
}

std::vector<Shape> Network::output_shapes() const {
  std::vector<Shape> out;
  for (const KerasTensor& t : outputs_) out.push_back(t.shape());
  return out;
}

Shape Network::input_shape() const {
  KILN_CHECK(inputs_.size() == 1, ValueError, name(), ": input_shape() needs exactly one input; the model has ",
             inputs_.size(), inputs_.empty() ? " (not built yet)" : "");
  return inputs_[0].shape();
}

Shape Network::output_shape() const {
  KILN_CHECK(outputs_.size() == 1, ValueError, name(), ": output_shape() needs exactly one output; the model has ",
             outputs_.size(), outputs_.empty() ? " (not built yet)" : "");
  return outputs_[0].shape();
}

std::vector<std::string> Network::input_names() const {
  std::vector<std::string> out;
  for (const KerasTensor& t : inputs_) out.push_back(t.layer()->name());
  return out;
}

std::vector<std::string> Network::output_names() const {
  std::vector<std::string> out;
  for (const KerasTensor& t : outputs_) out.push_back(t.layer()->name());
  return out;
}

}  // namespace kiln::layers
