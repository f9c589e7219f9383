// The optimizers' flat buffers and state on cpu: packing re-points parameters (autograd
// kept), repacking carries slots over, skipped parameters stay untouched, schedules drive
// the learning rate, state() / load_state() round trips, get() and configs by name.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kernels/op_test_util.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/training/optimizers.h"
#include "optimizer_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::make_param;
using test::RefOptimizer;
using test::set_grad_values;

TEST(OptimizerFlatBuffers, PackingRepointsParametersAndKeepsAutograd) {
  // A transposed (non-contiguous) leaf, and one that already has a gradient.
  Tensor w = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = float32}).t();
  w.requires_grad_(true);
  Tensor b = make_param({0.5, -0.5}, {2}, float32, kCpu);
  const std::vector<double> w_values = w.to_vector<double>();
  Tensor alias = w;  // another handle (a layer's Variable) shares the TensorImpl
  optimizers::SGD sgd({.learning_rate = 0.0});
  set_grad_values(w, std::vector<double>(6, 1.0));
  set_grad_values(b, {1.0, 1.0});
  sgd.apply_gradients({w, b});
  EXPECT_TRUE(w.shares_storage(b));
  EXPECT_TRUE(alias.shares_storage(b));
  EXPECT_TRUE(w.is_contiguous());
  EXPECT_EQ(w.to_vector<double>(), w_values);
  EXPECT_EQ(b.offset() - w.offset(), optimizers::kChunk);
  EXPECT_TRUE(w.requires_grad() && w.is_leaf());
  EXPECT_TRUE(w.grad().defined());
  // A backward after packing still reaches the re-pointed leaves.
  zero_grad({w, b});
  backward(sum(mul(w, 2.0)) + sum(b));
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().to_vector<double>(), std::vector<double>(6, 2.0));
}

TEST(OptimizerFlatBuffers, ParametersWithoutGradientAreSkippedEntirely) {
  Tensor a = make_param({1.0, 2.0}, {2}, float32, kCpu), b = make_param({3.0}, {1}, float32, kCpu);
  optimizers::Adam adam({.learning_rate = 0.1, .weight_decay = 0.5, .global_clipnorm = 1.0});
  set_grad_values(a, {0.3, 0.4});
  set_grad_values(b, {100.0});
  adam.apply_gradients({a, b});
  const std::vector<double> b_after = b.to_vector<double>(), m_b = adam.slot(b, "momentum").to_vector<double>();
  // Step 2: b has no gradient: no update, no decay, its slots unchanged, and its old
  // gradient does not enter the global norm (a's gradient alone, norm 0.5, is not clipped).
  zero_grad({b});
  set_grad_values(a, {0.3, 0.4});
  const std::vector<double> m_a = adam.slot(a, "momentum").to_vector<double>();
  adam.apply_gradients({a, b});
  EXPECT_EQ(b.to_vector<double>(), b_after);
  EXPECT_EQ(adam.slot(b, "momentum").to_vector<double>(), m_b);
  const std::vector<double> m_a2 = adam.slot(a, "momentum").to_vector<double>();
  EXPECT_NEAR(m_a2[0], m_a[0] + (0.3 - m_a[0]) * 0.1, 1e-7);
}

TEST(OptimizerFlatBuffers, RepackingCarriesSlotsOfKnownParametersOver) {
  Tensor a = make_param({1.0, -1.0}, {2}, float64, kCpu), c = make_param({2.0}, {1}, float64, kCpu);
  optimizers::Adam adam({.learning_rate = 0.1});
  RefOptimizer ref;
  ref.kind = "adam";
  ref.lr = 0.1;
  std::vector<std::vector<double>> want = {{1.0, -1.0}};
  set_grad_values(a, {0.5, 0.25});
  adam.apply_gradients({a});
  ref.step(1, want, {{0.5, 0.25}});
  // A new list (c joins, e.g. a layer unfrozen): a keeps its m and v.
  set_grad_values(a, {-0.5, 1.0});
  set_grad_values(c, {1.0});
  adam.apply_gradients({c, a});
  ref.step(2, want, {{-0.5, 1.0}});
  EXPECT_TRUE(test::all_close(a, want[0], {1e-14, 1e-13}));
  EXPECT_TRUE(a.shares_storage(c));
  // A parameter moved off its view (someone re-pointed it) is repacked from its new values.
  a.unsafe_impl().storage = a.clone().storage();
  a.unsafe_impl().offset = 0;
  set_grad_values(a, {0.0, 0.0});
  set_grad_values(c, {0.0});
  adam.apply_gradients({c, a});
  EXPECT_TRUE(a.shares_storage(c));
}

TEST(OptimizerSchedules, TheScheduleDrivesTheLearningRateByIterations) {
  optimizers::SGD sgd({.learning_rate = schedules::PiecewiseConstantDecay({1}, {1.0, 0.1})});
  Tensor p = make_param({0.0}, {1}, float64, kCpu);
  std::vector<double> after;
  for (int t = 0; t < 3; ++t) {
    EXPECT_DOUBLE_EQ(sgd.learning_rate(), t <= 1 ? 1.0 : 0.1) << "iteration " << t;
    set_grad_values(p, {1.0});
    sgd.apply_gradients({p});
    after.push_back(p.item<double>());
  }
  EXPECT_DOUBLE_EQ(after[0], -1.0);
  EXPECT_DOUBLE_EQ(after[1], -2.0);
  EXPECT_DOUBLE_EQ(after[2], -2.1);
  EXPECT_THROW(sgd.set_learning_rate(0.5), TypeError);
  optimizers::Adam adam;
  adam.set_learning_rate(0.25);
  EXPECT_DOUBLE_EQ(adam.learning_rate(), 0.25);
}

TEST(OptimizerState, StateRoundTripsIntoAFreshOptimizer) {
  auto run = [](optimizers::Optimizer& opt, Tensor& p, int steps) {
    for (int t = 0; t < steps; ++t) {
      set_grad_values(p, {0.1 * (t + 1), -0.3, 0.7});
      opt.apply_gradients({p});
    }
  };
  Tensor p1 = make_param({1.0, 2.0, 3.0}, {3}, float32, kCpu);
  optimizers::Nadam first({.learning_rate = 0.01});
  run(first, p1, 2);
  const std::vector<optimizers::NamedTensor> saved = first.state();
  std::vector<std::string> names;
  for (const auto& [name, t] : saved) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"iterations", "learning_rate", "u_product", "momentum/0", "velocity/0"}));
  // A fresh optimizer loads before it is built (the slots wait for the packing).
  Tensor p2 = p1.detach().clone();
  p2.requires_grad_(true);
  optimizers::Nadam second({.learning_rate = 0.5});
  second.load_state(saved);
  EXPECT_EQ(second.iterations(), 2);
  EXPECT_DOUBLE_EQ(second.learning_rate(), 0.01);
  run(first, p1, 1);
  set_grad_values(p2, {0.1, -0.3, 0.7});
  second.apply_gradients({p2});
  EXPECT_EQ(p1.to_vector<float>(), p2.to_vector<float>());
  // Errors name the entry.
  EXPECT_THROW(second.load_state({{"momentum/0", zeros({4})}}), ShapeError);
  EXPECT_THROW(second.load_state({{"momentum/3", zeros({3})}}), ValueError);
  EXPECT_THROW(second.load_state({{"accumulator/0", zeros({3})}}), ValueError);
  EXPECT_THROW(second.load_state({{"bogus", zeros({})}}), ValueError);
}

TEST(OptimizersByName, GetReturnsKerasDefaultsAndListsValidNames) {
  EXPECT_EQ(optimizers::get("adam")->class_name(), "Adam");
  EXPECT_EQ(optimizers::get("RMSprop")->name(), "rmsprop");
  EXPECT_EQ(optimizers::get("sgd")->class_name(), "SGD");
  for (const char* n : {"adamw", "adagrad", "adadelta", "nadam"}) EXPECT_NO_THROW(optimizers::get(n)) << n;
  try {
    optimizers::get("adamm");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("adamm"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'rmsprop'"), std::string::npos) << msg;
  }
  const optimizers::OptimizerRef by_name = "nadam";
  EXPECT_EQ(by_name.resolve()->class_name(), "Nadam");
  const optimizers::OptimizerRef by_object = optimizers::SGD({.momentum = 0.9});
  EXPECT_EQ(by_object.resolve()->slot_specs().size(), 1u);
}

TEST(OptimizersByName, ConfigsRoundTripThroughSerialize) {
  const optimizers::Adam adam({.learning_rate = schedules::ExponentialDecay(0.1, 100, 0.5, true),
                               .amsgrad = true, .clipnorm = 2.0});
  const nlohmann::json j = optimizers::serialize(adam);
  EXPECT_EQ(j["class_name"], "Adam");
  EXPECT_EQ(j["config"]["amsgrad"], true);
  EXPECT_TRUE(j["config"]["clipvalue"].is_null());
  EXPECT_EQ(j["config"]["learning_rate"]["class_name"], "ExponentialDecay");
  const auto back = optimizers::deserialize(j);
  EXPECT_EQ(back->get_config(), adam.get_config());
  EXPECT_DOUBLE_EQ(back->learning_rate(), 0.1);
  const optimizers::RMSprop rms({.momentum = 0.5, .centered = true, .weight_decay = 0.01});
  EXPECT_EQ(optimizers::deserialize(optimizers::serialize(rms))->get_config(), rms.get_config());
  EXPECT_THROW(optimizers::deserialize(nlohmann::json{{"class_name", "Lion"}}), ValueError);
}

}  // namespace
}  // namespace kiln
