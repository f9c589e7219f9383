// BatchNormalization and LayerNormalization on cpu: Keras' weights and parameter counts,
// training (batch statistics, moving-statistic updates) against inference (moving
// statistics) and frozen layers, other feature axes, float64 references, gradient checks,
// bad input and configs. Also the parameter counts of Keras' MNIST convnet.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image_test_util.h"
#include "layer_gradcheck.h"
#include "kernels/op_test_util.h"
#include "kiln/core/error.h"
#include "kiln/layers/conv.h"
#include "kiln/layers/core.h"
#include "kiln/layers/network.h"
#include "kiln/layers/normalization.h"
#include "kiln/layers/pooling.h"
#include "kiln/layers/registry.h"
#include "kiln/layers/shape_layers.h"

namespace kiln::layers {
namespace {

using test::seeded_uniform;

// Per-feature statistics of x (rows, C), row-major: mean and biased variance.
struct Stats {
  std::vector<double> mean, var;
};
Stats feature_stats(const std::vector<double>& x, std::int64_t c) {
  const std::int64_t rows = static_cast<std::int64_t>(x.size()) / c;
  Stats s{std::vector<double>(c, 0.0), std::vector<double>(c, 0.0)};
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < c; ++j) s.mean[j] += x[r * c + j] / static_cast<double>(rows);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < c; ++j) {
      const double d = x[r * c + j] - s.mean[j];
      s.var[j] += d * d / static_cast<double>(rows);
    }
  return s;
}

// (x - mean) / sqrt(var + eps) * gamma + beta per feature (last axis).
std::vector<double> normalize(const std::vector<double>& x, std::int64_t c, const std::vector<double>& mean,
                              const std::vector<double>& var, const std::vector<double>& gamma,
                              const std::vector<double>& beta, double eps) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t j = i % static_cast<std::size_t>(c);
    y[i] = (x[i] - mean[j]) / std::sqrt(var[j] + eps) * gamma[j] + beta[j];
  }
  return y;
}

constexpr test::Tolerance kF32{1e-5, 1e-4};

// ---- BatchNormalization ----

TEST(BatchNormalizationLayer, WeightsAndParameterCountsAsKeras) {
  auto bn = BatchNormalization();
  bn->maybe_build({Shape{-1, 26, 26, 64}});
  EXPECT_EQ(bn->count_params(), 256);
  ASSERT_EQ(bn->weights().size(), 4u);
  EXPECT_EQ(bn->weights()[0].name(), bn->name() + "/gamma");
  EXPECT_EQ(bn->weights()[1].name(), bn->name() + "/beta");
  EXPECT_EQ(bn->weights()[2].name(), bn->name() + "/moving_mean");
  EXPECT_EQ(bn->weights()[3].name(), bn->name() + "/moving_variance");
  EXPECT_EQ(bn->trainable_weights().size(), 2u);
  ASSERT_EQ(bn->non_trainable_weights().size(), 2u);
  EXPECT_FALSE(bn->moving_mean().value().requires_grad());
  EXPECT_EQ(bn->moving_variance().value().to_vector<float>(), std::vector<float>(64, 1.f));
  EXPECT_EQ(bn->moving_mean().value().to_vector<float>(), std::vector<float>(64, 0.f));

  auto bare = BatchNormalization({.center = false, .scale = false});
  bare->maybe_build({Shape{-1, 5}});
  EXPECT_EQ(bare->count_params(), 10);
  EXPECT_TRUE(bare->trainable_weights().empty());
  EXPECT_FALSE(bare->gamma().defined());
  EXPECT_FALSE(bare->beta().defined());
}

TEST(BatchNormalizationLayer, TrainingUsesBatchStatisticsAndUpdatesMovingOnes) {
  const Shape xs{3, 4, 5, 6};
  const std::int64_t c = 6;
  auto bn = BatchNormalization({.momentum = 0.9});
  bn->maybe_build({with_unknown_batch(xs)});
  const Tensor gamma = seeded_uniform({c}, 1, float32, test::kHost, 0.5, 2.0);
  const Tensor beta = seeded_uniform({c}, 2);
  bn->gamma().assign(gamma);
  bn->beta().assign(beta);
  const Tensor x = seeded_uniform(xs, 3, float32, test::kHost, -2.0, 5.0);
  const std::vector<double> xv = x.to_vector<double>();
  const Stats s = feature_stats(xv, c);

  const Tensor y = bn(x, /*training=*/true);
  EXPECT_TRUE(test::all_close(y, normalize(xv, c, s.mean, s.var, gamma.to_vector<double>(), beta.to_vector<double>(), 1e-3),
                              kF32));
  // moving = moving * momentum + batch * (1 - momentum), with the biased batch variance, as
  // Keras 3 (kernels/normalization.h).
  std::vector<double> mm(c), mv(c);
  for (std::int64_t j = 0; j < c; ++j) {
    mm[j] = 0.1 * s.mean[j];
    mv[j] = 0.9 + 0.1 * s.var[j];
  }
  EXPECT_TRUE(test::all_close(bn->moving_mean().value(), mm, kF32));
  EXPECT_TRUE(test::all_close(bn->moving_variance().value(), mv, kF32));

  // A second training step compounds.
  (void)bn(x, true);
  for (std::int64_t j = 0; j < c; ++j) {
    mm[j] = mm[j] * 0.9 + 0.1 * s.mean[j];
    mv[j] = mv[j] * 0.9 + 0.1 * s.var[j];
  }
  EXPECT_TRUE(test::all_close(bn->moving_mean().value(), mm, kF32));
  EXPECT_TRUE(test::all_close(bn->moving_variance().value(), mv, kF32));

  // Inference: the moving statistics, which it leaves alone.
  const Tensor yi = bn(x, /*training=*/false);
  EXPECT_TRUE(test::all_close(yi, normalize(xv, c, mm, mv, gamma.to_vector<double>(), beta.to_vector<double>(), 1e-3),
                              kF32));
  EXPECT_TRUE(test::all_close(bn->moving_mean().value(), mm, kF32));
  EXPECT_TRUE(test::all_close(bn->moving_variance().value(), mv, kF32));
}

TEST(BatchNormalizationLayer, FrozenLayerRunsInInferenceModeEvenWhenTraining) {
  auto bn = BatchNormalization();
  bn->maybe_build({Shape{-1, 3}});
  bn->moving_mean().assign(from_vector<float>({1.f, 2.f, 3.f}, {3}));
  bn->moving_variance().assign(from_vector<float>({4.f, 1.f, 0.25f}, {3}));
  bn->set_trainable(false);
  const Tensor x = from_vector<float>({1.f, 2.f, 3.f, 3.f, 3.f, 3.f}, {2, 3});
  const Tensor y = bn(x, /*training=*/true);
  const std::vector<double> ref = normalize(x.to_vector<double>(), 3, {1, 2, 3}, {4, 1, 0.25}, {1, 1, 1}, {0, 0, 0}, 1e-3);
  EXPECT_TRUE(test::all_close(y, ref, kF32));
  EXPECT_EQ(bn->moving_mean().value().to_vector<float>(), (std::vector<float>{1.f, 2.f, 3.f}));
  EXPECT_TRUE(bn->trainable_weights().empty());
}

TEST(BatchNormalizationLayer, NaNAndInfinityStayInTheirFeature) {
  auto bn = BatchNormalization();
  Tensor x = seeded_uniform({4, 3}, 70).clone();
  x.select(0, 2).select(0, 1).fill_(std::nan(""));  // sample 2, feature 1
  const Tensor y = bn(x, /*training=*/true);
  for (std::int64_t r = 0; r < 4; ++r)
    for (std::int64_t f = 0; f < 3; ++f) EXPECT_EQ(std::isnan(y.at<double>({r, f})), f == 1) << r << ", " << f;
  const std::vector<float> mm = bn->moving_mean().value().to_vector<float>();
  EXPECT_TRUE(std::isfinite(mm[0]) && std::isnan(mm[1]) && std::isfinite(mm[2]));
  // Inference: an infinite input gives an infinite output, its neighbours stay finite.
  auto fresh = BatchNormalization();
  Tensor xi = seeded_uniform({2, 3}, 71).clone();
  xi.select(0, 1).select(0, 0).fill_(INFINITY);
  const Tensor yi = fresh(xi, /*training=*/false);
  EXPECT_EQ(yi.at<double>({1, 0}), INFINITY);
  EXPECT_TRUE(std::isfinite(yi.at<double>({1, 1})) && std::isfinite(yi.at<double>({0, 0})));
}

TEST(BatchNormalizationLayer, OtherFeatureAxis) {
  // axis 1 of (N, C, L): statistics per C over N and L.
  const Shape xs{4, 3, 5};
  auto bn = BatchNormalization({.axis = 1, .center = false});
  bn->maybe_build({with_unknown_batch(xs)});
  EXPECT_EQ(bn->gamma().shape(), (Shape{3}));
  const Tensor x = seeded_uniform(xs, 9);
  const Tensor y = bn(x, true);
  ASSERT_EQ(y.shape(), xs);
  // The same through the channels-last form.
  const Tensor xl = x.permute({0, 2, 1}).contiguous();
  const std::vector<double> xlv = xl.to_vector<double>();
  const Stats s = feature_stats(xlv, 3);
  const std::vector<double> ref_last = normalize(xlv, 3, s.mean, s.var, {1, 1, 1}, {0, 0, 0}, 1e-3);
  const Tensor ref = from_vector<double>(ref_last, {4, 5, 3}).permute({0, 2, 1});
  EXPECT_TRUE(test::all_close(y, ref, kF32));
  EXPECT_EQ(bn->compute_output_shape(Shape{-1, 3, 7}), (Shape{-1, 3, 7}));
}

TEST(BatchNormalizationLayer, GradientsMatchCentralDifferencesInBothModes) {
  for (const bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "inference");
    auto bn = BatchNormalization({.dtype = float64});
    const Shape xs{3, 2, 3, 4};
    bn->maybe_build({with_unknown_batch(xs)});
    bn->gamma().assign(seeded_uniform({4}, 20, float64, test::kHost, 0.5, 1.5));
    bn->beta().assign(seeded_uniform({4}, 21, float64));
    bn->moving_variance().assign(seeded_uniform({4}, 22, float64, test::kHost, 0.5, 2.0));
    EXPECT_TRUE(test::layer_gradcheck(bn, {seeded_uniform(xs, 23, float64)}, {.training = training}));
  }
  auto axis1 = BatchNormalization({.axis = 1, .dtype = float64});
  EXPECT_TRUE(test::layer_gradcheck(axis1, {seeded_uniform({5, 3, 2}, 24, float64)}, {.training = true})) << "axis 1";
}

TEST(BatchNormalizationLayer, BadArgumentsAndInputs) {
  EXPECT_THROW(BatchNormalization({.synchronized = true}), ValueError);
  EXPECT_THROW(BatchNormalization({.momentum = 1.5}), ValueError);
  EXPECT_THROW(BatchNormalization({.epsilon = 0}), ValueError);
  EXPECT_THROW(BatchNormalization({.gamma_initializer = "onez"}), ValueError);
  auto bn = BatchNormalization({.axis = 3, .name = "bnx"});
  try {
    bn->maybe_build({Shape{-1, 4, 4}});
    ADD_FAILURE() << "axis 3 of a 3-D input accepted";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), ::testing::HasSubstr("bnx"));
  }
  auto bn2 = BatchNormalization();
  (void)bn2(seeded_uniform({2, 4}, 1));
  EXPECT_THROW(bn2(seeded_uniform({2, 5}, 1)), ShapeError);
  EXPECT_THROW(BatchNormalization()->maybe_build({Shape{-1, -1}}), ShapeError);
}

TEST(BatchNormalizationLayer, ConfigHasKerasKeysAndRoundTrips) {
  auto bn = BatchNormalization({.momentum = 0.9, .epsilon = 1e-5, .center = false, .gamma_regularizer = "l2"});
  EXPECT_EQ(test::keys_of(bn->get_config()),
            test::layer_keys({"axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                              "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                              "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                              "synchronized"}));
  bn->maybe_build({Shape{-1, 8, 8, 3}});
  const LayerRef copy = deserialize_layer(serialize_layer(*bn));
  EXPECT_EQ(copy->get_config(), bn->get_config());
  EXPECT_EQ(copy->count_params(), bn->count_params());
  EXPECT_EQ(copy->get_config()["momentum"], 0.9);
  EXPECT_EQ(copy->get_config()["axis"], -1);
}

// ---- LayerNormalization ----

// Normalizes each row of (rows, p) over its p values.
std::vector<double> layer_norm_rows(const std::vector<double>& x, std::int64_t p, double eps, bool rms) {
  std::vector<double> y(x.size());
  const std::int64_t rows = static_cast<std::int64_t>(x.size()) / p;
  for (std::int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (std::int64_t j = 0; j < p; ++j) mean += x[r * p + j] / static_cast<double>(p);
    for (std::int64_t j = 0; j < p; ++j) var += (x[r * p + j] - mean) * (x[r * p + j] - mean) / static_cast<double>(p);
    for (std::int64_t j = 0; j < p; ++j) y[r * p + j] = (x[r * p + j] - (rms ? 0 : mean)) / std::sqrt(var + eps);
  }
  return y;
}

TEST(LayerNormalizationLayer, LastAxisMatchesReferenceWithScaleAndCenter) {
  auto ln = LayerNormalization();
  const Shape xs{2, 3, 7};
  ln->maybe_build({with_unknown_batch(xs)});
  EXPECT_EQ(ln->count_params(), 14);
  EXPECT_EQ(ln->weights()[0].name(), ln->name() + "/gamma");
  const Tensor g = seeded_uniform({7}, 30), b = seeded_uniform({7}, 31);
  ln->gamma().assign(g);
  ln->beta().assign(b);
  const Tensor x = seeded_uniform(xs, 32, float32, test::kHost, -3, 3);
  std::vector<double> ref = layer_norm_rows(x.to_vector<double>(), 7, 1e-3, false);
  const auto gv = g.to_vector<double>(), bv = b.to_vector<double>();
  for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = ref[i] * gv[i % 7] + bv[i % 7];
  EXPECT_TRUE(test::all_close(ln(x), ref, kF32));
}

TEST(LayerNormalizationLayer, SeveralAxesInTheGivenOrder) {
  // axis {2, 1} of (N, A, B, C): each (n, c) normalized over A x B; gamma is (B, A).
  const Shape xs{2, 3, 4, 2};
  auto ln = LayerNormalization({.axis = {2, 1}});
  ln->maybe_build({with_unknown_batch(xs)});
  ASSERT_EQ(ln->gamma().shape(), (Shape{4, 3}));
  const Tensor g = seeded_uniform({4, 3}, 40);
  ln->gamma().assign(g);
  const Tensor x = seeded_uniform(xs, 41);
  const Tensor y = ln(x);
  ASSERT_EQ(y.shape(), xs);
  // Reference: move to (N, C, B, A), normalize rows of 12, scale by gamma (B, A) row-major.
  const Tensor xp = x.permute({0, 3, 2, 1}).contiguous();
  std::vector<double> ref = layer_norm_rows(xp.to_vector<double>(), 12, 1e-3, false);
  const auto gv = g.to_vector<double>();
  for (std::size_t i = 0; i < ref.size(); ++i) ref[i] *= gv[i % 12];
  const Tensor expected = from_vector<double>(ref, {2, 2, 4, 3}).permute({0, 3, 2, 1});
  EXPECT_TRUE(test::all_close(y, expected, kF32));

  // axis {1, 2, 3}: the whole sample, gamma (H, W, C).
  auto whole = LayerNormalization({.axis = {1, 2, 3}, .center = false});
  const Tensor yw = whole(x);
  EXPECT_EQ(whole->gamma().shape(), (Shape{3, 4, 2}));
  EXPECT_TRUE(test::all_close(yw, layer_norm_rows(x.to_vector<double>(), 24, 1e-3, false), kF32));
}

TEST(LayerNormalizationLayer, RmsScalingUsesOnlyGamma) {
  auto ln = LayerNormalization({.epsilon = 1e-2, .rms_scaling = true});
  const Tensor x = seeded_uniform({3, 5}, 50, float32, test::kHost, 0, 4);
  const Tensor y = ln(x);
  ASSERT_EQ(ln->weights().size(), 1u);
  EXPECT_EQ(ln->weights()[0].name(), ln->name() + "/gamma");
  // Keras' formula: x * rsqrt(var(x) + epsilon) * gamma (gamma = 1).
  EXPECT_TRUE(test::all_close(y, layer_norm_rows(x.to_vector<double>(), 5, 1e-2, true), kF32));
}

TEST(LayerNormalizationLayer, GradientsMatchCentralDifferences) {
  const std::vector<std::pair<const char*, LayerRef>> cases = {
      {"last axis", LayerNormalization({.dtype = float64})},
      {"axes {1, 2}", LayerNormalization({.axis = {1, 2}, .dtype = float64})},
      {"axes {2, 1}", LayerNormalization({.axis = {2, 1}, .dtype = float64})},
      {"rms_scaling", LayerNormalization({.rms_scaling = true, .dtype = float64})},
  };
  std::uint64_t seed = 60;
  for (const auto& [what, layer] : cases) {
    SCOPED_TRACE(what);
    const Shape xs{2, 3, 4};
    layer->maybe_build({with_unknown_batch(xs)});
    for (const Variable& v : layer->trainable_weights()) v.assign(seeded_uniform(v.shape(), ++seed, float64));
    EXPECT_TRUE(test::layer_gradcheck(layer, {seeded_uniform(xs, ++seed, float64)}));
  }
}

TEST(LayerNormalizationLayer, BadAxesAndInputs) {
  EXPECT_THROW(LayerNormalization({.axis = std::vector<std::int64_t>{}}), ValueError);
  EXPECT_THROW(LayerNormalization({.epsilon = -1}), ValueError);
  EXPECT_THROW(LayerNormalization({.axis = 3})->maybe_build({Shape{-1, 4, 4}}), ShapeError);
  EXPECT_THROW(LayerNormalization({.axis = {1, -2}})->maybe_build({Shape{-1, 4, 4}}), ValueError);  // listed twice
  auto ln = LayerNormalization({.name = "lnx"});
  (void)ln(seeded_uniform({2, 4}, 1));
  try {
    (void)ln(seeded_uniform({2, 5}, 1));
    ADD_FAILURE() << "feature count change accepted";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), ::testing::HasSubstr("lnx"));
  }
}

TEST(LayerNormalizationLayer, ConfigHasKerasKeysAndRoundTrips) {
  auto ln = LayerNormalization({.axis = {1, 2}, .epsilon = 1e-5, .beta_regularizer = "l1"});
  const nlohmann::json c = ln->get_config();
  EXPECT_EQ(test::keys_of(c),
            test::layer_keys({"axis", "epsilon", "center", "scale", "rms_scaling", "beta_initializer",
                              "gamma_initializer", "beta_regularizer", "gamma_regularizer", "beta_constraint",
                              "gamma_constraint"}));
  EXPECT_EQ(c["axis"], nlohmann::json::array({1, 2}));
  EXPECT_EQ(LayerNormalization()->get_config()["axis"], -1);
  ln->maybe_build({Shape{-1, 3, 4, 5}});
  const LayerRef copy = deserialize_layer(serialize_layer(*ln));
  EXPECT_EQ(copy->get_config(), c);
  EXPECT_EQ(copy->count_params(), 24);
}

// ---- a model ----

TEST(ImageLayers, KerasMnistConvnetParameterCounts) {
  // keras.io's "Simple MNIST convnet", with a BatchNormalization after the second conv.
  Network model({Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {28, 28, 1}}), MaxPooling2D({2, 2}),
                 Conv2D(64, {3, 3}, {.activation = "relu"}), BatchNormalization(), MaxPooling2D({2, 2}), Flatten(),
                 Dense(10, {.activation = "softmax"})});
  ASSERT_TRUE(model.built());
  const auto& l = model.layers();
  ASSERT_EQ(l.size(), 7u);
  EXPECT_EQ(l[0]->count_params(), 320);
  EXPECT_EQ(l[2]->count_params(), 18496);
  EXPECT_EQ(l[3]->count_params(), 256);
  EXPECT_EQ(l[3]->non_trainable_weights().size(), 2u);
  EXPECT_EQ(l[6]->count_params(), 1600 * 10 + 10);
  EXPECT_EQ(model.output_shape(), (Shape{-1, 10}));
  EXPECT_EQ(model.count_params(), 320 + 18496 + 256 + 16010);
  std::int64_t non_trainable = 0;
  for (const Variable& v : model.non_trainable_weights()) non_trainable += v.numel();
  EXPECT_EQ(non_trainable, 128);
  const std::string summary = model.summary();
  EXPECT_THAT(summary, ::testing::HasSubstr("(None, 26, 26, 32)"));
  EXPECT_THAT(summary, ::testing::HasSubstr("18,496"));
  EXPECT_THAT(summary, ::testing::HasSubstr("(None, 5, 5, 64)"));
  // Eager: a batch of 2 images.
  const Tensor y = model.call(seeded_uniform({2, 28, 28, 1}, 5), /*training=*/true);
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
}

}  // namespace
}  // namespace kiln::layers
