// Network::get_config / from_config: Keras 3's Sequential and Functional configs.
//   Sequential: {"name", "trainable", "dtype", "layers": [serialized layers, the
//     InputLayer first], "build_input_shape"}.
//   Functional: {"name", "trainable", "layers": [serialized layer + "name" +
//     "inbound_nodes": [{"args": [...], "kwargs": {}}]], "input_layers": [[name, node, tensor]],
//     "output_layers": [...]}. Node indices count only the nodes inside this model
//     (Keras' node re-indexing), so a layer shared with another model still reads back.
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "kiln/layers/core.h"
#include "kiln/layers/network.h"
#include "kiln/layers/registry.h"

namespace kiln::layers {

using nlohmann::json;

namespace {

// Per layer, the model's nodes in creation order: a node's re-indexed number is its
// position in its layer's list.
std::map<const KerasNode*, int> reindex_nodes(const std::vector<std::shared_ptr<const KerasNode>>& nodes) {
  std::map<const Layer*, int> next;
  std::map<const KerasNode*, int> out;
  for (const auto& n : nodes) out[n.get()] = next[n->layer.get()]++;
  return out;
}

json tensor_ref(const KerasTensor& t, const std::map<const KerasNode*, int>& index) {
  return json::array({t.layer()->name(), index.at(t.node().get()), t.index()});
}

json keras_tensor_json(const KerasTensor& t, const std::map<const KerasNode*, int>& index) {
  return {{"class_name", "__keras_tensor__"},
          {"config",
           {{"shape", shape_to_json(t.shape())},
            {"dtype", dtype_to_json(t.dtype())},
            {"keras_history", tensor_ref(t, index)}}}};
}

}  // namespace

json Network::get_config() const {
  json config;
  config["name"] = name();
  config["trainable"] = trainable();
  if (sequential_) {
    config["dtype"] = dtype_to_json(dtype());
    json layers = json::array();
    if (!inputs_.empty()) layers.push_back(serialize_layer(*inputs_[0].layer()));
    for (const LayerRef& l : layers_) layers.push_back(serialize_layer(*l));
    config["layers"] = layers;
    if (!inputs_.empty()) config["build_input_shape"] = shape_to_json(inputs_[0].shape());
    return config;
  }
  const std::map<const KerasNode*, int> index = reindex_nodes(nodes_);
  json layers = json::array();
  for (const LayerRef& l : layers_) {
    json entry = serialize_layer(*l);
    entry["name"] = l->name();
    json inbound = json::array();
    for (const auto& n : nodes_) {
      if (n->layer.get() != l.get() || n->inputs.empty()) continue;
      json args = json::array();
      if (n->inputs.size() == 1) {
        args.push_back(keras_tensor_json(n->inputs[0], index));
      } else {
        json list = json::array();
        for (const KerasTensor& t : n->inputs) list.push_back(keras_tensor_json(t, index));
        args.push_back(list);
      }
      inbound.push_back({{"args", args}, {"kwargs", json::object()}});
    }
    entry["inbound_nodes"] = inbound;
    layers.push_back(entry);
  }
  config["layers"] = layers;
  json ins = json::array(), outs = json::array();
  for (const KerasTensor& t : inputs_) ins.push_back(tensor_ref(t, index));
  for (const KerasTensor& t : outputs_) outs.push_back(tensor_ref(t, index));
  config["input_layers"] = ins;
  config["output_layers"] = outs;
  return config;
}

std::shared_ptr<Network> Network::from_config(const json& config, std::string_view class_name) {
  auto net = std::make_shared<Network>(std::vector<LayerRef>{},
                                       NetworkOptions{.name = config.value("name", std::string())});
  net->configure_from_config(config, class_name);
  return net;
}

namespace {

// The KerasTensors named by a [layer name, node index, tensor index] reference.
struct Created {
  std::map<std::string, std::vector<std::vector<KerasTensor>>> outputs;  // per layer, per node

  bool has(const json& ref) const {
    auto it = outputs.find(ref.at(0).get<std::string>());
    return it != outputs.end() && ref.at(1).get<std::size_t>() < it->second.size();
  }
  KerasTensor get(const json& ref) const {
    KILN_CHECK(has(ref), FormatError, "model config: no layer output ", ref.dump(),
               " (an unknown layer name or node index)");
    const auto& nodes = outputs.at(ref.at(0).get<std::string>());
    const auto& tensors = nodes.at(ref.at(1).get<std::size_t>());
    const std::size_t i = ref.at(2).get<std::size_t>();
    KILN_CHECK(i < tensors.size(), FormatError, "model config: tensor reference ", ref.dump(), " is out of range");
    return tensors[i];
  }
};

// The input references of one inbound node: its args as a flat list of keras_history.
std::vector<json> node_inputs(const json& node) {
  std::vector<json> refs;
  std::function<void(const json&)> visit = [&](const json& j) {
    if (j.is_array()) {
      for (const json& e : j) visit(e);
    } else if (j.is_object() && j.value("class_name", std::string()) == "__keras_tensor__") {
      refs.push_back(j.at("config").at("keras_history"));
    }
  };
  // Keras 3 writes {"args": [...], "kwargs": {}}; Keras 2 wrote [[name, node, tensor, {}], ...].
  if (node.is_object()) {
    visit(node.at("args"));
  } else {
    for (const json& e : node) refs.push_back(json::array({e.at(0), e.at(1), e.at(2)}));
  }
  return refs;
}

// Makes the layers of a Functional config and calls them on each other in the order of
// their inbound nodes (deferring a node until its inputs exist, keeping each layer's node
// order); returns the model's input and output tensors.
std::pair<std::vector<KerasTensor>, std::vector<KerasTensor>> functional_graph_from_config(const std::string& model,
                                                                                          const json& config) {
  struct Pending {
    LayerRef layer;
    std::vector<json> nodes;  // inbound nodes not processed yet, in order
  };
  std::vector<Pending> pending;
  Created created;
  for (const json& entry : config["layers"]) {
    const std::string cls = entry.at("class_name").get<std::string>();
    LayerRef layer = LayerRegistry::instance().create(cls, entry.at("config"));
    if (auto* input = dynamic_cast<InputLayer*>(layer.get())) {
      created.outputs[layer->name()].push_back({input->output_tensor()});
      continue;
    }
    std::vector<json> nodes;
    if (entry.contains("inbound_nodes")) {
      for (const json& n : entry["inbound_nodes"]) nodes.push_back(n);
    }
    pending.push_back({layer, std::move(nodes)});
  }
  // Process nodes whose inputs exist, keeping each layer's node order, until none is left.
  for (bool progress = true; progress;) {
    progress = false;
    for (Pending& p : pending) {
      while (!p.nodes.empty()) {
        const std::vector<json> refs = node_inputs(p.nodes.front());
        bool ready = true;
        for (const json& r : refs) ready = ready && created.has(r);
        if (!ready) break;
        std::vector<KerasTensor> args;
        for (const json& r : refs) args.push_back(created.get(r));
        created.outputs[p.layer->name()].push_back((*p.layer)(args));
        p.nodes.erase(p.nodes.begin());
        progress = true;
      }
    }
  }
  for (const Pending& p : pending) {
    KILN_CHECK(p.nodes.empty(), FormatError, model, ": model config: the inputs of layer '", p.layer->name(),
               "' never become available (a cycle or a missing layer)");
  }
  // A list of references, or (some Keras versions, one tensor) a single reference.
  auto refs_of = [](const json& j) {
    std::vector<json> refs;
    if (j.is_array() && !j.empty() && j[0].is_string()) {
      refs.push_back(j);
    } else {
      for (const json& r : j) refs.push_back(r);
    }
    return refs;
  };
  std::vector<KerasTensor> ins, outs;
  for (const json& r : refs_of(config.at("input_layers"))) ins.push_back(created.get(r));
  for (const json& r : refs_of(config.at("output_layers"))) outs.push_back(created.get(r));
  return {std::move(ins), std::move(outs)};
}

}  // namespace

void Network::configure_from_config(const json& config, std::string_view class_name) {
  KILN_CHECK(layers_.empty() && inputs_.empty() && !sequential_input_.defined(), ValueError, name(),
             ": configure_from_config needs an empty model");
  KILN_CHECK(config.is_object() && config.contains("layers"), FormatError, name(),
             ": a model config needs \"layers\", got ", config.dump());
  if (config.contains("name") && config["name"].is_string()) set_name(config["name"].get<std::string>());
  const bool trainable_flag = config.value("trainable", true);

  if (class_name == "Sequential") {
    sequential_ = true;
    set_class_name("Sequential");
    for (const json& entry : config["layers"]) {
      if (entry.value("class_name", std::string()) == "InputLayer") {
        LayerRef input = LayerRegistry::instance().create("InputLayer", entry.at("config"));
        add(input);
      } else {
        add(deserialize_layer(entry));
      }
    }
    if (inputs_.empty() && config.contains("build_input_shape") && !config["build_input_shape"].is_null() &&
        !layers_.empty()) {
      build_sequential_graph(shape_from_json(config["build_input_shape"]));
    }
    if (!trainable_flag) set_trainable(false);
    return;
  }

  KILN_CHECK(class_name == "Functional" || class_name == "Model", ValueError, name(),
             ": from_config takes class_name \"Sequential\" or \"Functional\", got '", class_name, "'");
  sequential_ = false;
  set_class_name("Functional");
  auto [ins, outs] = functional_graph_from_config(name(), config);
  init_graph(std::move(ins), std::move(outs));
  if (!trainable_flag) set_trainable(false);
}

}  // namespace kiln::layers
