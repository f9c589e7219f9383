// Initializers (layers/initializers.h): Keras' fan computation, distribution statistics
// of large draws, bounds, seeding, orthogonality, names and JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/core/random.h"
#include "kiln/layers/initializers.h"

namespace kiln::initializers {
namespace {

using ::testing::HasSubstr;

constexpr TensorOptions kCpu64{.dtype = DType::float64, .device = Device::cpu()};

struct Stats {
  double mean = 0, var = 0, min = 1e300, max = -1e300;
};
Stats stats_of(const Tensor& t) {
  const auto v = t.to_vector<double>();
  Stats s;
  for (double x : v) {
    s.mean += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= static_cast<double>(v.size());
  return s;
}

TEST(Fans, FollowKerasForDenseAndConvKernels) {
  EXPECT_EQ(compute_fans({}).fan_in, 1);
  EXPECT_EQ(compute_fans({5}).fan_in, 5);
  EXPECT_EQ(compute_fans({5}).fan_out, 5);
  EXPECT_EQ(compute_fans({3, 4}).fan_in, 3);
  EXPECT_EQ(compute_fans({3, 4}).fan_out, 4);
  // Conv2D kernel (kh, kw, in, out): receptive field 3 * 3.
  EXPECT_EQ(compute_fans({3, 3, 16, 32}).fan_in, 144);
  EXPECT_EQ(compute_fans({3, 3, 16, 32}).fan_out, 288);
  EXPECT_EQ(compute_fans({5, 2, 7}).fan_in, 10);  // Conv1D (k, in, out)
}

// Mean and variance of a 240 x 250 draw (60,000 values) against the distribution's:
// the mean within 5 standard errors, the variance within 3%, and hard bounds.
struct Case {
  const char* name;
  InitializerPtr init;
  double mean, var, bound;  // bound: |x - mean| <= bound (0: none)
};

TEST(Initializers, LargeDrawsHaveKerasMomentsAndBounds) {
  const Shape shape{240, 250};
  const double fan_in = 240, fan_out = 250, fan_avg = 245;
  const double trunc_sd = 1.0 / 0.87962566103423978;  // VarianceScaling's truncated stddev factor
  const std::vector<Case> cases = {
      {"glorot_uniform", get("glorot_uniform"), 0, 1 / fan_avg, std::sqrt(3 / fan_avg)},
      {"glorot_normal", get("glorot_normal"), 0, 1 / fan_avg, 2 * std::sqrt(1 / fan_avg) * trunc_sd},
      {"he_uniform", get("he_uniform"), 0, 2 / fan_in, std::sqrt(6 / fan_in)},
      {"he_normal", get("he_normal"), 0, 2 / fan_in, 2 * std::sqrt(2 / fan_in) * trunc_sd},
      {"lecun_uniform", get("lecun_uniform"), 0, 1 / fan_in, std::sqrt(3 / fan_in)},
      {"lecun_normal", get("lecun_normal"), 0, 1 / fan_in, 2 * std::sqrt(1 / fan_in) * trunc_sd},
      {"variance_scaling fan_out untruncated", VarianceScaling({2.0, "fan_out", "untruncated_normal"}), 0,
       2 / fan_out, 0},
      {"random_normal", RandomNormal({.mean = 1.0, .stddev = 0.5}), 1.0, 0.25, 0},
      {"random_uniform", RandomUniform({.minval = -1, .maxval = 3}), 1.0, 16.0 / 12, 2.0},
      // A standard normal cut at +-2 has variance 0.7737.
      {"truncated_normal", TruncatedNormal({.stddev = 2.0}), 0, 4 * 0.77374, 4.0},
  };
  manual_seed(123);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor t = (*c.init)(shape, kCpu64);
    ASSERT_EQ(t.shape(), shape);
    ASSERT_EQ(t.dtype(), DType::float64);
    const Stats s = stats_of(t);
    EXPECT_NEAR(s.mean, c.mean, 5 * std::sqrt(c.var / 60000.0));
    EXPECT_NEAR(s.var / c.var, 1.0, 0.03);
    if (c.bound > 0) {
      EXPECT_LE(s.max - c.mean, c.bound);
      EXPECT_GE(s.min - c.mean, -c.bound);
      EXPECT_GT(s.max - c.mean, 0.9 * c.bound);  // the whole range is used
    }
  }
}

TEST(Initializers, ConstantsFillExactlyInTheAskedDtype) {
  EXPECT_EQ(stats_of((*get("zeros"))({3, 4}, kCpu64)).max, 0.0);
  EXPECT_EQ(stats_of((*get("ones"))({3, 4}, kCpu64)).min, 1.0);
  const Tensor c = (*Constant(0.25))({5}, {.dtype = DType::float16, .device = Device::cpu()});
  EXPECT_EQ(c.dtype(), DType::float16);
  for (double v : c.to_vector<double>()) EXPECT_EQ(v, 0.25);
  EXPECT_EQ((*get("glorot_uniform"))({2, 3}).dtype(), DType::float32);  // float32 by default
}

TEST(Initializers, SeedsRepeatAcrossObjectsAndAdvanceWithinOne) {
  auto a = GlorotNormal({.seed = 42});
  auto b = GlorotNormal({.seed = 42});
  const auto a1 = (*a)({4, 5}, kCpu64).to_vector<double>();
  const auto a2 = (*a)({4, 5}, kCpu64).to_vector<double>();
  EXPECT_EQ(a1, (*b)({4, 5}, kCpu64).to_vector<double>());
  EXPECT_NE(a1, a2);
  // Unseeded: the global generator, so manual_seed repeats it.
  manual_seed(9);
  const auto g1 = (*get("he_uniform"))({6}, kCpu64).to_vector<double>();
  manual_seed(9);
  EXPECT_EQ((*get("he_uniform"))({6}, kCpu64).to_vector<double>(), g1);
}

TEST(Initializers, OrthogonalGivesOrthonormalRowsOrColumns) {
  for (const Shape& shape : {Shape{7, 4}, Shape{4, 7}, Shape{2, 3, 6}}) {
    SCOPED_TRACE(shape.str());
    const Tensor w = (*Orthogonal({.gain = 2.0, .seed = 1}))(shape, kCpu64);
    ASSERT_EQ(w.shape(), shape);
    const std::int64_t cols = shape[shape.ndim() - 1], rows = shape.numel() / cols;
    const auto v = w.to_vector<double>();
    // The smaller side is orthonormal (times gain^2 = 4).
    const bool tall = rows >= cols;
    const std::int64_t n = tall ? cols : rows, m = tall ? rows : cols;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (std::int64_t k = 0; k < m; ++k) {
          dot += tall ? v[k * cols + i] * v[k * cols + j] : v[i * cols + k] * v[j * cols + k];
        }
        EXPECT_NEAR(dot, i == j ? 4.0 : 0.0, 1e-12) << i << "," << j;
      }
    }
  }
  EXPECT_THROW((void)(*Orthogonal())({5}, kCpu64), ShapeError);
}

TEST(Initializers, UnknownNamesListTheValidOnes) {
  try {
    (void)get("xavier");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("unknown initializer 'xavier'"));
    EXPECT_THAT(e.message(), HasSubstr("glorot_uniform"));
    EXPECT_THAT(e.message(), HasSubstr("orthogonal"));
  }
  EXPECT_THROW((void)VarianceScaling({.mode = "fan_mid"}), ValueError);
  EXPECT_THROW((void)VarianceScaling({.distribution = "cauchy"}), ValueError);
  EXPECT_EQ(get("GlorotUniform")->class_name(), "GlorotUniform");
  EXPECT_EQ(get("uniform")->class_name(), "RandomUniform");  // Keras' alias
}

TEST(Initializers, SerializeAsKerasAndReadBack) {
  const nlohmann::json j = serialize(*GlorotUniform({.seed = 3}));
  EXPECT_EQ(j["module"], "keras.initializers");
  EXPECT_EQ(j["class_name"], "GlorotUniform");
  EXPECT_EQ(j["config"]["seed"], 3);
  EXPECT_TRUE(j["registered_name"].is_null());
  const nlohmann::json n = serialize(*RandomNormal());
  EXPECT_TRUE(n["config"]["seed"].is_null());
  EXPECT_EQ(n["config"]["stddev"], 0.05);
  for (const InitializerPtr& init :
       {GlorotUniform({.seed = 3}), VarianceScaling({0.5, "fan_avg", "uniform", 8}), Constant(1.5),
        RandomUniform({.minval = 0, .maxval = 2, .seed = 4}), Orthogonal({.gain = 0.5, .seed = 2})}) {
    const InitializerPtr back = deserialize(serialize(*init));
    EXPECT_EQ(back->class_name(), init->class_name());
    EXPECT_EQ(back->get_config(), init->get_config());
    EXPECT_EQ((*back)({3, 4}, kCpu64).to_vector<double>(), (*deserialize(serialize(*init)))({3, 4}, kCpu64).to_vector<double>());
  }
  EXPECT_EQ(deserialize(nlohmann::json("he_normal"))->class_name(), "HeNormal");
}

}  // namespace
}  // namespace kiln::initializers
