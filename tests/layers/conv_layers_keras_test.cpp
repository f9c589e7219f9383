// The convolution layers' Keras conventions on cpu: initializers and constraints working in
// Keras' kernel layout, the layout conversions, regularizers, bad arguments and inputs
// (errors naming the layer), and configs with Keras' keys that rebuild the same layer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image_test_util.h"
#include "kernels/op_test_util.h"
#include "kiln/core/error.h"
#include "kiln/layers/conv.h"
#include "kiln/layers/initializers.h"
#include "kiln/layers/registry.h"
#include "kiln/layers/regularizers.h"

namespace kiln::layers {
namespace {

using test::kHost;
using test::seeded_uniform;

// ---- initializers and constraints see Keras' layout ----

TEST(ConvLayers, InitializersDrawInKerasShapeSoFansAndValuesMatchKeras) {
  auto conv = Conv2D(16, 3, {.kernel_initializer = initializers::HeUniform({.seed = 7})});
  conv->maybe_build({Shape{-1, 9, 9, 8}});
  const Tensor keras = (*initializers::HeUniform({.seed = 7}))({3, 3, 8, 16}, {.device = kHost});
  EXPECT_TRUE(test::all_close(conv->kernel().value(), kernel_from_keras(keras), {0, 0}));
  // fan_in = 3 * 3 * 8 (Keras), not 3 * 3 * 16 (the OHWI shape read as HWIO): limit sqrt(6 / 72).
  const std::vector<float> w = conv->kernel().value().to_vector<float>();
  float max_abs = 0;
  for (float v : w) max_abs = std::max(max_abs, std::fabs(v));
  EXPECT_LE(max_abs, std::sqrt(6.0 / 72));
  EXPECT_GT(max_abs, 0.9 * std::sqrt(6.0 / 72));

  auto dw = DepthwiseConv2D(3, {.depth_multiplier = 2, .depthwise_initializer = initializers::GlorotUniform({.seed = 3})});
  dw->maybe_build({Shape{-1, 6, 6, 5}});
  const Tensor dk = (*initializers::GlorotUniform({.seed = 3}))({3, 3, 5, 2}, {.device = kHost});
  EXPECT_TRUE(test::all_close(dw->kernel().value(), depthwise_kernel_from_keras(dk), {0, 0}));

  auto tr = Conv2DTranspose(4, 2, {.kernel_initializer = initializers::LecunNormal({.seed = 9})});
  tr->maybe_build({Shape{-1, 3, 3, 6}});
  const Tensor tk = (*initializers::LecunNormal({.seed = 9}))({2, 2, 4, 6}, {.device = kHost});
  EXPECT_TRUE(test::all_close(tr->kernel().value(), kernel_from_keras(tk), {0, 0}));
}

TEST(ConvLayers, ConstraintsApplyInKerasLayout) {
  // MaxNorm over Keras' axes (0, 1, 2) of (kh, kw, in, filters): each filter's norm <= 0.5.
  auto conv = Conv2D(3, 2, {.kernel_constraint = constraints::MaxNorm({.max_value = 0.5, .axis = {0, 1, 2}})});
  conv->maybe_build({Shape{-1, 4, 4, 2}});
  std::vector<float> values(3 * 2 * 2 * 2);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 3 + 1);
  conv->kernel().assign(from_vector<float>(values, {3, 2, 2, 2}));
  conv->apply_constraints();
  const Tensor k = conv->kernel().value();
  for (std::int64_t f = 0; f < 3; ++f) {
    const std::vector<double> filter = k.select(0, f).to_vector<double>();
    double sq = 0;
    for (double v : filter) sq += v * v;
    EXPECT_NEAR(std::sqrt(sq), 0.5, 1e-5) << "filter " << f;
  }
}

TEST(ConvLayers, RegularizersAddTheirPenalty) {
  auto conv = Conv2D(2, 1, {.kernel_regularizer = regularizers::L2(0.5), .bias_regularizer = "l1"});
  conv->maybe_build({Shape{-1, 2, 2, 1}});
  conv->kernel().assign(from_vector<float>({1.f, -2.f}, {2, 1, 1, 1}));
  conv->bias().assign(from_vector<float>({3.f, -1.f}, {2}));
  EXPECT_NEAR(conv->regularization_loss().item<double>(), 0.5 * 5 + 0.01 * 4, 1e-6);
}

TEST(ConvLayers, KernelLayoutConversionsRoundTrip) {
  const Tensor k = seeded_uniform({3, 2, 4, 5}, 11);  // Keras (kh, kw, in, out)
  const Tensor kiln = kernel_from_keras(k);
  EXPECT_EQ(kiln.shape(), (Shape{5, 3, 2, 4}));
  EXPECT_EQ(kiln.at<float>({4, 2, 1, 3}), k.at<float>({2, 1, 3, 4}));
  EXPECT_TRUE(test::all_close(kernel_to_keras(kiln), k, {0, 0}));
  const Tensor d = seeded_uniform({2, 3, 4, 3}, 12);  // Keras depthwise (kh, kw, in, dm)
  const Tensor dk = depthwise_kernel_from_keras(d);
  EXPECT_EQ(dk.shape(), (Shape{12, 2, 3, 1}));
  EXPECT_EQ(dk.at<float>({2 * 3 + 1, 1, 2, 0}), d.at<float>({1, 2, 2, 1}));  // channel c * dm + m
  EXPECT_TRUE(test::all_close(depthwise_kernel_to_keras(dk, 3), d, {0, 0}));
  EXPECT_THROW(kernel_from_keras(seeded_uniform({3, 3, 2}, 1)), ShapeError);
  EXPECT_THROW(depthwise_kernel_to_keras(dk, 5), ShapeError);
}

// ---- bad arguments and inputs ----

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(ConvLayers, BadArgumentsAndInputsRaiseErrorsNamingTheLayer) {
  EXPECT_THROW(Conv2D(0, 3), ValueError);
  EXPECT_THROW(Conv2D(6, 3, {.groups = 4}), ValueError);
  EXPECT_THROW(Conv2D(4, 3, {.strides = 2, .dilation_rate = 2}), ValueError);
  EXPECT_THROW(Conv2D(4, {3, 0}), ValueError);
  EXPECT_THROW(Conv2D(4, 3, {.padding = "full"}), ValueError);
  EXPECT_THROW(Conv2D(4, 3, {.data_format = "channels_first"}), ValueError);
  EXPECT_THROW(Conv2D(4, 3, {.kernel_initializer = "glorot_uniformm"}), ValueError);
  EXPECT_THAT(error_of([] { Conv2D(4, 3, {.activation = "rleu", .name = "c9"}); }), ::testing::HasSubstr("c9"));
  EXPECT_THROW(DepthwiseConv2D(3, {.depth_multiplier = 0}), ValueError);
  EXPECT_THROW(Conv2DTranspose(4, 3, {.strides = 2, .output_padding = {2, 0}}), ValueError);
  EXPECT_NO_THROW(Conv2D(4, 3, {.padding = "SAME"}));  // Keras accepts any case

  auto conv = Conv2D(4, 3, {.name = "convx"});
  const std::string rank = error_of([&] { conv(seeded_uniform({2, 8, 8}, 1)); });
  EXPECT_THAT(rank, ::testing::HasSubstr("convx"));
  EXPECT_THAT(rank, ::testing::HasSubstr("(None, 8, 8)"));  // built from the shape, batch unknown
  conv(seeded_uniform({1, 5, 5, 3}, 2));
  const std::string channels = error_of([&] { conv(seeded_uniform({1, 5, 5, 2}, 3)); });
  EXPECT_THAT(channels, ::testing::HasSubstr("convx"));
  EXPECT_THAT(channels, ::testing::HasSubstr("3 channels"));
  EXPECT_THROW(conv(seeded_uniform({1, 5, 5, 2}, 3)), ShapeError);
  EXPECT_THROW(conv(seeded_uniform({1, 2, 5, 3}, 4)), ShapeError);  // smaller than the kernel
  EXPECT_THROW(Conv2D(4, 3)->compute_output_shape({-1, 2, 2, 3}), ShapeError);
  EXPECT_THROW(Conv2D(4, 3, {.groups = 2})->maybe_build({Shape{-1, 5, 5, 3}}), ShapeError);
  EXPECT_THROW(Conv2D(4, 3)->maybe_build({Shape{-1, 5, 5, -1}}), ShapeError);
}

// ---- configs ----

TEST(ConvLayers, ConfigsHaveKerasKeys) {
  EXPECT_EQ(test::keys_of(Conv2D(4, 3)->get_config()),
            test::layer_keys({"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                              "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                              "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"}));
  EXPECT_EQ(test::keys_of(DepthwiseConv2D(3)->get_config()),
            test::layer_keys({"kernel_size", "strides", "padding", "depth_multiplier", "data_format", "dilation_rate",
                              "activation", "use_bias", "depthwise_initializer", "bias_initializer",
                              "depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                              "depthwise_constraint", "bias_constraint"}));
  EXPECT_EQ(test::keys_of(SeparableConv2D(4, 3)->get_config()),
            test::layer_keys({"filters", "kernel_size", "strides", "padding", "data_format", "depth_multiplier",
                              "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                              "pointwise_initializer", "bias_initializer", "depthwise_regularizer",
                              "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
                              "depthwise_constraint", "pointwise_constraint", "bias_constraint"}));
  // Keras 3's keys plus output_padding (see Conv2DTransposeLayer::get_config).
  EXPECT_EQ(test::keys_of(Conv2DTranspose(4, 3)->get_config()),
            test::layer_keys({"filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
                              "dilation_rate", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                              "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                              "bias_constraint"}));
  const nlohmann::json c =
      Conv2D(32, {3, 5}, {.strides = 2, .padding = "Same", .activation = "relu", .kernel_regularizer = "l2"})->get_config();
  EXPECT_EQ(c["kernel_size"], nlohmann::json::array({3, 5}));
  EXPECT_EQ(c["strides"], nlohmann::json::array({2, 2}));
  EXPECT_EQ(c["padding"], "same");
  EXPECT_EQ(c["data_format"], "channels_last");
  EXPECT_EQ(c["activation"], "relu");
  EXPECT_EQ(c["kernel_initializer"]["class_name"], "GlorotUniform");
  EXPECT_EQ(c["bias_initializer"]["class_name"], "Zeros");
  EXPECT_EQ(c["kernel_regularizer"]["class_name"], "L2");
  EXPECT_TRUE(c["bias_regularizer"].is_null());
  EXPECT_TRUE(Conv2DTranspose(4, 3)->get_config()["output_padding"].is_null());
}

TEST(ConvLayers, ConfigsRoundTripThroughTheRegistry) {
  const std::vector<LayerRef> layers = {
      Conv2D(8, {3, 2}, {.strides = {1, 2}, .padding = "same", .groups = 2, .activation = "tanh", .use_bias = false,
                         .kernel_initializer = "he_normal", .kernel_constraint = "non_neg"}),
      DepthwiseConv2D(3, {.depth_multiplier = 2, .dilation_rate = 2, .depthwise_regularizer = "l1"}),
      SeparableConv2D(5, 3, {.padding = "same", .depth_multiplier = 3, .pointwise_initializer = "ones"}),
      Conv2DTranspose(3, 3, {.strides = 2, .output_padding = {1, 0}, .activation = "sigmoid"}),
  };
  for (const LayerRef& layer : layers) {
    SCOPED_TRACE(layer->class_name());
    layer->maybe_build({Shape{-1, 9, 9, 4}});
    const nlohmann::json serialized = serialize_layer(*layer);
    const LayerRef copy = deserialize_layer(serialized);
    EXPECT_EQ(copy->class_name(), layer->class_name());
    EXPECT_EQ(copy->get_config(), layer->get_config());
    ASSERT_TRUE(copy->built());  // from build_config
    EXPECT_EQ(copy->count_params(), layer->count_params());
    EXPECT_EQ(copy->compute_output_shape(Shape{-1, 9, 9, 4}), layer->compute_output_shape(Shape{-1, 9, 9, 4}));
  }
  // Keras' null activation and a non-null activity_regularizer.
  nlohmann::json c = Conv2D(2, 1)->get_config();
  c["activation"] = nullptr;
  c["name"] = "from_keras";
  EXPECT_EQ(LayerRegistry::instance().create("Conv2D", c)->get_config()["activation"], "linear");
  c["activity_regularizer"] = regularizers::serialize(*regularizers::L2());
  EXPECT_THROW(LayerRegistry::instance().create("Conv2D", c), ValueError);
}

}  // namespace
}  // namespace kiln::layers
