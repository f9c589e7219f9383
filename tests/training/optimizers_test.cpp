// The optimizers' update formulas on cpu: Adam and SGD with momentum against values worked
// out by hand in float64, every optimizer and option against the float64 reference of
// optimizer_test_util.h for three steps (float64 tightly, float32 / 16-bit within their
// rounding), clipping, weight decay, NaN and Inf gradients, odd parameter sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/op_test_util.h"
#include "kiln/training/optimizers.h"
#include "optimizer_test_util.h"

namespace kiln {
namespace {

using optimizers::Optimizer;
using test::kCpu;
using test::make_param;
using test::RefOptimizer;
using test::set_grad_values;

const std::vector<double> kP0 = {1.0, -2.0, 0.5};
const std::vector<std::vector<double>> kGrads = {{0.1, -0.2, 0.3}, {-0.4, 0.5, 0.25}, {0.05, 0.0, -1.5}};

// Runs three steps of `opt` on kP0 with kGrads; returns the parameter after each step.
std::vector<std::vector<double>> three_steps(Optimizer& opt, DType dt) {
  Tensor p = make_param(kP0, {3}, dt, kCpu);
  std::vector<std::vector<double>> out;
  for (const auto& g : kGrads) {
    set_grad_values(p, g);
    opt.apply_gradients({p});
    out.push_back(p.to_vector<double>());
  }
  return out;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " element " << i;
}

// Values from Keras 3's formulas evaluated by hand (Python floats) for kP0 and kGrads.
TEST(Optimizers, AdamFirstThreeStepsMatchHandComputedFloat64) {
  const std::vector<std::vector<double>> want = {
      {0.9990000316217766, -1.9990000158111383, 0.49900001054081444},
      {0.9995595308245253, -1.9994422284779803, 0.4980088456948154},
      {0.999911932911288, -1.999784060150115, 0.4984341925019779}};
  optimizers::Adam f64;
  const auto got = three_steps(f64, float64);
  for (int t = 0; t < 3; ++t) expect_near_all(got[t], want[t], 1e-15, "float64 step " + std::to_string(t + 1));
  optimizers::Adam f32;
  const auto got32 = three_steps(f32, float32);
  for (int t = 0; t < 3; ++t) expect_near_all(got32[t], want[t], 4e-7, "float32 step " + std::to_string(t + 1));
  EXPECT_EQ(f64.iterations(), 3);
}

TEST(Optimizers, SgdMomentumFirstThreeStepsMatchHandComputedFloat64) {
  const std::vector<std::vector<double>> momentum = {{0.999, -1.998, 0.497}, {1.0021, -2.0012, 0.4918},
                                                     {1.00439, -2.00408, 0.50212}};
  const std::vector<std::vector<double>> nesterov = {{0.9981, -1.9962, 0.4943}, {1.00489, -2.00408, 0.48712},
                                                     {1.006451, -2.006672, 0.511408}};
  optimizers::SGD sgd({.momentum = 0.9});
  optimizers::SGD nag({.momentum = 0.9, .nesterov = true});
  const auto a = three_steps(sgd, float64), b = three_steps(nag, float64);
  for (int t = 0; t < 3; ++t) {
    expect_near_all(a[t], momentum[t], 1e-15, "momentum step " + std::to_string(t + 1));
    expect_near_all(b[t], nesterov[t], 1e-15, "nesterov step " + std::to_string(t + 1));
  }
}

// ---- every optimizer and option against the reference ----

struct Case {
  const char* name;
  std::function<std::shared_ptr<Optimizer>()> make;
  RefOptimizer ref;
};

std::vector<Case> cases() {
  using namespace optimizers;
  auto ref = [](std::string kind, double lr) {
    RefOptimizer r;
    r.kind = std::move(kind);
    r.lr = lr;
    return r;
  };
  std::vector<Case> c;
  c.push_back({"sgd", [] { return std::make_shared<SGD>(); }, ref("sgd", 0.01)});
  RefOptimizer r = ref("sgd", 0.05);
  r.momentum = 0.5;
  r.nesterov = true;
  r.weight_decay = 0.1;
  c.push_back({"sgd_nesterov_decay",
               [] { return std::make_shared<SGD>(SGDOptions{.learning_rate = 0.05, .momentum = 0.5, .nesterov = true, .weight_decay = 0.1}); },
               r});
  c.push_back({"adam", [] { return std::make_shared<Adam>(AdamOptions{.learning_rate = 0.1}); }, ref("adam", 0.1)});
  r = ref("adam", 0.1);
  r.amsgrad = true;
  r.beta_1 = 0.8;
  c.push_back({"adam_amsgrad",
               [] { return std::make_shared<Adam>(AdamOptions{.learning_rate = 0.1, .beta_1 = 0.8, .amsgrad = true}); }, r});
  r = ref("adam", 0.1);
  r.weight_decay = 0.004;
  c.push_back({"adamw", [] { return std::make_shared<AdamW>(AdamWOptions{.learning_rate = 0.1}); }, r});
  r = ref("rmsprop", 0.01);
  c.push_back({"rmsprop", [] { return std::make_shared<RMSprop>(RMSpropOptions{.learning_rate = 0.01}); }, r});
  r.momentum = 0.9;
  r.centered = true;
  c.push_back({"rmsprop_centered_momentum",
               [] { return std::make_shared<RMSprop>(RMSpropOptions{.learning_rate = 0.01, .momentum = 0.9, .centered = true}); },
               r});
  r = ref("rmsprop", 0.01);
  r.centered = true;
  c.push_back({"rmsprop_centered",
               [] { return std::make_shared<RMSprop>(RMSpropOptions{.learning_rate = 0.01, .centered = true}); }, r});
  r = ref("rmsprop", 0.01);
  r.momentum = 0.5;
  c.push_back({"rmsprop_momentum",
               [] { return std::make_shared<RMSprop>(RMSpropOptions{.learning_rate = 0.01, .momentum = 0.5}); }, r});
  c.push_back({"adagrad", [] { return std::make_shared<Adagrad>(AdagradOptions{.learning_rate = 0.1}); }, ref("adagrad", 0.1)});
  r = ref("adadelta", 1.0);
  r.rho = 0.95;
  c.push_back({"adadelta", [] { return std::make_shared<Adadelta>(AdadeltaOptions{.learning_rate = 1.0}); }, r});
  c.push_back({"nadam", [] { return std::make_shared<Nadam>(NadamOptions{.learning_rate = 0.1}); }, ref("nadam", 0.1)});
  r = ref("adam", 0.1);
  r.clipvalue = 0.2;
  c.push_back({"adam_clipvalue",
               [] { return std::make_shared<Adam>(AdamOptions{.learning_rate = 0.1, .clipvalue = 0.2}); }, r});
  return c;
}

TEST(Optimizers, EveryOptimizerMatchesTheFloat64ReferenceForThreeSteps) {
  for (Case& c : cases()) {
    for (DType dt : test::kFloatDTypes) {
      auto opt = c.make();
      RefOptimizer ref = c.ref;
      std::vector<std::vector<double>> want = {kP0};
      const auto got = three_steps(*opt, dt);
      for (int t = 0; t < 3; ++t) {
        ref.step(t + 1, want, {kGrads[t]});
        const test::Tolerance tol = dt == float64 ? test::Tolerance{1e-13, 1e-12} : test::tolerance_for(dt);
        EXPECT_TRUE(test::all_close(from_vector(got[t], {.dtype = float64}), want[0], tol))
            << c.name << " " << dt << " step " << t + 1;
      }
    }
  }
}

// Sizes around the chunk (kChunk elements): each parameter's view starts on a chunk boundary.
TEST(Optimizers, OddParameterSizesAroundTheChunkUpdateEveryElement) {
  const std::vector<std::int64_t> sizes = {1, 7, optimizers::kChunk - 1, optimizers::kChunk, optimizers::kChunk + 1, 0};
  std::vector<Tensor> params;
  std::vector<std::vector<double>> want, grads;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const auto p0 = test::uniform_values(sizes[k], -1, 1, 10 + k), g = test::uniform_values(sizes[k], -1, 1, 20 + k);
    params.push_back(make_param(p0, {sizes[k]}, float32, kCpu));
    set_grad_values(params.back(), g);
    want.push_back(p0);
    grads.push_back(g);
  }
  optimizers::Adam adam({.learning_rate = 0.01});
  RefOptimizer ref;
  ref.kind = "adam";
  ref.lr = 0.01;
  for (int t = 1; t <= 2; ++t) {
    adam.apply_gradients(params);
    ref.step(t, want, grads);
  }
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_TRUE(test::all_close(params[k], want[k], test::tolerance_for(float32))) << "size " << sizes[k];
    EXPECT_EQ(params[k].offset() % optimizers::kChunk, 0) << "size " << sizes[k];
  }
}

// ---- clipping ----

TEST(Optimizers, ClipnormScalesEachParameterByItsOwnNorm) {
  // ||g_a|| = 5 > 1 is scaled to norm 1; ||g_b|| = 0.5 < 1 stays.
  Tensor a = make_param({0.0, 0.0}, {2}, float64, kCpu), b = make_param({0.0}, {1}, float64, kCpu);
  set_grad_values(a, {3.0, 4.0});
  set_grad_values(b, {0.5});
  optimizers::SGD sgd({.learning_rate = 1.0, .clipnorm = 1.0});
  sgd.apply_gradients({a, b});
  expect_near_all(a.to_vector<double>(), {-0.6, -0.8}, 1e-15, "a");
  expect_near_all(b.to_vector<double>(), {-0.5}, 1e-15, "b");
}

TEST(Optimizers, GlobalClipnormScalesEveryGradientByTheJointNorm) {
  // Joint norm sqrt(9 + 16 + 0 + 144) = 13, clipped to 2.6: every gradient times 0.2.
  Tensor a = make_param({0.0, 0.0}, {2}, float64, kCpu), b = make_param({0.0, 0.0}, {2}, float64, kCpu);
  set_grad_values(a, {3.0, 4.0});
  set_grad_values(b, {0.0, -12.0});
  optimizers::SGD sgd({.learning_rate = 1.0, .global_clipnorm = 2.6});
  sgd.apply_gradients({a, b});
  expect_near_all(a.to_vector<double>(), {-0.6, -0.8}, 1e-15, "a");
  expect_near_all(b.to_vector<double>(), {0.0, 2.4}, 1e-15, "b");
  // Below the clip norm nothing changes.
  Tensor c = make_param({0.0}, {1}, float64, kCpu);
  set_grad_values(c, {1.0});
  optimizers::SGD loose({.learning_rate = 1.0, .global_clipnorm = 10.0});
  loose.apply_gradients({c});
  EXPECT_DOUBLE_EQ(c.item<double>(), -1.0);
}

TEST(Optimizers, GlobalClipnormSpansParametersOfSeveralDtypes) {
  Tensor a = make_param({0.0, 0.0}, {2}, float32, kCpu), b = make_param({0.0}, {1}, float64, kCpu);
  set_grad_values(a, {3.0, 0.0});
  set_grad_values(b, {4.0});
  optimizers::SGD sgd({.learning_rate = 1.0, .global_clipnorm = 1.0});
  sgd.apply_gradients({a, b});
  expect_near_all(a.to_vector<double>(), {-0.6, 0.0}, 1e-7, "float32 a");
  expect_near_all(b.to_vector<double>(), {-0.8}, 1e-15, "float64 b");
}

TEST(Optimizers, NonFiniteGradientsPropagateAsKerasDoes) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  // global_clipnorm with an infinite norm makes every update NaN (Keras' scale + (n - n)).
  Tensor a = make_param({1.0, 1.0}, {2}, float32, kCpu);
  set_grad_values(a, {inf, 1.0});
  optimizers::SGD clip({.learning_rate = 1.0, .global_clipnorm = 1.0});
  clip.apply_gradients({a});
  for (double v : a.to_vector<double>()) EXPECT_TRUE(std::isnan(v));
  // Without clipping a NaN gradient poisons its element only; clipvalue keeps NaN.
  Tensor b = make_param({1.0, 1.0}, {2}, float32, kCpu);
  set_grad_values(b, {nan, 5.0});
  optimizers::SGD sgd({.learning_rate = 1.0, .clipvalue = 2.0});
  sgd.apply_gradients({b});
  EXPECT_TRUE(std::isnan(b.to_vector<double>()[0]));
  EXPECT_DOUBLE_EQ(b.to_vector<double>()[1], -1.0);
  // Adam with an infinite gradient: m and v infinite, the update inf / inf = NaN.
  Tensor c = make_param({1.0}, {1}, float32, kCpu);
  set_grad_values(c, {inf});
  optimizers::Adam adam;
  adam.apply_gradients({c});
  EXPECT_TRUE(std::isnan(c.item<double>()));
}

TEST(Optimizers, ZeroClipOptionsMeanNoClipping) {
  Tensor a = make_param({0.0}, {1}, float64, kCpu);
  set_grad_values(a, {5.0});
  optimizers::SGD sgd({.learning_rate = 1.0, .clipnorm = 0.0});
  sgd.apply_gradients({a});
  EXPECT_DOUBLE_EQ(a.item<double>(), -5.0);
}

// ---- options ----

TEST(Optimizers, KerasDefaults) {
  const optimizers::Adam adam;
  EXPECT_EQ(adam.name(), "adam");
  EXPECT_DOUBLE_EQ(adam.learning_rate(), 0.001);
  EXPECT_DOUBLE_EQ(adam.options().epsilon, 1e-7);
  EXPECT_DOUBLE_EQ(optimizers::SGD().learning_rate(), 0.01);
  EXPECT_DOUBLE_EQ(optimizers::AdamW().weight_decay().value(), 0.004);
  EXPECT_DOUBLE_EQ(optimizers::RMSprop().options().rho, 0.9);
  EXPECT_DOUBLE_EQ(optimizers::Adagrad().options().initial_accumulator_value, 0.1);
  EXPECT_DOUBLE_EQ(optimizers::Adadelta().options().rho, 0.95);
  EXPECT_DOUBLE_EQ(optimizers::Nadam().learning_rate(), 0.001);
  EXPECT_EQ(optimizers::SGD().name(), "SGD");
}

TEST(Optimizers, InvalidOptionsRaiseValueError) {
  EXPECT_THROW(optimizers::SGD({.clipnorm = 1.0, .clipvalue = 1.0}), ValueError);
  EXPECT_THROW(optimizers::Adam({.clipnorm = 1.0, .global_clipnorm = 1.0}), ValueError);
  EXPECT_THROW(optimizers::SGD({.momentum = 1.5}), ValueError);
  EXPECT_THROW(optimizers::SGD({.clipvalue = -1.0}), ValueError);
  EXPECT_THROW(optimizers::Adam({.learning_rate = std::numeric_limits<double>::quiet_NaN()}), ValueError);
  try {
    optimizers::SGD({.clipnorm = 1.0, .global_clipnorm = 2.0});
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("only one of `clipnorm`, `clipvalue` and `global_clipnorm`"), std::string::npos)
        << e.what();
  }
}

TEST(Optimizers, BadParametersAndGradientsRaiseNamedErrors) {
  optimizers::SGD sgd;
  Tensor p = make_param({1.0, 2.0}, {2}, float32, kCpu);
  EXPECT_THROW(sgd.apply({ones({3})}, {p}), ShapeError);
  EXPECT_THROW(sgd.apply({ones({2}, {.dtype = int32})}, {p}), TypeError);
  set_grad_values(p, {1.0, 1.0});
  EXPECT_THROW(sgd.apply_gradients({p, p}), ValueError);  // duplicate
  Tensor ints = from_vector(std::vector<std::int32_t>{1, 2});
  EXPECT_THROW(sgd.apply_gradients({ints}), TypeError);
  Tensor q = make_param({1.0}, {1}, float32, kCpu);
  EXPECT_THROW(sgd.apply_gradients({q}), ValueError);  // no gradient for any parameter
  EXPECT_THROW(sgd.apply({Tensor()}, {q, p}), ValueError);  // counts differ
}

}  // namespace
}  // namespace kiln
