// Model and Sequential: compile, the Keras-equivalence of a step (forward and Adam updates
// against float64 values computed by hand), the *_on_batch entry points, errors for bad
// input, predict without graph, weights snapshots and saving.
#include "kiln/training/model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/random.h"
#include "kiln/layers/core.h"
#include "kiln/training/tensor_file.h"

namespace kiln {
namespace {

// A scratch path unique to this process (builds may run the suites side by side).
std::filesystem::path scratch_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()));
}

using layers::Dense;

std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

// A 2 -> 3 (relu) -> 2 network in float64 with fixed weights.
struct TinyNet {
  std::vector<double> w1 = {0.5, -0.3, 0.8, -0.6, 0.4, 0.2};  // (2, 3)
  std::vector<double> b1 = {0.1, -0.2, 0.05};
  std::vector<double> w2 = {0.7, -0.5, 0.3, 0.9, -0.4, 0.6};  // (3, 2)
  std::vector<double> b2 = {0.02, -0.03};

  // Models are not movable (layers are shared, never copied): built in place. float64 from
  // the Input on, so nothing rounds through float32.
  std::unique_ptr<Model> make() const {
    auto in = layers::Input({2}, {.dtype = DType::float64});
    auto h = Dense(3, {.activation = "relu", .dtype = DType::float64})(in);
    auto out = Dense(2, {.dtype = DType::float64})(h);
    auto m = std::make_unique<Model>(in, out);
    m->to(DType::float64);  // the model's own dtype too: Layer::operator() casts inputs to it
    m->set_weights({from_vector(w1, {2, 3}), from_vector(b1, {3}), from_vector(w2, {3, 2}), from_vector(b2, {2})});
    return m;
  }
};

// Forward and gradients of mean((y - t)^2) by hand, in float64 (Keras' MSE: mean over the
// last axis, then sum_over_batch_size = mean over the batch).
struct HandGrads {
  std::vector<double> out, gw1, gb1, gw2, gb2;
  double loss = 0;
};
HandGrads hand_step(const TinyNet& p, const std::vector<double>& x, const std::vector<double>& t, int n) {
  HandGrads g;
  g.gw1.assign(6, 0);
  g.gb1.assign(3, 0);
  g.gw2.assign(6, 0);
  g.gb2.assign(2, 0);
  for (int s = 0; s < n; ++s) {
    double h[3], pre[3];
    for (int j = 0; j < 3; ++j) {
      pre[j] = p.b1[j];
      for (int i = 0; i < 2; ++i) pre[j] += x[s * 2 + i] * p.w1[i * 3 + j];
      h[j] = pre[j] > 0 ? pre[j] : 0;
    }
    double dy[2];
    for (int k = 0; k < 2; ++k) {
      double y = p.b2[k];
      for (int j = 0; j < 3; ++j) y += h[j] * p.w2[j * 2 + k];
      g.out.push_back(y);
      const double diff = y - t[s * 2 + k];
      g.loss += diff * diff / (2.0 * n);
      dy[k] = 2.0 * diff / (2.0 * n);
    }
    for (int k = 0; k < 2; ++k) {
      g.gb2[k] += dy[k];
      for (int j = 0; j < 3; ++j) g.gw2[j * 2 + k] += h[j] * dy[k];
    }
    for (int j = 0; j < 3; ++j) {
      double dh = 0;
      for (int k = 0; k < 2; ++k) dh += dy[k] * p.w2[j * 2 + k];
      const double dpre = pre[j] > 0 ? dh : 0;
      g.gb1[j] += dpre;
      for (int i = 0; i < 2; ++i) g.gw1[i * 3 + j] += x[s * 2 + i] * dpre;
    }
  }
  return g;
}

// Keras' Adam step t (1-based) on one parameter vector.
void hand_adam(std::vector<double>& p, const std::vector<double>& g, std::vector<double>& m, std::vector<double>& v,
               int t, double lr) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
  const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
  for (std::size_t i = 0; i < p.size(); ++i) {
    m[i] += (g[i] - m[i]) * (1 - b1);
    v[i] += (g[i] * g[i] - v[i]) * (1 - b2);
    p[i] -= alpha * m[i] / (std::sqrt(v[i]) + eps);
  }
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << "[" << i << "]";
}

TEST(ModelKerasEquivalence, ForwardAndTwoAdamStepsMatchHandComputedFloat64) {
  TinyNet net;
  auto owned = net.make();
  Model& model = *owned;
  model.compile({.optimizer = optimizers::Adam({.learning_rate = 0.01}), .loss = "mse"});
  const std::vector<double> x = {1.0, 2.0, -1.5, 0.5, 0.3, -0.7, 2.0, 1.0};  // (4, 2)
  const std::vector<double> t = {0.5, -1.0, 1.0, 0.0, -0.5, 0.25, 2.0, 1.0};  // (4, 2)
  const Tensor xt = from_vector(x, {4, 2}), tt = from_vector(t, {4, 2});

  HandGrads g0 = hand_step(net, x, t, 4);
  expect_near_all(model.predict(xt, {.verbose = 0}).to_vector<double>(), g0.out, 1e-12, "predict");

  std::vector<std::vector<double>> m(4), v(4);
  for (int k = 0; k < 4; ++k) {
    const std::size_t sz = std::vector<std::size_t>{6, 3, 6, 2}[k];
    m[k].assign(sz, 0);
    v[k].assign(sz, 0);
  }
  for (int step = 1; step <= 2; ++step) {
    const HandGrads g = hand_step(net, x, t, 4);
    const Logs logs = model.train_on_batch(xt, tt);
    EXPECT_NEAR(logs.at("loss"), step == 1 ? g.loss : (g0.loss + g.loss) / 2, 1e-12) << "step " << step;
    hand_adam(net.w1, g.gw1, m[0], v[0], step, 0.01);
    hand_adam(net.b1, g.gb1, m[1], v[1], step, 0.01);
    hand_adam(net.w2, g.gw2, m[2], v[2], step, 0.01);
    hand_adam(net.b2, g.gb2, m[3], v[3], step, 0.01);
    const auto w = model.get_weights();
    expect_near_all(w[0].to_vector<double>(), net.w1, 1e-12, "kernel 1");
    expect_near_all(w[1].to_vector<double>(), net.b1, 1e-12, "bias 1");
    expect_near_all(w[2].to_vector<double>(), net.w2, 1e-12, "kernel 2");
    expect_near_all(w[3].to_vector<double>(), net.b2, 1e-12, "bias 2");
  }
  EXPECT_EQ(model.optimizer().iterations(), 2);
}

TEST(ModelCompile, UnknownIdentifiersListTheValidOnes) {
  Sequential model({Dense(2, {.input_shape = {3}})});
  const std::string opt = error_message([&] { model.compile({.optimizer = "adamm", .loss = "mse"}); });
  EXPECT_NE(opt.find("adamm"), std::string::npos) << opt;
  EXPECT_NE(opt.find("adam"), std::string::npos) << opt;
  EXPECT_NE(opt.find("rmsprop"), std::string::npos) << opt;
  const std::string loss = error_message([&] { model.compile({.optimizer = "sgd", .loss = "mean_sq"}); });
  EXPECT_NE(loss.find("mean_squared_error"), std::string::npos) << loss;
  const std::string metric = error_message([&] { model.compile({.loss = "mse", .metrics = {"accurcy"}}); });
  EXPECT_NE(metric.find("accuracy"), std::string::npos) << metric;
  EXPECT_FALSE(model.compiled());
}

TEST(ModelCompile, RequiresALossAndMatchingPerOutputLists) {
  Sequential model({Dense(2, {.input_shape = {3}})});
  EXPECT_THROW(model.compile({.optimizer = "sgd"}), ValueError);
  EXPECT_THROW(model.compile({.loss = {"mse", "mae"}}), ValueError);
  EXPECT_THROW(model.compile({.loss = "mse", .loss_weights = {1.0, 2.0}}), ValueError);
  model.compile({.loss = "mse"});
  EXPECT_TRUE(model.compiled());
  EXPECT_EQ(model.optimizer().class_name(), "RMSprop");  // Keras' default optimizer
}

TEST(ModelErrors, FitBeforeCompileSaysSo) {
  Sequential model({Dense(2, {.input_shape = {3}})});
  const std::string msg = error_message([&] { model.fit(zeros({4, 3}), zeros({4, 2}), {.verbose = 0}); });
  EXPECT_NE(msg.find("compile"), std::string::npos) << msg;
  EXPECT_THROW(model.evaluate(zeros({4, 3}), zeros({4, 2}), {.verbose = 0}), ValueError);
}

TEST(ModelErrors, XAndYOfDifferentLengths) {
  Sequential model({Dense(2, {.input_shape = {3}})});
  model.compile({.loss = "mse"});
  const std::string msg = error_message([&] { model.fit(zeros({5, 3}), zeros({4, 2}), {.verbose = 0}); });
  EXPECT_NE(msg.find("(5, 3)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(4, 2)"), std::string::npos) << msg;
  EXPECT_THROW(model.fit(zeros({4, 3}), zeros({4, 2}), {.verbose = 0, .sample_weight = ones({3})}), ShapeError);
}

TEST(ModelErrors, WrongInputShapeIsTheLayersError) {
  Sequential model({Dense(2, {.input_shape = {3}})});
  model.compile({.loss = "mse"});
  const std::string msg = error_message([&] { model.fit(zeros({4, 5}), zeros({4, 2}), {.verbose = 0}); });
  EXPECT_NE(msg.find("(4, 5)"), std::string::npos) << msg;
}

TEST(ModelErrors, LabelsOutOfRangeAreTheLossError) {
  Sequential model({Dense(3, {.activation = "softmax", .input_shape = {2}})});
  model.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  const Tensor y = from_vector(std::vector<std::int64_t>{0, 1, 7, 2}, {4});
  EXPECT_THROW(model.fit(zeros({4, 2}), y, {.verbose = 0}), IndexError);
}

TEST(ModelErrors, ClassWeightWithSampleWeightOrMissingClass) {
  Sequential model({Dense(3, {.activation = "softmax", .input_shape = {2}})});
  model.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  const Tensor y = from_vector(std::vector<std::int64_t>{0, 1, 2, 2}, {4});
  EXPECT_THROW(model.fit(zeros({4, 2}), y, {.verbose = 0, .class_weight = {{0, 1.0}}, .sample_weight = ones({4})}),
               ValueError);
  const std::string msg =
      error_message([&] { model.fit(zeros({4, 2}), y, {.verbose = 0, .class_weight = {{0, 1.0}, {2, 1.0}}}); });
  EXPECT_NE(msg.find("class 1 is missing"), std::string::npos) << msg;
}

TEST(ModelOnBatch, TrainAndTestOnBatchReturnRunningLogs) {
  manual_seed(3);
  Sequential model({Dense(4, {.activation = "softmax", .input_shape = {3}})});
  model.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  const Tensor x = randn({8, 3});
  const Tensor y = from_vector(std::vector<std::int32_t>{0, 1, 2, 3, 0, 1, 2, 3}, {8});
  const Logs a = model.train_on_batch(x, y);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_TRUE(a.contains("loss") && a.contains("accuracy"));
  EXPECT_GE(a.at("accuracy"), 0.0);
  EXPECT_LE(a.at("accuracy"), 1.0);
  model.reset_metrics();
  const Logs t = model.test_on_batch(x, y);
  const Logs t2 = model.evaluate(x, y, {.batch_size = 3, .verbose = 0});
  EXPECT_NEAR(t.at("loss"), t2.at("loss"), 1e-6);  // weighted by batch size: the same mean
  EXPECT_NEAR(t.at("accuracy"), t2.at("accuracy"), 1e-12);
}

TEST(ModelPredict, KeepsNoGraphAndBatchesLikeOneCall) {
  manual_seed(4);
  Sequential model({Dense(5, {.activation = "relu", .input_shape = {3}}), Dense(2)});
  const Tensor x = randn({11, 3});
  const Tensor p = model.predict(x, {.batch_size = 4, .verbose = 0});
  EXPECT_EQ(p.shape(), Shape({11, 2}));
  EXPECT_FALSE(p.requires_grad());
  EXPECT_EQ(p.grad_fn(), nullptr);
  const Tensor whole = model.predict_on_batch(x);
  EXPECT_FALSE(whole.requires_grad());
  const auto a = p.to_vector<float>(), b = whole.to_vector<float>();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6);
}

TEST(ModelWeights, SnapshotRestoresAndSaveLoadRoundTrips) {
  manual_seed(5);
  Sequential model({Dense(4, {.input_shape = {3}}), Dense(2)});
  const auto before = model.get_weights();
  const auto snap = model.weight_snapshot();
  model.set_weights({zeros({3, 4}), zeros({4}), zeros({4, 2}), zeros({2})});
  model.restore_weight_snapshot(snap);
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(model.get_weights()[i].to_vector<float>(), before[i].to_vector<float>());
  }
  const auto path = scratch_path("kiln_model_test_weights.safetensors");
  model.save_weights(path.string());
  const TensorFile file = read_tensor_file(path);
  EXPECT_EQ(file.tensors.size(), 4u);
  EXPECT_TRUE(file.find("dense/kernel").defined());  // keys by class and ordinal, not by name
  EXPECT_TRUE(file.find("dense_1/bias").defined());
  model.set_weights({zeros({3, 4}), zeros({4}), zeros({4, 2}), zeros({2})});
  model.load_weights(path.string());
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(model.get_weights()[i].to_vector<float>(), before[i].to_vector<float>());
  }
  Sequential same({Dense(4, {.input_shape = {3}}), Dense(2)});  // other layer names, same keys
  same.load_weights(path.string());
  EXPECT_EQ(same.get_weights()[2].to_vector<float>(), before[2].to_vector<float>());
  Sequential other({Dense(5, {.input_shape = {3}}), Dense(2)});
  EXPECT_THROW(other.load_weights(path.string()), ShapeError);
  std::filesystem::remove(path);
}

TEST(ModelFunctional, TwoOutputsLogPerOutputLossesAndMetrics) {
  manual_seed(6);
  auto in = layers::Input({3});
  auto a = Dense(2, {.name = "reg"})(in);
  auto b = Dense(1, {.name = "aux"})(in);
  Model model({in}, {a, b});
  model.compile({.optimizer = "sgd", .loss = {"mse", "mae"}, .metrics = {"mae"}, .loss_weights = {1.0, 0.5}});
  const Tensor x = randn({6, 3});
  const Tensor ya = randn({6, 2});
  const Tensor yb = randn({6, 1});
  const Logs logs = model.test_on_batch({x}, {ya, yb});
  ASSERT_TRUE(logs.contains("reg_loss") && logs.contains("aux_loss") && logs.contains("reg_mae") &&
              logs.contains("aux_mae"));
  EXPECT_NEAR(logs.at("loss"), logs.at("reg_loss") + logs.at("aux_loss"), 1e-5);
  // aux's loss is its mae weighted by 0.5.
  EXPECT_NEAR(logs.at("aux_loss"), 0.5 * logs.at("aux_mae"), 1e-5);
  EXPECT_THROW(model.test_on_batch({x}, {ya}), ValueError);  // one target for two outputs
}

}  // namespace
}  // namespace kiln
