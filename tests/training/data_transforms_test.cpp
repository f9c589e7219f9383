// Host transforms: RandomCrop with padding (every output is a window of the zero-padded
// input), RandomFlip (each image original or mirrored, about half flipped), Normalize and
// Rescale values, keys that differ per batch and position, and argument errors.
#include <cmath>
#include <set>

#include "data_test_util.h"
#include "kiln/training/data/transforms.h"

namespace kiln::test {
namespace {

using data::Batch;

constexpr Device kCpu = Device::cpu();

// (n, h, w, c) float32 with distinct positive values (1-based: 0 means padding).
Tensor distinct_images(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) {
  return arange(1.0, static_cast<double>(n * h * w * c + 1), 1.0, {.dtype = float32, .device = kCpu})
      .reshape({n, h, w, c});
}

// Pixel (r, col, ch) of image i in `x` padded by `pad` zeros, as a double.
double padded(const Tensor& x, std::int64_t i, std::int64_t r, std::int64_t col, std::int64_t ch, std::int64_t pad) {
  r -= pad;
  col -= pad;
  if (r < 0 || col < 0 || r >= x.size(1) || col >= x.size(2)) return 0.0;
  return x.at<double>({i, r, col, ch});
}

TEST(RandomCrop, EveryOutputIsAWindowOfThePaddedImage) {
  const std::int64_t n = 40, h = 5, w = 7, c = 2, pad = 2, ch = 4, cw = 6;
  const Tensor x = distinct_images(n, h, w, c);
  Batch b{x, {}, {}};
  data::RandomCrop(ch, cw, {.padding = pad})->apply(b, 1234);
  ASSERT_EQ(b.x.shape(), Shape({n, ch, cw, c}));
  std::set<std::pair<std::int64_t, std::int64_t>> corners;
  for (std::int64_t i = 0; i < n; ++i) {
    // Find the window: the top-left corner in padded coordinates that matches everywhere.
    bool found = false;
    for (std::int64_t top = 0; top + ch <= h + 2 * pad && !found; ++top) {
      for (std::int64_t left = 0; left + cw <= w + 2 * pad && !found; ++left) {
        bool match = true;
        for (std::int64_t r = 0; r < ch && match; ++r)
          for (std::int64_t q = 0; q < cw && match; ++q)
            for (std::int64_t k = 0; k < c && match; ++k)
              match = b.x.at<double>({i, r, q, k}) == padded(x, i, top + r, left + q, k, pad);
        if (match) {
          found = true;
          corners.insert({top, left});
        }
      }
    }
    EXPECT_TRUE(found) << "image " << i << " is not a window of its padded input";
  }
  EXPECT_GE(corners.size(), 10u) << "40 crops should land on many of the 5x6 corners";
}

TEST(RandomCrop, KeepsUint8AndRejectsWindowsThatDoNotFit) {
  Batch b{full({2, 3, 3, 1}, 7.0, {.dtype = uint8, .device = kCpu}), {}, {}};
  data::RandomCrop(3, 3)->apply(b, 1);
  EXPECT_EQ(b.x.dtype(), uint8);
  EXPECT_EQ(b.x.to_vector<int>(), std::vector<int>(18, 7));  // no padding: the whole image
  Batch small{zeros({1, 2, 2, 1}, {.device = kCpu}), {}, {}};
  EXPECT_THROW(data::RandomCrop(5, 5, {.padding = 1})->apply(small, 1), ShapeError);
  Batch flat{zeros({2, 4}, {.device = kCpu}), {}, {}};
  EXPECT_THROW(data::RandomCrop(1, 1)->apply(flat, 1), ShapeError);
  EXPECT_THROW(data::RandomCrop(0, 3), ValueError);
  EXPECT_THROW(data::RandomCrop(3, 3, {.padding = -1}), ValueError);
}

TEST(RandomFlip, EachImageIsOriginalOrMirroredAboutHalfFlipped) {
  const std::int64_t n = 400, h = 3, w = 5, c = 3;
  const Tensor x = distinct_images(n, h, w, c);
  Batch b{x.clone(), {}, {}};
  data::RandomFlip("horizontal")->apply(b, 99);
  int flipped = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    bool same = true, mirrored = true;
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t q = 0; q < w; ++q)
        for (std::int64_t k = 0; k < c; ++k) {
          const double v = b.x.at<double>({i, r, q, k});
          same = same && v == x.at<double>({i, r, q, k});
          mirrored = mirrored && v == x.at<double>({i, r, w - 1 - q, k});
        }
    EXPECT_TRUE(same || mirrored) << "image " << i;
    flipped += mirrored;
  }
  EXPECT_NEAR(flipped, 200, 50);  // 5 standard deviations of Binomial(400, 1/2)
}

TEST(RandomFlip, VerticalAndBothModes) {
  const Tensor x = distinct_images(64, 4, 3, 1);
  Batch v{x.clone(), {}, {}};
  data::RandomFlip("vertical")->apply(v, 5);
  int changed = 0;
  for (std::int64_t i = 0; i < 64; ++i) {
    const bool up = v.x.at<double>({i, 0, 0, 0}) == x.at<double>({i, 3, 0, 0});
    EXPECT_TRUE(up || v.x.at<double>({i, 0, 0, 0}) == x.at<double>({i, 0, 0, 0}));
    changed += up;
  }
  EXPECT_GT(changed, 10);
  EXPECT_LT(changed, 54);
  Batch both{x.clone(), {}, {}};
  data::RandomFlip("horizontal_and_vertical")->apply(both, 5);
  EXPECT_THROW(data::RandomFlip("diagonal"), ValueError);
}

TEST(RandomTransforms, TheSameKeyGivesTheSameResultAndKeysDiffer) {
  const Tensor x = distinct_images(16, 6, 6, 1);
  auto crop = data::RandomCrop(4, 4, {.padding = 1});
  Batch a{x, {}, {}}, b{x, {}, {}}, c{x, {}, {}};
  crop->apply(a, data::transform_key(1, 0, 3, 0));
  crop->apply(b, data::transform_key(1, 0, 3, 0));
  crop->apply(c, data::transform_key(1, 0, 4, 0));
  EXPECT_EQ(a.x.to_vector<float>(), b.x.to_vector<float>());
  EXPECT_NE(a.x.to_vector<float>(), c.x.to_vector<float>());
  std::set<std::uint64_t> keys;
  for (std::int64_t e = 0; e < 4; ++e)
    for (std::int64_t bt = -1; bt < 4; ++bt)
      for (std::int64_t p = -1; p < 3; ++p) keys.insert(data::transform_key(7, e, bt, p));
  EXPECT_EQ(keys.size(), 4u * 5u * 4u);
}

TEST(Normalize, PerChannelAndScalarWithNanAndInf) {
  const float inf = std::numeric_limits<float>::infinity();
  Batch b{from_vector<float>({1, 2, 3, 4, std::nanf(""), inf}, {1, 1, 2, 3}), {}, {}};
  data::Normalize({1, 2, 3}, {2, 4, 0.5})->apply(b, 0);
  const auto v = b.x.to_vector<float>();
  EXPECT_FLOAT_EQ(v[0], 0.0f);
  EXPECT_FLOAT_EQ(v[1], 0.0f);
  EXPECT_FLOAT_EQ(v[2], 0.0f);
  EXPECT_FLOAT_EQ(v[3], 1.5f);
  EXPECT_TRUE(std::isnan(v[4]));
  EXPECT_EQ(v[5], inf);
  Batch u{full({2, 2, 2, 1}, 255.0, {.dtype = uint8, .device = kCpu}), {}, {}};
  data::Normalize({127.5}, {127.5})->apply(u, 0);
  EXPECT_EQ(u.x.dtype(), float32);
  EXPECT_EQ(u.x.to_vector<float>(), std::vector<float>(8, 1.0f));
  Batch wrong{zeros({1, 2, 2, 2}, {.device = kCpu}), {}, {}};
  EXPECT_THROW(data::Normalize({0, 0, 0}, {1, 1, 1})->apply(wrong, 0), ShapeError);
  EXPECT_THROW(data::Normalize({0}, {0}), ValueError);
  EXPECT_THROW(data::Normalize({0, 1}, {1}), ValueError);
}

TEST(Rescale, ScalesUint8ToFloat) {
  Batch b{from_vector<std::uint8_t>({0, 51, 255}, {3}), {}, {}};
  data::Rescale(1.0 / 255.0, -0.5)->apply(b, 0);
  EXPECT_EQ(b.x.dtype(), float32);
  const auto v = b.x.to_vector<float>();
  EXPECT_FLOAT_EQ(v[0], -0.5f);
  EXPECT_FLOAT_EQ(v[1], -0.3f);
  EXPECT_FLOAT_EQ(v[2], 0.5f);
}

}  // namespace
}  // namespace kiln::test
