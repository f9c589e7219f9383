// Regularizers and constraints (layers/regularizers.h): penalties and projections
// computed by hand, their use through layers (regularization_loss, apply_constraints),
// names and JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/layers/core.h"
#include "kiln/layers/network.h"
#include "kiln/layers/regularizers.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

constexpr TensorOptions kF64{.dtype = DType::float64, .device = Device::cpu()};

Tensor w4() { return from_vector<double>({1, -2, 3, -4}, Shape{2, 2}, kF64); }

TEST(Regularizers, PenaltiesByHand) {
  // sum|w| = 10, sum w^2 = 30.
  EXPECT_NEAR((*regularizers::L1())(w4()).item<double>(), 0.01 * 10, 1e-15);
  EXPECT_NEAR((*regularizers::L2())(w4()).item<double>(), 0.01 * 30, 1e-15);
  EXPECT_NEAR((*regularizers::L1L2(0.5, 0.25))(w4()).item<double>(), 5 + 7.5, 1e-13);
  EXPECT_NEAR((*regularizers::get("l1_l2"))(w4()).item<double>(), 0.1 + 0.3, 1e-15);
  EXPECT_EQ((*regularizers::L1L2())(w4()).item<double>(), 0.0);  // Keras' class defaults are 0
  EXPECT_EQ((*regularizers::get("l2"))(w4()).shape(), Shape{});
}

TEST(Regularizers, LayerLossesAreSummedAndDifferentiable) {
  auto d = layers::Dense(2, {.kernel_regularizer = "l2", .bias_regularizer = regularizers::L1(0.5),
                             .dtype = DType::float64});
  (void)d(ones({1, 2}, kF64));
  d->set_weights({w4(), from_vector<double>({0.5, -1.5}, kF64)});
  const Tensor loss = d->regularization_loss();
  EXPECT_EQ(loss.dtype(), DType::float32);
  EXPECT_NEAR(loss.item<double>(), 0.01 * 30 + 0.5 * 2.0, 1e-6);
  backward(loss);
  // d(0.01 * sum w^2)/dw = 0.02 w; d(0.5 * sum|b|)/db = 0.5 sign(b).
  const auto gw = d->kernel().grad().to_vector<double>();
  const auto wv = w4().to_vector<double>();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(gw[i], 0.02 * wv[i], 1e-7);
  EXPECT_EQ(d->bias().grad().to_vector<double>(), (std::vector<double>{0.5, -0.5}));
  // No regularizers: a zero scalar.
  auto plain = layers::Dense(2);
  (void)plain(ones({1, 2}, {.device = Device::cpu()}));
  EXPECT_EQ(plain->regularization_loss().item<double>(), 0.0);
}

TEST(Regularizers, ANetworkCountsASharedLayerOnce) {
  auto shared = layers::Dense(3, {.use_bias = false, .kernel_initializer = "ones",
                                  .kernel_regularizer = regularizers::L1(1.0)});
  auto in = layers::Input({3});
  auto out = shared(shared(in));
  layers::Network net(in, out);
  EXPECT_NEAR(net.regularization_loss().item<double>(), 9.0, 1e-6);
}

TEST(Regularizers, UnknownNamesListTheValidOnes) {
  try {
    (void)regularizers::get("l3");
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("unknown regularizer 'l3'; valid names: l1, l1_l2, l2"));
  }
  const nlohmann::json j = regularizers::serialize(*regularizers::L2(0.1));
  EXPECT_EQ(j["class_name"], "L2");
  EXPECT_EQ(j["config"]["l2"], 0.1);
  EXPECT_NEAR((*regularizers::deserialize(j))(w4()).item<double>(), 3.0, 1e-14);
  EXPECT_EQ(regularizers::deserialize(nullptr), nullptr);
}

TEST(Constraints, ProjectionsByHand) {
  // Column norms of [[3, 0], [4, 1]] (axis 0): 5 and 1.
  const Tensor w = from_vector<double>({3, 0, 4, 1}, Shape{2, 2}, kF64);
  const double eps = 1e-7;
  const auto mn = (*constraints::MaxNorm({.max_value = 2}))(w).to_vector<double>();
  EXPECT_NEAR(mn[0], 3 * 2 / (eps + 5), 1e-12);
  EXPECT_NEAR(mn[2], 4 * 2 / (eps + 5), 1e-12);
  EXPECT_NEAR(mn[3], 1 * 1 / (eps + 1), 1e-12);  // under the limit: unchanged up to eps
  const auto un = (*constraints::UnitNorm())(w).to_vector<double>();
  EXPECT_NEAR(un[0], 0.6, 1e-6);
  EXPECT_NEAR(un[2], 0.8, 1e-6);
  // Row norms (axis 1): 3 and sqrt(17).
  const auto un1 = (*constraints::UnitNorm({1}))(w).to_vector<double>();
  EXPECT_NEAR(un1[0], 1.0, 1e-6);
  EXPECT_NEAR(un1[2], 4 / std::sqrt(17.0), 1e-6);
  const auto nn = (*constraints::NonNeg())(from_vector<double>({-1, 0, 2}, kF64)).to_vector<double>();
  EXPECT_EQ(nn, (std::vector<double>{0, 0, 2}));
  // MinMaxNorm(0.5, 2, rate 0.5): norm 5 -> 0.5 * 2 + 0.5 * 5 = 3.5; norm 1 -> 1.
  const auto mm = (*constraints::MinMaxNorm({.min_value = 0.5, .max_value = 2, .rate = 0.5}))(w).to_vector<double>();
  EXPECT_NEAR(mm[0], 3 * 3.5 / (eps + 5), 1e-12);
  EXPECT_NEAR(mm[3], 1.0, 1e-6);
}

TEST(Constraints, ApplyConstraintsProjectsWeightsInPlace) {
  auto d = layers::Dense(2, {.kernel_constraint = "non_neg", .bias_constraint = constraints::MaxNorm({.max_value = 1}),
                             .dtype = DType::float64});
  (void)d(ones({1, 2}, kF64));
  d->set_weights({w4(), from_vector<double>({3, 4}, kF64)});
  const Tensor before = d->kernel().value();
  d->apply_constraints();
  EXPECT_TRUE(d->kernel().value().is_same(before));  // the same leaf, updated in place
  EXPECT_TRUE(before.requires_grad());
  EXPECT_EQ(before.to_vector<double>(), (std::vector<double>{1, 0, 3, 0}));
  const auto b = d->bias().value().to_vector<double>();
  EXPECT_NEAR(b[0], 0.6, 1e-6);
  EXPECT_NEAR(b[1], 0.8, 1e-6);
}

TEST(Constraints, NamesAndJson) {
  EXPECT_EQ(constraints::get("max_norm")->class_name(), "MaxNorm");
  EXPECT_EQ(constraints::get("unit_norm")->class_name(), "UnitNorm");
  try {
    (void)constraints::get("positive");
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("valid names: max_norm, min_max_norm, non_neg, unit_norm"));
  }
  const nlohmann::json j = constraints::serialize(*constraints::MaxNorm({.max_value = 3, .axis = {0, 1, 2}}));
  EXPECT_EQ(j["config"]["max_value"], 3.0);
  EXPECT_EQ(j["config"]["axis"], nlohmann::json({0, 1, 2}));
  EXPECT_EQ(constraints::deserialize(j)->get_config(), j["config"]);
  EXPECT_THROW((void)(*constraints::MaxNorm({.axis = {2}}))(w4()), IndexError);
}

}  // namespace
}  // namespace kiln
