// ZeroPadding2D and UpSampling2D on cpu: Keras' padding forms and shapes, values (zeros
// around; nearest repeats; bilinear with TensorFlow's half-pixel centres), gradient checks,
// bad arguments and configs.
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
#include "kiln/layers/core.h"
#include "kiln/layers/registry.h"
#include "kiln/layers/reshaping.h"

namespace kiln::layers {
namespace {

using test::seeded_uniform;

TEST(ZeroPadding2DLayer, KerasPaddingForms) {
  struct Case {
    Padding2D padding;
    Shape expected;
    nlohmann::json config;
  };
  const std::vector<Case> cases = {
      {1, {-1, 5, 6, 2}, {{1, 1}, {1, 1}}},
      {{2, 1}, {-1, 7, 6, 2}, {{2, 2}, {1, 1}}},
      {{{1, 2}, {0, 3}}, {-1, 6, 7, 2}, {{1, 2}, {0, 3}}},
  };
  for (const Case& c : cases) {
    auto pad = ZeroPadding2D(c.padding);
    EXPECT_EQ(pad->compute_output_shape({-1, 3, 4, 2}), c.expected);
    EXPECT_EQ(pad->get_config()["padding"], c.config);
  }
  EXPECT_EQ(ZeroPadding2D()->compute_output_shape({-1, -1, 4, 2}), (Shape{-1, -1, 6, 2}));
}

TEST(ZeroPadding2DLayer, ZerosAroundTheInput) {
  const Shape xs{2, 3, 4, 2};
  const Tensor x = seeded_uniform(xs, 1, float32, test::kHost, 1, 2);  // never zero
  const Tensor y = ZeroPadding2D({{1, 2}, {0, 3}})(x);
  ASSERT_EQ(y.shape(), (Shape{2, 6, 7, 2}));
  EXPECT_TRUE(test::all_close(y.slice(1, 1, 4).slice(2, 0, 4), x, {0, 0}));
  const std::vector<float> all = y.to_vector<float>();
  double sum_abs = 0;
  for (float v : all) sum_abs += std::fabs(v);
  const std::vector<float> inner = x.to_vector<float>();
  double inner_abs = 0;
  for (float v : inner) inner_abs += std::fabs(v);
  EXPECT_DOUBLE_EQ(sum_abs, inner_abs);  // everything else is zero
  // A non-contiguous view pads the same.
  const Tensor xt = x.permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3});
  ASSERT_FALSE(xt.is_contiguous());
  EXPECT_TRUE(test::all_close(ZeroPadding2D(1)(xt), ZeroPadding2D(1)(x), {0, 0}));
}

TEST(UpSampling2DLayer, NearestRepeatsRowsAndColumns) {
  const Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 2, 3, 1});
  auto up = UpSampling2D({2, 1});
  EXPECT_EQ(up->compute_output_shape({-1, 2, 3, 1}), (Shape{-1, 4, 3, 1}));
  EXPECT_EQ(up(x).to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
  const Tensor y = UpSampling2D()(x);
  ASSERT_EQ(y.shape(), (Shape{1, 4, 6, 1}));
  EXPECT_EQ(y.at<float>({0, 3, 5, 0}), 6.f);
  EXPECT_EQ(y.at<float>({0, 1, 2, 0}), 2.f);
}

TEST(UpSampling2DLayer, BilinearUsesHalfPixelCentres) {
  // Along W, size 2: sources at (j + 0.5) / 2 - 0.5 = -0.25, 0.25, ..., 2.25, clamped at the edges.
  const Tensor x = from_vector<float>({0, 4, 8}, {1, 1, 3, 1});
  const Tensor y = UpSampling2D({1, 2}, {.interpolation = "bilinear"})(x);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 6, 1}));
  EXPECT_TRUE(test::all_close(y, std::vector<double>{0, 1, 3, 5, 7, 8}, {1e-6, 1e-6}));
}

TEST(ReshapingLayers, GradientsMatchCentralDifferences) {
  const std::vector<std::pair<const char*, LayerRef>> cases = {
      {"zero padding", ZeroPadding2D({{1, 0}, {2, 1}}, {.dtype = float64})},
      {"nearest", UpSampling2D({2, 3}, {.dtype = float64})},
      {"bilinear", UpSampling2D(2, {.interpolation = "bilinear", .dtype = float64})},
  };
  std::uint64_t seed = 5;
  for (const auto& [what, layer] : cases) {
    SCOPED_TRACE(what);
    EXPECT_TRUE(test::layer_gradcheck(layer, {seeded_uniform({2, 3, 2, 2}, ++seed, float64)}));
  }
}

TEST(ReshapingLayers, BadArgumentsAndInputs) {
  EXPECT_THROW(ZeroPadding2D(-1), ValueError);
  EXPECT_THROW(UpSampling2D(0), ValueError);
  EXPECT_THROW(UpSampling2D(2, {.interpolation = "bicubic"}), ValueError);
  EXPECT_THROW(UpSampling2D(2, {.data_format = "channels_first"}), ValueError);
  auto pad = ZeroPadding2D(1, {.name = "padx"});
  try {
    (void)pad(seeded_uniform({3, 4, 2}, 1));
    ADD_FAILURE() << "a 3-D input accepted";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), ::testing::HasSubstr("padx"));
  }
  EXPECT_THROW(UpSampling2D()(seeded_uniform({3, 4}, 1)), ShapeError);
}

TEST(ReshapingLayers, ConfigsHaveKerasKeysAndRoundTrip) {
  EXPECT_EQ(test::keys_of(ZeroPadding2D()->get_config()), test::layer_keys({"padding", "data_format"}));
  const nlohmann::json up = UpSampling2D({2, 3}, {.interpolation = "bilinear"})->get_config();
  EXPECT_EQ(test::keys_of(up), test::layer_keys({"size", "data_format", "interpolation"}));
  EXPECT_EQ(up["size"], nlohmann::json::array({2, 3}));
  for (const LayerRef& layer : std::vector<LayerRef>{ZeroPadding2D({{1, 2}, {3, 4}}), UpSampling2D({2, 3}, {.interpolation = "bilinear"})}) {
    const LayerRef copy = deserialize_layer(serialize_layer(*layer));
    EXPECT_EQ(copy->get_config(), layer->get_config()) << layer->class_name();
  }
  // Keras' other padding spellings in a config.
  nlohmann::json c = ZeroPadding2D()->get_config();
  c["padding"] = 2;
  EXPECT_EQ(LayerRegistry::instance().create("ZeroPadding2D", c)->compute_output_shape({-1, 3, 3, 1}),
            (Shape{-1, 7, 7, 1}));
  c["padding"] = nlohmann::json::array({1, 2});
  EXPECT_EQ(LayerRegistry::instance().create("ZeroPadding2D", c)->compute_output_shape({-1, 3, 3, 1}),
            (Shape{-1, 5, 7, 1}));
}

}  // namespace
}  // namespace kiln::layers
