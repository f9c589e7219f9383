// Core layers (layers/core.h, shape_layers.h, merge.h): automatic names, shape inference
// of every layer, values against float64 references, gradient checks through the one
// layer checker, NaN/Inf propagation, Keras-style errors, trainable flags.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/shape_layers.h"
#include "layer_gradcheck.h"

namespace kiln::layers {
namespace {

using ::testing::HasSubstr;

constexpr TensorOptions kF64{.dtype = DType::float64, .device = Device::cpu()};

Tensor randn64(const Shape& s, std::uint64_t seed) {
  Generator gen(seed);
  return randn(s, kF64, &gen);
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

// ---- names ----

TEST(LayerNames, SnakeCaseFollowsKeras) {
  EXPECT_EQ(to_snake_case("Dense"), "dense");
  EXPECT_EQ(to_snake_case("Conv2D"), "conv2d");
  EXPECT_EQ(to_snake_case("Conv2DTranspose"), "conv2d_transpose");
  EXPECT_EQ(to_snake_case("BatchNormalization"), "batch_normalization");
  EXPECT_EQ(to_snake_case("UpSampling2D"), "up_sampling2d");
  EXPECT_EQ(to_snake_case("GlobalAveragePooling2D"), "global_average_pooling2d");
  EXPECT_EQ(to_snake_case("InputLayer"), "input_layer");
  EXPECT_EQ(to_snake_case("ReLU"), "re_lu");
  EXPECT_EQ(to_snake_case("LSTM"), "lstm");
}

TEST(LayerNames, PerTypeCountersGiveDenseThenDense1) {
  clear_session();
  EXPECT_EQ(Dense(2)->name(), "dense");
  EXPECT_EQ(Dense(2)->name(), "dense_1");
  EXPECT_EQ(Dropout(0.1)->name(), "dropout");
  EXPECT_EQ(Dense(2)->name(), "dense_2");
  EXPECT_EQ(Dense(2, {.name = "head"})->name(), "head");
  EXPECT_EQ(Dense(2)->name(), "dense_3");  // an explicit name takes no number
  clear_session();
  EXPECT_EQ(Dense(2)->name(), "dense");
}

// ---- shape inference ----

struct ShapeCase {
  const char* what;
  LayerRef layer;
  std::vector<Shape> inputs;
  Shape expected;
};

TEST(LayerShapes, EveryCoreLayerInfersItsOutputShape) {
  const std::vector<ShapeCase> cases = {
      {"dense 2-D", Dense(64), {{-1, 32}}, {-1, 64}},
      {"dense 3-D", Dense(3), {{-1, 5, 7}}, {-1, 5, 3}},
      {"activation", Activation("relu"), {{-1, 4, 5}}, {-1, 4, 5}},
      {"dropout", Dropout(0.5), {{-1, 9}}, {-1, 9}},
      {"flatten", Flatten(), {{-1, 2, 3, 4}}, {-1, 24}},
      {"flatten 1-D", Flatten(), {{-1}}, {-1, 1}},
      {"flatten unknown", Flatten(), {{-1, -1, 3}}, {-1, -1}},
      {"reshape inferred", Reshape({3, -1}), {{-1, 12}}, {-1, 3, 4}},
      {"reshape exact", Reshape({2, 2, 3}), {{-1, 3, 4}}, {-1, 2, 2, 3}},
      {"reshape unknown", Reshape({-1, 2}), {{-1, -1}}, {-1, -1, 2}},
      {"permute", Permute({3, 1, 2}), {{-1, 2, 3, 4}}, {-1, 4, 2, 3}},
      {"embedding", Embedding(10, 8), {{-1, 5}}, {-1, 5, 8}},
      {"add", Add(), {{-1, 3}, {-1, 3}}, {-1, 3}},
      {"multiply 3", Multiply(), {{-1, 2, 3}, {-1, 2, 3}, {-1, 2, 3}}, {-1, 2, 3}},
      {"subtract", Subtract(), {{-1, 3}, {-1, 3}}, {-1, 3}},
      {"average", Average(), {{4, 3}, {-1, 3}}, {4, 3}},
      {"concatenate", Concatenate(), {{-1, 3}, {-1, 4}}, {-1, 7}},
      {"concatenate axis 1", Concatenate({.axis = 1}), {{-1, 2, 5}, {-1, 3, 5}}, {-1, 5, 5}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<KerasTensor> ins;
    for (const Shape& s : c.inputs) {
      std::vector<std::int64_t> dims(s.begin() + 1, s.end());
      ins.push_back(Input(dims, {.batch_size = s[0] > 0 ? std::optional<std::int64_t>(s[0]) : std::nullopt,
                                 .dtype = c.layer->class_name() == "Embedding" ? DType::int64 : DType::float32}));
    }
    std::vector<KerasTensor> out = c.layer(ins);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].shape(), c.expected) << shape_str(out[0].shape());
    EXPECT_EQ(out[0].dtype(), DType::float32);
    EXPECT_TRUE(c.layer->built());
    // The eager call agrees with the symbolic shape (batch 4, unknown extents 12).
    std::vector<Tensor> xs;
    for (const Shape& s : c.inputs) {
      Shape concrete = s;
      for (int i = 0; i < concrete.ndim(); ++i) {
        if (concrete[i] < 0) concrete[i] = i == 0 ? 4 : 12;
      }
      xs.push_back(c.layer->class_name() == "Embedding" ? zeros(concrete, {.dtype = DType::int64, .device = Device::cpu()})
                                                       : ones(concrete, {.device = Device::cpu()}));
    }
    const Shape got = c.layer(xs)[0].shape();
    ASSERT_EQ(got.ndim(), c.expected.ndim());
    for (int i = 0; i < got.ndim(); ++i) {
      if (c.expected[i] >= 0) {
        EXPECT_EQ(got[i], c.expected[i]) << "axis " << i;
      }
    }
  }
}

// ---- Dense ----

TEST(Dense, MatchesAFloat64ReferenceWithBiasAndActivation) {
  auto d = Dense(3, {.activation = "relu", .dtype = DType::float64});
  const Tensor x = randn64({4, 5}, 1);
  (void)d(x);
  const Tensor w = randn64({5, 3}, 2), b = randn64({3}, 3);
  d->set_weights({w, b});
  const Tensor y = d(x);
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
  const auto yv = y.to_vector<double>();
  ASSERT_EQ(y.shape(), (Shape{4, 3}));
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) {
      double ref = bv[j];
      for (int k = 0; k < 5; ++k) ref += xv[i * 5 + k] * wv[k * 3 + j];
      EXPECT_NEAR(yv[i * 3 + j], std::max(ref, 0.0), 1e-12) << i << "," << j;
    }
  }
  EXPECT_EQ(d->kernel().name(), d->name() + "/kernel");
  EXPECT_EQ(d->bias().name(), d->name() + "/bias");
  EXPECT_EQ(d->count_params(), 18);
}

TEST(Dense, KernelIsInUnitsLayoutAndBiasStartsAtZero) {
  auto d = Dense(7, {.input_shape = {11}});
  (void)d(ones({2, 11}, {.device = Device::cpu()}));
  EXPECT_EQ(d->kernel().shape(), (Shape{11, 7}));
  EXPECT_EQ(d->bias().shape(), (Shape{7}));
  for (double v : d->bias().value().to_vector<double>()) EXPECT_EQ(v, 0.0);
  // glorot_uniform: |w| <= sqrt(6 / (11 + 7)).
  for (double v : d->kernel().value().to_vector<double>()) EXPECT_LE(std::abs(v), std::sqrt(6.0 / 18.0));
  auto nb = Dense(4, {.use_bias = false});
  (void)nb(ones({1, 3}, {.device = Device::cpu()}));
  EXPECT_FALSE(nb->bias().defined());
  EXPECT_EQ(nb->weights().size(), 1u);
}

TEST(Dense, NaNAndInfStayInTheirRow) {
  auto d = Dense(2, {.dtype = DType::float64});
  Tensor x = randn64({3, 4}, 4).contiguous();
  x.data<double>()[1 * 4 + 2] = std::numeric_limits<double>::quiet_NaN();
  x.data<double>()[2 * 4 + 0] = std::numeric_limits<double>::infinity();
  const auto y = d(x).to_vector<double>();
  EXPECT_TRUE(std::isfinite(y[0]) && std::isfinite(y[1]));
  EXPECT_TRUE(std::isnan(y[2]) && std::isnan(y[3]));
  EXPECT_FALSE(std::isfinite(y[4]));
  auto relu = Activation("relu");
  const auto r = relu(from_vector<double>({-INFINITY, INFINITY, NAN}, kF64)).to_vector<double>();
  EXPECT_EQ(r[0], 0.0);
  EXPECT_EQ(r[1], INFINITY);
  EXPECT_TRUE(std::isnan(r[2]));
}

TEST(Dense, WrongLastDimensionNamesTheLayerAndShape) {
  clear_session();
  (void)Dense(1);
  (void)Dense(1);
  auto d = Dense(8);
  ASSERT_EQ(d->name(), "dense_2");
  (void)d(ones({2, 64}, {.device = Device::cpu()}));
  EXPECT_EQ(message_of([&] { (void)d(ones({32, 63}, {.device = Device::cpu()})); }),
            "dense_2: expected input with last dimension 64, got (32, 63)");
  auto in = Input({63});
  EXPECT_THAT(message_of([&] { (void)d(in); }), HasSubstr("dense_2: expected input with last dimension 64, got (None, 63)"));
  EXPECT_THROW((void)Dense(0), ValueError);
}

TEST(Dense, UnknownActivationAndInitializerListTheValidNames) {
  const std::string act = message_of([] { (void)Dense(3, {.activation = "rellu", .name = "d"}); });
  EXPECT_THAT(act, HasSubstr("d: activation: unknown activation 'rellu'"));
  EXPECT_THAT(act, HasSubstr("relu"));
  EXPECT_THAT(act, HasSubstr("softmax"));
  const std::string init = message_of([] { (void)Dense(3, {.kernel_initializer = "glorot"}); });
  EXPECT_THAT(init, HasSubstr("unknown initializer 'glorot'"));
  EXPECT_THAT(init, HasSubstr("glorot_uniform"));
  EXPECT_THAT(init, HasSubstr("he_normal"));
  EXPECT_THAT(message_of([] { (void)Activation("nope"); }), HasSubstr("valid names:"));
}

TEST(Dense, GradientsToInputsKernelAndBias) {
  EXPECT_TRUE(test::layer_gradcheck(Dense(3, {.activation = "tanh"}), {randn64({4, 5}, 5)}));
  EXPECT_TRUE(test::layer_gradcheck(Dense(2, {.use_bias = false}), {randn64({2, 3, 4}, 6)}));
  // A transposed (non-contiguous) input.
  EXPECT_TRUE(test::layer_gradcheck(Dense(3, {.activation = "sigmoid"}), {randn64({5, 4}, 7).t()}));
}

TEST(Dense, TrainableFalseFreezesTheWeights) {
  auto d = Dense(3, {.trainable = false});
  (void)d(ones({1, 2}, {.device = Device::cpu()}));
  EXPECT_TRUE(d->trainable_weights().empty());
  EXPECT_EQ(d->non_trainable_weights().size(), 2u);
  EXPECT_FALSE(d->kernel().value().requires_grad());
  d->set_trainable(true);
  EXPECT_EQ(d->trainable_weights().size(), 2u);
  EXPECT_TRUE(d->kernel().value().requires_grad());
  EXPECT_TRUE(d->non_trainable_weights().empty());
}

// ---- Activation, Dropout ----

TEST(Activation, AppliesTheNamedFunction) {
  const Tensor x = from_vector<double>({-2, -0.5, 0, 0.5, 2}, kF64);
  const auto y = Activation("sigmoid", {.dtype = DType::float64})(x).to_vector<double>();
  for (std::size_t i = 0; i < y.size(); ++i) {
    EXPECT_NEAR(y[i], 1 / (1 + std::exp(-x.to_vector<double>()[i])), 1e-15);
  }
  EXPECT_TRUE(test::layer_gradcheck(Activation("softplus"), {randn64({3, 4}, 8)}));
  EXPECT_TRUE(test::layer_gradcheck(Activation("softmax"), {randn64({3, 4}, 9)}));
}

TEST(DropoutLayer, InferenceIsIdentityTrainingDropsAndScales) {
  auto d = Dropout(0.5, {.seed = 3});
  const Tensor x = ones({1000}, {.device = Device::cpu()});
  EXPECT_TRUE(d(x, false).is_same(x));
  const auto y = d(x, true).to_vector<float>();
  int kept = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.0f || v == 2.0f) << v;
    kept += v != 0.0f;
  }
  EXPECT_GT(kept, 400);
  EXPECT_LT(kept, 600);
  // Same seed, same mask; the generator advances between calls.
  auto d2 = Dropout(0.5, {.seed = 3});
  EXPECT_EQ(d2(x, true).to_vector<float>(), y);
  EXPECT_NE(d2(x, true).to_vector<float>(), y);
  EXPECT_THROW((void)Dropout(1.0), ValueError);
  EXPECT_THROW((void)Dropout(-0.1), ValueError);
  EXPECT_TRUE(test::layer_gradcheck(Dropout(0.3), {randn64({3, 4}, 10)}));  // inference: identity
}

// ---- Embedding ----

TEST(Embedding, LooksUpRowsAndRejectsOutOfRangeIndices) {
  auto e = Embedding(5, 3, {.dtype = DType::float64});
  const Tensor idx = from_vector<std::int64_t>({4, 0, 4, 2}, Shape{2, 2});
  const Tensor y = e(idx);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  const auto table = e->embeddings().value().to_vector<double>();
  const auto yv = y.to_vector<double>();
  const std::int64_t rows[] = {4, 0, 4, 2};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) EXPECT_EQ(yv[i * 3 + j], table[rows[i] * 3 + j]);
  }
  // Keras' "uniform": RandomUniform(-0.05, 0.05).
  for (double v : table) EXPECT_LE(std::abs(v), 0.05);
  // Floating indices holding integers are accepted, as Keras.
  EXPECT_EQ(e(from_vector<float>({4, 0, 4, 2}, Shape{2, 2})).to_vector<double>(), yv);
  EXPECT_THROW((void)e(from_vector<std::int64_t>({5}, Shape{1})), IndexError);
  EXPECT_THROW((void)e(from_vector<std::int64_t>({-6}, Shape{1})), IndexError);
  // Negative indices count from the end, as kiln::take (numpy.take).
  EXPECT_EQ(e(from_vector<std::int64_t>({-1}, Shape{1})).to_vector<double>(),
            e(from_vector<std::int64_t>({4}, Shape{1})).to_vector<double>());
}

TEST(Embedding, GradientReachesTheTableThroughRepeatedIndices) {
  const Tensor idx = from_vector<std::int32_t>({1, 3, 1, 1, 0, 3}, Shape{2, 3});
  EXPECT_TRUE(test::layer_gradcheck(Embedding(4, 3), {idx}, {.check_inputs = false}));
}

// ---- reshaping ----

TEST(ShapeLayers, FlattenReshapePermuteMoveValuesLikeNumPy) {
  const Tensor x = arange(24.0, kF64).reshape({2, 3, 4});
  EXPECT_EQ(Flatten({.dtype = DType::float64})(x).to_vector<double>(), x.to_vector<double>());
  const Tensor r = Reshape({4, -1}, {.dtype = DType::float64})(x);
  EXPECT_EQ(r.shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(r.to_vector<double>(), x.to_vector<double>());
  const Tensor p = Permute({2, 1}, {.dtype = DType::float64})(x);
  EXPECT_EQ(p.shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(p.at<double>({1, 3, 2}), x.at<double>({1, 2, 3}));
  // Flatten of a transposed view flattens in logical order.
  const Tensor t = x.permute({0, 2, 1});
  EXPECT_EQ(Flatten({.dtype = DType::float64})(t).to_vector<double>(), t.contiguous().to_vector<double>());
}

TEST(ShapeLayers, GradientsFlowBackThroughViews) {
  EXPECT_TRUE(test::layer_gradcheck(Flatten(), {randn64({2, 3, 4}, 11).permute({0, 2, 1})}));
  EXPECT_TRUE(test::layer_gradcheck(Reshape({6, -1}), {randn64({2, 3, 4}, 12)}));
  EXPECT_TRUE(test::layer_gradcheck(Permute({3, 1, 2}), {randn64({2, 3, 4, 5}, 13)}));
}

TEST(ShapeLayers, BadTargetsNameTheLayerAndShapes) {
  EXPECT_THAT(message_of([] { (void)Reshape({5, 3}, {.name = "r"})(ones({2, 12}, {.device = Device::cpu()})); }),
              HasSubstr("r: cannot reshape input (2, 12) (12 features) to target_shape (5, 3) (15 features)"));
  EXPECT_THAT(message_of([] { (void)Reshape({-1, -1}, {.name = "r2"}); }), HasSubstr("r2: at most one -1"));
  EXPECT_THAT(message_of([] { (void)Permute({1, 3}, {.name = "p"}); }), HasSubstr("p: dims must be a permutation"));
  EXPECT_THAT(message_of([] { (void)Permute({2, 1}, {.name = "p2"})(ones({2, 3}, {.device = Device::cpu()})); }),
              HasSubstr("p2: dims (2, 1) need input of rank 3, got (2, 3)"));
}

// ---- merges ----

TEST(MergeLayers, ElementwiseValuesAndGradients) {
  const Tensor a = randn64({3, 4}, 14), b = randn64({3, 4}, 15), c = randn64({3, 4}, 16);
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>(), cv = c.to_vector<double>();
  struct Case {
    LayerRef layer;
    std::function<double(double, double, double)> ref;
    bool three;
  };
  const std::vector<Case> cases = {
      {Add({.dtype = DType::float64}), [](double x, double y, double z) { return x + y + z; }, true},
      {Subtract({.dtype = DType::float64}), [](double x, double y, double) { return x - y; }, false},
      {Multiply({.dtype = DType::float64}), [](double x, double y, double z) { return x * y * z; }, true},
      {Average({.dtype = DType::float64}), [](double x, double y, double z) { return (x + y + z) / 3; }, true},
      {Maximum({.dtype = DType::float64}), [](double x, double y, double z) { return std::max({x, y, z}); }, true},
      {Minimum({.dtype = DType::float64}), [](double x, double y, double z) { return std::min({x, y, z}); }, true},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.layer->class_name());
    std::vector<Tensor> ins = k.three ? std::vector<Tensor>{a, b, c} : std::vector<Tensor>{a, b};
    const auto y = k.layer(ins)[0].to_vector<double>();
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], k.ref(av[i], bv[i], cv[i]), 1e-14);
    EXPECT_TRUE(test::layer_gradcheck(k.layer, ins));
  }
  EXPECT_TRUE(test::layer_gradcheck(Concatenate({.axis = 1}), {randn64({2, 3}, 17), randn64({2, 5}, 18).t().t()}));
  EXPECT_TRUE(test::layer_gradcheck(Concatenate({.axis = 0}), {randn64({2, 3}, 19), randn64({1, 3}, 20)}));
}

TEST(MergeLayers, MismatchedShapesNameTheLayerAndEveryShape) {
  auto add = Add({.name = "sum"});
  EXPECT_EQ(message_of([&] { (void)add(std::vector<KerasTensor>{Input({3}), Input({4})}); }),
            "sum: inputs must have one shape, got (None, 3), (None, 4)");
  EXPECT_THAT(message_of([] { (void)Subtract({.name = "s"})(std::vector<KerasTensor>{Input({3}), Input({3}), Input({3})}); }),
              HasSubstr("s: Subtract takes exactly 2 inputs, got 3"));
  EXPECT_THAT(message_of([] { (void)Add({.name = "a1"})(Input({3})); }),
              HasSubstr("a1: a merge layer takes at least 2 inputs, got 1"));
  EXPECT_THAT(message_of([] {
                (void)Concatenate({.name = "c"})(std::vector<KerasTensor>{Input({2, 3}), Input({4, 5})});
              }),
              HasSubstr("c: inputs must match except along axis -1, got (None, 2, 3), (None, 4, 5)"));
}

// ---- a custom layer by subclassing ----

// y = x * scale, scale (features,) initialised to ones.
class Scale : public Layer {
 public:
  explicit Scale(LayerOptions options = {}) : Layer("Scale", std::move(options)) {}
  void build(const Shape& input_shape) override {
    scale_ = add_weight("scale", {input_shape[input_shape.ndim() - 1]}, {.initializer = "ones"});
  }
  Tensor call(const Tensor& x, bool) override { return x * scale_.value(); }
  using Layer::build;
  using Layer::call;
  Variable scale_;
};

TEST(CustomLayer, SubclassBuildsOnFirstCallAndIsDifferentiable) {
  auto s = make_layer<Scale>();
  EXPECT_EQ(s->name().substr(0, 5), "scale");
  EXPECT_FALSE(s->built());
  const KerasTensor out = s(Input({4}));
  EXPECT_EQ(out.shape(), (Shape{-1, 4}));
  EXPECT_EQ(s->count_params(), 4);
  EXPECT_TRUE(test::layer_gradcheck(make_layer<Scale>(), {randn64({3, 4}, 21)}));
}

TEST(Layer, SymbolicCallNeedsASharedPtr) {
  Scale on_stack;
  EXPECT_THAT(message_of([&] { (void)on_stack(Input({2})); }), HasSubstr("must be held by a shared_ptr"));
}

}  // namespace
}  // namespace kiln::layers
