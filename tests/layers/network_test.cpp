// Network (layers/network.h): sequential mode (list, add, pop, deferred build), the
// functional graph (branches, merges, two inputs and outputs, a shared layer, a nested
// model), eager values and gradients against hand-chained layers, freeing of
// intermediates, input checks, deduplicated weights.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/kernels/unary.h"
#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/network.h"
#include "kiln/layers/shape_layers.h"
#include "layer_gradcheck.h"

namespace kiln::layers {
namespace {

using ::testing::HasSubstr;

constexpr TensorOptions kCpu{.device = Device::cpu()};
constexpr TensorOptions kF64{.dtype = DType::float64, .device = Device::cpu()};

Tensor randn_cpu(const Shape& s, std::uint64_t seed, DType dt = DType::float32) {
  Generator gen(seed);
  return randn(s, {.dtype = dt, .device = Device::cpu()}, &gen);
}

template <class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

void expect_equal(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
}

// ---- sequential ----

TEST(Sequential, BuildsAtOnceFromTheFirstLayersInputShape) {
  auto d1 = Dense(8, {.activation = "relu", .input_shape = {5}});
  auto d2 = Dense(3);
  Network net({d1, d2});
  EXPECT_TRUE(net.is_sequential());
  EXPECT_EQ(net.class_name(), "Sequential");
  EXPECT_TRUE(net.built());
  EXPECT_EQ(net.input_shape(), (Shape{-1, 5}));
  EXPECT_EQ(net.output_shape(), (Shape{-1, 3}));
  EXPECT_EQ(net.layers().size(), 2u);  // no InputLayer, as Keras' Sequential.layers
  EXPECT_EQ(net.weights().size(), 4u);
  EXPECT_EQ(net.count_params(), 5 * 8 + 8 + 8 * 3 + 3);
  const Tensor x = randn_cpu({4, 5}, 1);
  expect_equal(net.call(x, false), d2(d1(x)));
}

TEST(Sequential, DefersTheBuildUntilTheFirstCall) {
  Network net;
  net.add(Dense(6, {.activation = "tanh"}));
  net.add(Dropout(0.5));
  net.add(Dense(2));
  EXPECT_TRUE(net.inputs().empty());
  EXPECT_FALSE(net.layers()[0]->built());
  const Tensor x = randn_cpu({3, 7}, 2);
  const Tensor y = net.call(x, false);
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(net.input_shape(), (Shape{-1, 7}));
  EXPECT_EQ(static_cast<Layer&>(*net.layers()[0]).count_params(), 7 * 6 + 6);
  // Dropout only acts in training.
  expect_equal(net.call(x, false), y);
}

TEST(Sequential, AddAfterBuildPopAndAnInputFirst) {
  Network net;
  net.add(Input({4}));
  EXPECT_TRUE(net.inputs().empty());
  net.add(Dense(3));
  EXPECT_EQ(net.output_shape(), (Shape{-1, 3}));
  net.add(Dense(2));
  EXPECT_EQ(net.output_shape(), (Shape{-1, 2}));
  EXPECT_EQ(net.layers().size(), 2u);
  net.pop();
  EXPECT_EQ(net.output_shape(), (Shape{-1, 3}));
  EXPECT_EQ(net.weights().size(), 2u);
  EXPECT_EQ(net.call(randn_cpu({2, 4}, 3), false).shape(), (Shape{2, 3}));
  net.pop();
  EXPECT_THROW(net.pop(), ValueError);
  EXPECT_THAT(message_of([&] { net.add(Input({4})); }), HasSubstr("only be added to an empty Sequential"));
}

TEST(Sequential, RejectsDuplicateNamesAndMultiOutputUse) {
  Network net;
  net.add(Dense(2, {.name = "same"}));
  EXPECT_THAT(message_of([&] { net.add(Dense(2, {.name = "same"})); }), HasSubstr("the name 'same' is used by two layers"));
  auto in = Input({2});
  Network functional(in, Dense(2)(in));
  EXPECT_THROW(functional.add(Dense(1)), ValueError);
}

// ---- functional ----

TEST(Functional, ResidualBlockMatchesTheLayersChainedByHand) {
  auto in = Input({6});
  auto d1 = Dense(6, {.activation = "relu"});
  auto d2 = Dense(6);
  auto merge = Add();
  auto act = Activation("relu");
  KerasTensor out = act(merge({in, d2(d1(in))}));
  Network net(in, out);
  EXPECT_FALSE(net.is_sequential());
  EXPECT_EQ(net.class_name(), "Functional");
  ASSERT_EQ(net.layers().size(), 5u);
  EXPECT_EQ(net.layers()[0]->class_name(), "InputLayer");
  EXPECT_EQ(net.weights().size(), 4u);

  const Tensor x = randn_cpu({5, 6}, 4);
  const Tensor ref = relu(add(x, d2(d1(x))));
  expect_equal(net.call(x, false), ref);
  // Every weight gets a gradient through both branches.
  backward(sum(net.call(x, false)));
  for (const Variable& v : net.trainable_weights()) EXPECT_TRUE(v.grad().defined()) << v.name();
}

TEST(Functional, TwoInputsAndTwoOutputs) {
  auto a = Input({4}, {.name = "a"});
  auto b = Input({3}, {.name = "b"});
  auto cat = Concatenate()({a, b});
  auto h = Dense(5, {.activation = "tanh", .name = "h"})(cat);
  auto out1 = Dense(2, {.name = "out1"})(h);
  auto out2 = Dense(1, {.name = "out2"})(b);
  Network net({a, b}, {out1, out2});
  EXPECT_EQ(net.input_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(net.output_names(), (std::vector<std::string>{"out1", "out2"}));
  EXPECT_EQ(net.output_shapes(), (std::vector<Shape>{{-1, 2}, {-1, 1}}));
  const Tensor xa = randn_cpu({3, 4}, 5), xb = randn_cpu({3, 3}, 6);
  const std::vector<Tensor> y = net.call({xa, xb}, false);
  ASSERT_EQ(y.size(), 2u);
  auto layer = [&](const char* n) { return net.get_layer(n); };
  expect_equal(y[0], layer("out1")(layer("h")(concat({xa, xb}, 1))));
  expect_equal(y[1], layer("out2")(xb));
  EXPECT_THAT(message_of([&] { (void)net.call({xa}, false); }), HasSubstr("expected 2 inputs, got 1"));
  EXPECT_THAT(message_of([&] { (void)net.call(xa, false); }), HasSubstr("expected 2 inputs, got 1"));
}

TEST(Functional, ASharedLayerHasOneSetOfWeightsAndSumsItsGradients) {
  auto in = Input({3});
  auto shared = Dense(3, {.use_bias = false});
  auto y1 = shared(in);
  auto y2 = shared(y1);  // called twice: nodes 0 and 1
  auto net_ptr = std::make_shared<Network>(in, y2);
  Network& net = *net_ptr;
  EXPECT_EQ(net.weights().size(), 1u);
  EXPECT_EQ(shared->num_nodes(), 2);
  const Tensor x = randn_cpu({2, 3}, 7, DType::float64);
  EXPECT_TRUE(test::layer_gradcheck(LayerRef(net_ptr), {x}));
  // d(sum(x W W))/dW accumulates both uses: x^T (1 W^T) + (x W)^T 1.
  backward(sum(net.call(x, false)));
  const Tensor W = shared->kernel().value().detach();
  const Tensor one = ones({2, 3}, kF64);
  const Tensor ref = add(matmul(x.t(), matmul(one, W.t())), matmul(matmul(x, W).t(), one));
  const auto g = shared->kernel().grad().to_vector<double>(), r = ref.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], r[i], 1e-12);
}

TEST(Functional, ANestedModelIsALayer) {
  auto inner_ptr = std::make_shared<Network>(
      std::vector<LayerRef>{Dense(4, {.activation = "relu", .input_shape = {3}}), Dense(2)},
      NetworkOptions{.name = "inner"});
  Network& inner = *inner_ptr;
  auto in = Input({3});
  auto out = Dense(1)(LayerRef(inner_ptr)(in));
  Network outer(in, out);
  EXPECT_EQ(outer.layers().size(), 3u);
  EXPECT_EQ(outer.weights().size(), 6u);
  EXPECT_EQ(outer.count_params(), 3 * 4 + 4 + 4 * 2 + 2 + 2 + 1);
  const Tensor x = randn_cpu({2, 3}, 8);
  expect_equal(outer.call(x, false), outer.get_layer(2)(inner.call(x, false)));
  outer.set_trainable(false);
  EXPECT_TRUE(outer.trainable_weights().empty());
  EXPECT_FALSE(inner.layers()[0]->trainable());
}

TEST(Functional, InputShapeMismatchNamesTheInputAndBothShapes) {
  auto in = Input({32}, {.name = "features"});
  Network net(in, Dense(4)(in), {.name = "model"});
  EXPECT_EQ(message_of([&] { (void)net.call(ones({8, 31}, kCpu), false); }),
            "model: input 'features' expects shape (None, 32), got (8, 31)");
  EXPECT_THAT(message_of([&] { (void)net.call(ones({8, 32, 1}, kCpu), false); }),
              HasSubstr("expects shape (None, 32), got (8, 32, 1)"));
}

TEST(Functional, GraphErrorsAreNamed) {
  auto a = Input({2}, {.name = "in_a"});
  auto b = Input({2}, {.name = "in_b"});
  auto sum_ab = Add()({a, b});
  EXPECT_THAT(message_of([&] { Network net(a, sum_ab); }),
              HasSubstr("graph disconnected: the outputs depend on 'in_b', which is not among the model's inputs (in_a)"));
  auto h = Dense(2)(a);
  EXPECT_THAT(message_of([&] { Network net(h, h); }), HasSubstr("is not an Input tensor"));
  auto d1 = Dense(2, {.name = "twin"})(a);
  auto d2 = Dense(2, {.name = "twin"})(d1);
  EXPECT_THAT(message_of([&] { Network net(a, d2); }), HasSubstr("the name 'twin' is used by two layers"));
  EXPECT_THAT(message_of([&] { (void)Network(std::vector<KerasTensor>{}, {h}); }), HasSubstr("at least one input"));
}

// A probe that remembers the storage of its input and checks, when a later probe runs,
// that the earlier intermediate has been released.
struct Probe : Layer {
  explicit Probe(std::shared_ptr<std::weak_ptr<Storage>> slot, bool record)
      : Layer("Probe"), slot_(std::move(slot)), record_(record) {}
  Tensor call(const Tensor& x, bool) override {
    if (record_) {
      *slot_ = x.storage();
    } else {
      expired_when_checked = slot_->expired();
    }
    return add(x, 1.0);
  }
  using Layer::call;
  std::shared_ptr<std::weak_ptr<Storage>> slot_;
  bool record_;
  bool expired_when_checked = false;
};

TEST(Functional, IntermediatesAreFreedAsSoonAsNoLaterLayerNeedsThem) {
  auto slot = std::make_shared<std::weak_ptr<Storage>>();
  auto first = make_layer<Probe>(slot, true);
  auto second = make_layer<Probe>(slot, false);
  auto in = Input({3});
  auto out = second(Dense(3)(Dense(3)(first(Dense(3)(in)))));
  Network net(in, out);
  NoGradGuard no_grad;  // without autograd nothing else holds the intermediates
  (void)net.call(ones({2, 3}, kCpu), false);
  EXPECT_TRUE(second->expired_when_checked);
}

TEST(Functional, FloatInputsTakeTheInputsDtype) {
  auto in = Input({2});
  auto d = Dense(2);
  Network net(in, d(in));
  EXPECT_EQ(net.call(ones({1, 2}, kF64), false).dtype(), DType::float32);
}

TEST(Functional, EmbeddingModelWithIntegerInput) {
  auto tokens = Input({5}, {.dtype = DType::int64});
  auto h = Flatten()(Embedding(10, 4)(tokens));
  auto out = Dense(1, {.activation = "sigmoid"})(h);
  Network net(tokens, out);
  EXPECT_EQ(h.shape(), (Shape{-1, 20}));
  const Tensor idx = from_vector<std::int64_t>({1, 2, 3, 4, 5, 9, 8, 7, 6, 0}, Shape{2, 5});
  const Tensor y = net.call(idx, true);
  EXPECT_EQ(y.shape(), (Shape{2, 1}));
  backward(sum(y));
  EXPECT_TRUE(net.weights()[0].grad().defined());
}

}  // namespace
}  // namespace kiln::layers
