// MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D on cpu:
// Keras' output shapes (valid/same, default strides, odd sizes), values against a float64
// reference (average over real elements only, as Keras), NaN, gradient checks, bad
// arguments and configs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image_reference.h"
#include "image_test_util.h"
#include "layer_gradcheck.h"
#include "kernels/op_test_util.h"
#include "kiln/core/error.h"
#include "kiln/layers/core.h"
#include "kiln/layers/pooling.h"
#include "kiln/layers/registry.h"

namespace kiln::layers {
namespace {

using test::seeded_uniform;

// Pooling of x (N, H, W, C) with Keras' padding (padding elements take no part).
std::vector<double> pool_reference(const std::vector<double>& x, const Shape& xs, Int2 pool, Int2 strides,
                                   const std::string& padding, PoolMode mode, Shape* out_shape) {
  const test::Axis1 ah{pool.h, strides.h, 1}, aw{pool.w, strides.w, 1};
  const std::int64_t oh = test::conv_out_extent(xs[1], ah, padding), ow = test::conv_out_extent(xs[2], aw, padding);
  const std::int64_t pt = padding == "same" ? test::same_pad_before(xs[1], oh, ah) : 0;
  const std::int64_t pl = padding == "same" ? test::same_pad_before(xs[2], ow, aw) : 0;
  *out_shape = Shape{xs[0], oh, ow, xs[3]};
  std::vector<double> y;
  for (std::int64_t n = 0; n < xs[0]; ++n)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j)
        for (std::int64_t c = 0; c < xs[3]; ++c) {
          double acc = mode == PoolMode::max ? -std::numeric_limits<double>::infinity() : 0.0;
          int count = 0;
          for (std::int64_t p = 0; p < pool.h; ++p)
            for (std::int64_t q = 0; q < pool.w; ++q) {
              const std::int64_t r = i * strides.h + p - pt, s = j * strides.w + q - pl;
              if (r < 0 || r >= xs[1] || s < 0 || s >= xs[2]) continue;
              const double v = x[static_cast<std::size_t>(((n * xs[1] + r) * xs[2] + s) * xs[3] + c)];
              acc = mode == PoolMode::max ? std::max(acc, v) : acc + v;
              ++count;
            }
          y.push_back(mode == PoolMode::max ? acc : acc / count);
        }
  return y;
}

struct PoolCase {
  Shape x;
  Int2 pool, strides;  // strides {-1, -1}: pool_size
  const char* padding;
  Shape expected;  // batch -1
};

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {{2, 7, 7, 3}, 2, {-1, -1}, "valid", {-1, 3, 3, 3}}, {{2, 7, 7, 3}, 2, {-1, -1}, "same", {-1, 4, 4, 3}},
      {{1, 8, 9, 2}, 3, 2, "valid", {-1, 3, 4, 2}},        {{1, 8, 9, 2}, 3, 2, "same", {-1, 4, 5, 2}},
      {{1, 5, 7, 1}, {2, 3}, {1, 2}, "valid", {-1, 4, 3, 1}}, {{1, 5, 7, 1}, {2, 3}, {1, 2}, "same", {-1, 5, 4, 1}},
      {{3, 4, 4, 5}, 4, {-1, -1}, "valid", {-1, 1, 1, 5}},  {{1, 3, 3, 1}, 2, {-1, -1}, "same", {-1, 2, 2, 1}},
  };
  return cases;
}

TEST(Pooling2DLayer, ShapesAndValuesMatchReference) {
  std::uint64_t seed = 1;
  for (const PoolCase& c : pool_cases()) {
    for (const PoolMode mode : {PoolMode::max, PoolMode::average}) {
      auto layer = mode == PoolMode::max ? MaxPooling2D(c.pool, {.strides = c.strides, .padding = c.padding})
                                         : AveragePooling2D(c.pool, {.strides = c.strides, .padding = c.padding});
      SCOPED_TRACE(layer->class_name() + " " + c.x.str() + " " + c.padding);
      EXPECT_EQ(layer->compute_output_shape(with_unknown_batch(c.x)), c.expected);
      const Tensor x = seeded_uniform(c.x, ++seed, float32, test::kHost, -5, 5);
      Shape ref_shape;
      const auto ref = pool_reference(x.to_vector<double>(), c.x, c.pool,
                                      c.strides == Int2{-1, -1} ? c.pool : c.strides, c.padding, mode, &ref_shape);
      const Tensor y = layer(x);
      ASSERT_EQ(y.shape(), ref_shape);
      EXPECT_TRUE(test::all_close(y, ref, {1e-6, 1e-5}));
    }
  }
}

TEST(Pooling2DLayer, SamePaddingAveragesOnlyRealElements) {
  const Tensor x = arange(1, 10, 1, {.dtype = float32, .device = test::kHost}).reshape({1, 3, 3, 1});
  EXPECT_EQ(MaxPooling2D(2, {.padding = "same"})(x).to_vector<float>(), (std::vector<float>{5, 6, 8, 9}));
  EXPECT_EQ(AveragePooling2D(2, {.padding = "same"})(x).to_vector<float>(), (std::vector<float>{3, 4.5, 7.5, 9}));
  EXPECT_EQ(MaxPooling2D(2)(x).to_vector<float>(), (std::vector<float>{5}));
}

TEST(Pooling2DLayer, NaNPropagatesThroughMaxAndAverage) {
  Tensor x = arange(0, 16, 1, {.dtype = float32, .device = test::kHost}).reshape({1, 4, 4, 1}).clone();
  x.select(1, 0).select(1, 1).fill_(std::nan(""));  // row 0, column 1
  for (const auto& layer : {MaxPooling2D(2), AveragePooling2D(2)}) {
    const std::vector<float> y = layer(x).to_vector<float>();
    EXPECT_TRUE(std::isnan(y[0])) << layer->class_name();
    EXPECT_FALSE(std::isnan(y[1]) || std::isnan(y[2]) || std::isnan(y[3])) << layer->class_name();
  }
}

TEST(Pooling2DLayer, NonContiguousInput) {
  const Tensor base = seeded_uniform({2, 6, 5, 4}, 7);
  const Tensor x = base.permute({0, 2, 1, 3});  // (2, 5, 6, 4), W and H swapped in storage
  for (const auto& layer : {MaxPooling2D(2, {.padding = "same"}), AveragePooling2D(3, {.strides = 2})}) {
    EXPECT_TRUE(test::all_close(layer(x), layer(x.contiguous()), {0, 0})) << layer->class_name();
  }
}

TEST(GlobalPooling2DLayer, MeanAndMaxOverRowsAndColumns) {
  const Shape xs{2, 3, 5, 4};
  const Tensor x = seeded_uniform(xs, 11, float32, test::kHost, -3, 3);
  const std::vector<double> xv = x.to_vector<double>();
  std::vector<double> mean(8, 0.0), max(8, -1e30);
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t p = 0; p < 15; ++p)
      for (std::int64_t c = 0; c < 4; ++c) {
        const double v = xv[static_cast<std::size_t>((n * 15 + p) * 4 + c)];
        mean[n * 4 + c] += v / 15;
        max[n * 4 + c] = std::max(max[n * 4 + c], v);
      }
  auto gap = GlobalAveragePooling2D();
  auto gmp = GlobalMaxPooling2D();
  EXPECT_EQ(gap->compute_output_shape({-1, 3, 5, 4}), (Shape{-1, 4}));
  EXPECT_TRUE(test::all_close(gap(x), mean, {1e-6, 1e-5}));
  EXPECT_TRUE(test::all_close(gmp(x), max, {0, 0}));
  auto keep = GlobalMaxPooling2D({.keepdims = true});
  EXPECT_EQ(keep->compute_output_shape({-1, -1, -1, 4}), (Shape{-1, 1, 1, 4}));
  EXPECT_EQ(keep(x).shape(), (Shape{2, 1, 1, 4}));
  EXPECT_EQ(GlobalAveragePooling2D({.keepdims = true})(x).shape(), (Shape{2, 1, 1, 4}));
}

TEST(PoolingLayers, GradientsMatchCentralDifferences) {
  const std::vector<std::pair<const char*, LayerRef>> cases = {
      {"max valid", MaxPooling2D(2, {.dtype = float64})},
      {"max same stride 1", MaxPooling2D(3, {.strides = 1, .padding = "same", .dtype = float64})},
      {"average same", AveragePooling2D(2, {.padding = "same", .dtype = float64})},
      {"average overlapping", AveragePooling2D({3, 2}, {.strides = {2, 1}, .dtype = float64})},
      {"global average", GlobalAveragePooling2D({.dtype = float64})},
      {"global max keepdims", GlobalMaxPooling2D({.keepdims = true, .dtype = float64})},
  };
  std::uint64_t seed = 20;
  for (const auto& [what, layer] : cases) {
    SCOPED_TRACE(what);
    // Distinct values, so no window's maximum is tied within the difference step.
    EXPECT_TRUE(test::layer_gradcheck(layer, {seeded_uniform({2, 5, 4, 3}, ++seed, float64)}));
  }
}

TEST(PoolingLayers, BadArgumentsAndInputs) {
  EXPECT_THROW(MaxPooling2D(0), ValueError);
  EXPECT_THROW(MaxPooling2D(2, {.strides = {1, 0}}), ValueError);
  EXPECT_THROW(AveragePooling2D(2, {.padding = "causal"}), ValueError);
  EXPECT_THROW(GlobalMaxPooling2D({.data_format = "channels_first"}), ValueError);
  auto pool = MaxPooling2D(3, {.name = "poolx"});
  try {
    (void)pool(seeded_uniform({1, 2, 5, 1}, 1));
    ADD_FAILURE() << "a window larger than the input accepted";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), ::testing::HasSubstr("poolx"));
    EXPECT_THAT(e.message(), ::testing::HasSubstr("(1, 2, 5, 1)"));
  }
  EXPECT_THROW(pool(seeded_uniform({4, 4, 1}, 1)), ShapeError);
  EXPECT_THROW(GlobalAveragePooling2D()(seeded_uniform({2, 4}, 1)), ShapeError);
}

TEST(PoolingLayers, ConfigsHaveKerasKeysAndRoundTrip) {
  const nlohmann::json c = MaxPooling2D({3, 2}, {.padding = "SAME"})->get_config();
  EXPECT_EQ(test::keys_of(c), test::layer_keys({"pool_size", "padding", "strides", "data_format"}));
  EXPECT_EQ(c["pool_size"], nlohmann::json::array({3, 2}));
  EXPECT_EQ(c["strides"], nlohmann::json::array({3, 2}));  // Keras: strides=None means pool_size
  EXPECT_EQ(c["padding"], "same");
  EXPECT_EQ(test::keys_of(GlobalAveragePooling2D()->get_config()), test::layer_keys({"data_format", "keepdims"}));
  for (const LayerRef& layer : std::vector<LayerRef>{MaxPooling2D(2, {.strides = 1}), AveragePooling2D({2, 3}),
                                                     GlobalAveragePooling2D({.keepdims = true}), GlobalMaxPooling2D()}) {
    SCOPED_TRACE(layer->class_name());
    const LayerRef copy = deserialize_layer(serialize_layer(*layer));
    EXPECT_EQ(copy->class_name(), layer->class_name());
    EXPECT_EQ(copy->get_config(), layer->get_config());
  }
}

}  // namespace
}  // namespace kiln::layers
