// get_config / from_config (layers/network.h, registry.h): Keras 3's JSON for layers,
// Sequential and Functional models; round trips that rebuild the same graph (same
// outputs once the weights are copied); reading a config written the way Keras writes
// it; the registry's errors and user-registered layers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kiln/kernels/binary.h"
#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/network.h"
#include "kiln/layers/registry.h"
#include "kiln/layers/shape_layers.h"

namespace kiln::layers {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

Tensor randn_cpu(const Shape& s, std::uint64_t seed) {
  Generator gen(seed);
  return randn(s, {.device = Device::cpu()}, &gen);
}

std::vector<Tensor> run(Network& net, const std::vector<Tensor>& xs) { return net.call(xs, false); }

TEST(LayerConfig, DenseWritesKerasKeys) {
  auto d = Dense(4, {.activation = "relu", .kernel_initializer = "he_normal", .kernel_regularizer = "l2",
                     .name = "hidden", .input_shape = {3}});
  (void)d(Input({3}));
  const json s = serialize_layer(*d);
  EXPECT_EQ(s["module"], "keras.layers");
  EXPECT_EQ(s["class_name"], "Dense");
  EXPECT_EQ(s["build_config"]["input_shape"], json::parse("[null, 3]"));
  const json& c = s["config"];
  EXPECT_EQ(c["name"], "hidden");
  EXPECT_EQ(c["units"], 4);
  EXPECT_EQ(c["activation"], "relu");
  EXPECT_EQ(c["use_bias"], true);
  EXPECT_EQ(c["dtype"], "float32");
  EXPECT_EQ(c["trainable"], true);
  EXPECT_EQ(c["kernel_initializer"]["class_name"], "HeNormal");
  EXPECT_EQ(c["bias_initializer"]["class_name"], "Zeros");
  EXPECT_EQ(c["kernel_regularizer"]["config"]["l2"], 0.01);
  EXPECT_TRUE(c["bias_regularizer"].is_null());
  // Back through the registry: built from build_config, same config.
  LayerRef back = deserialize_layer(s);
  EXPECT_TRUE(back->built());
  EXPECT_EQ(back->get_config(), c);
  EXPECT_EQ(back->count_params(), 16);
}

TEST(LayerConfig, EveryCoreLayerRoundTrips) {
  const std::vector<LayerRef> layers = {
      Activation("tanh"), Dropout(0.25, {.seed = 4}), Embedding(7, 3, {.embeddings_constraint = "non_neg"}),
      Flatten(), Reshape({2, -1}), Permute({2, 1}), Add(), Subtract(), Multiply(), Average(), Maximum(), Minimum(),
      Concatenate({.axis = 1}), Dense(2, {.use_bias = false, .kernel_constraint = constraints::MaxNorm({.max_value = 3})}),
  };
  for (const LayerRef& l : layers) {
    SCOPED_TRACE(l->class_name());
    const json s = serialize_layer(*l);
    const LayerRef back = deserialize_layer(s);
    EXPECT_EQ(back->class_name(), l->class_name());
    EXPECT_EQ(back->get_config(), l->get_config());
  }
}

TEST(NetworkConfig, SequentialRoundTripGivesTheSameModel) {
  clear_session();
  Network net({Dense(5, {.activation = "relu", .input_shape = {4}}), Dropout(0.5), Dense(2, {.activation = "softmax"})});
  const json c = net.get_config();
  EXPECT_EQ(c["name"], "sequential");
  ASSERT_EQ(c["layers"].size(), 4u);
  EXPECT_EQ(c["layers"][0]["class_name"], "InputLayer");
  EXPECT_EQ(c["layers"][0]["config"]["batch_shape"], json::parse("[null, 4]"));
  EXPECT_EQ(c["layers"][1]["config"]["name"], "dense");
  EXPECT_EQ(c["build_input_shape"], json::parse("[null, 4]"));

  auto back = Network::from_config(json::parse(c.dump()), "Sequential");
  EXPECT_TRUE(back->is_sequential());
  EXPECT_EQ(back->name(), "sequential");
  EXPECT_EQ(back->get_config(), c);
  back->set_weights(net.get_weights());
  const Tensor x = randn_cpu({3, 4}, 1);
  EXPECT_EQ(back->call(x, false).to_vector<float>(), net.call(x, false).to_vector<float>());
}

TEST(NetworkConfig, FunctionalRoundTripKeepsBranchesSharedLayersAndTwoOutputs) {
  clear_session();
  auto a = Input({4}, {.name = "a"});
  auto b = Input({4}, {.name = "b"});
  auto shared = Dense(4, {.activation = "tanh", .name = "shared"});
  auto sa = shared(a), sb = shared(b);
  auto merged = Concatenate()({sa, sb});
  auto out1 = Dense(2, {.name = "head1"})(merged);
  auto out2 = Add({.name = "sum"})({sa, sb});
  Network net({a, b}, {out1, out2}, {.name = "twin"});
  const json c = net.get_config();
  EXPECT_EQ(c["input_layers"], json::parse(R"([["a", 0, 0], ["b", 0, 0]])"));
  EXPECT_EQ(c["output_layers"], json::parse(R"([["head1", 0, 0], ["sum", 0, 0]])"));
  // The shared layer has two inbound nodes; the merge's args are one list of tensors.
  const json* shared_entry = nullptr;
  const json* sum_entry = nullptr;
  for (const json& l : c["layers"]) {
    if (l["name"] == "shared") shared_entry = &l;
    if (l["name"] == "sum") sum_entry = &l;
  }
  ASSERT_TRUE(shared_entry && sum_entry);
  ASSERT_EQ((*shared_entry)["inbound_nodes"].size(), 2u);
  EXPECT_EQ((*shared_entry)["inbound_nodes"][1]["args"][0]["config"]["keras_history"], json::parse(R"(["b", 0, 0])"));
  EXPECT_EQ((*sum_entry)["inbound_nodes"][0]["args"][0][1]["config"]["keras_history"],
            json::parse(R"(["shared", 1, 0])"));

  auto back = Network::from_config(json::parse(c.dump()), "Functional");
  EXPECT_EQ(back->name(), "twin");
  EXPECT_EQ(back->get_config(), c);
  back->set_weights(net.get_weights());
  const Tensor xa = randn_cpu({2, 4}, 2), xb = randn_cpu({2, 4}, 3);
  const auto y = run(net, {xa, xb}), z = run(*back, {xa, xb});
  ASSERT_EQ(z.size(), 2u);
  EXPECT_EQ(z[0].to_vector<float>(), y[0].to_vector<float>());
  EXPECT_EQ(z[1].to_vector<float>(), y[1].to_vector<float>());
}

TEST(NetworkConfig, NodeIndicesCountOnlyThisModelsCalls) {
  clear_session();
  auto d = Dense(2, {.name = "reused"});
  (void)d(Input({2}));  // a call outside the model: node 0
  auto in = Input({2}, {.name = "x"});
  Network net(in, d(in));  // node 1 globally, node 0 within net
  const json c = net.get_config();
  EXPECT_EQ(c["output_layers"], json::parse(R"([["reused", 0, 0]])"));
  auto back = Network::from_config(c, "Functional");
  EXPECT_EQ(back->output_shape(), (Shape{-1, 2}));
}

TEST(NetworkConfig, ReadsAConfigWrittenTheWayKerasWritesIt) {
  // keras 3: model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="relu")]);
  // model.get_config() (abridged: DTypePolicy dtype objects, seed null).
  const json c = json::parse(R"({
    "name": "sequential_7", "trainable": true,
    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
    "layers": [
      {"module": "keras.layers", "class_name": "InputLayer",
       "config": {"batch_shape": [null, 3], "dtype": "float32", "sparse": false, "name": "input_layer_7"},
       "registered_name": null},
      {"module": "keras.layers", "class_name": "Dense",
       "config": {"name": "dense_12", "trainable": true,
                  "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
                  "units": 2, "activation": "relu", "use_bias": true,
                  "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null},
                  "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
                  "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null},
       "registered_name": null, "build_config": {"input_shape": [null, 3]}}],
    "build_input_shape": [null, 3]})");
  auto net = Network::from_config(c, "Sequential");
  EXPECT_EQ(net->name(), "sequential_7");
  EXPECT_EQ(net->input_shape(), (Shape{-1, 3}));
  EXPECT_EQ(net->output_shape(), (Shape{-1, 2}));
  EXPECT_EQ(net->get_layer(0)->name(), "dense_12");
  EXPECT_EQ(net->count_params(), 8);
  EXPECT_EQ(net->input_names(), (std::vector<std::string>{"input_layer_7"}));
}

// A user layer registered by class name.
class Twice : public Layer {
 public:
  explicit Twice(LayerOptions o = {}) : Layer("Twice", std::move(o)) {}
  Tensor call(const Tensor& x, bool) override { return x * 2.0; }
  using Layer::call;
};

TEST(Registry, UnknownClassesListTheRegisteredOnesAndUsersCanRegister) {
  try {
    (void)deserialize_layer(json::parse(R"({"class_name": "Twice", "config": {}})"));
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("unknown layer class 'Twice'"));
    EXPECT_THAT(e.message(), HasSubstr("Dense"));
    EXPECT_THAT(e.message(), HasSubstr("Concatenate"));
  }
  register_layer("Twice", [](const json& c) -> LayerRef {
    return make_layer<Twice>(common_options_from_config(c));
  });
  auto in = Input({2});
  Network net(in, make_layer<Twice>(LayerOptions{.name = "twice"})(in));
  auto back = Network::from_config(net.get_config(), "Functional");
  EXPECT_EQ(back->get_layer("twice")->class_name(), "Twice");
  EXPECT_EQ(back->call(ones({1, 2}, {.device = Device::cpu()}), false).to_vector<float>(),
            (std::vector<float>{2, 2}));
  EXPECT_TRUE(LayerRegistry::instance().contains("Dense"));
  EXPECT_THROW((void)Network::from_config(json::parse(R"({"layers": []})"), "Graph"), ValueError);
}

}  // namespace
}  // namespace kiln::layers
