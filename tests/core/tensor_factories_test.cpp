// Tensor factories on cpu (core/tensor_factories.cpp): empty/zeros/ones/full for every
// dtype, arange, from_vector/from_host, shape validation, and the Philox random fills
// (rand/randn/uniform/normal) against the documented stream convention (core/philox.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/philox.h"
#include "kiln/core/random.h"
#include "kiln/core/random_math.h"
#include "kiln/core/tensor.h"

namespace kiln {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr DType kAllDTypes[] = {float32, float16, bfloat16, float64, int32, int64, uint8, bool_};
constexpr DType kFloatDTypes[] = {float32, float16, bfloat16, float64};

// Bit-exact equality of two tensors of the same dtype (NaN-safe, -0 != +0).
bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ca = a.to(Device::cpu()).contiguous(), cb = b.to(Device::cpu()).contiguous();
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

// ---- empty / zeros / ones / full ----

TEST(TensorFactories, ConstantFillsForEveryDtype) {
  for (DType dt : kAllDTypes) {
    SCOPED_TRACE(std::string(name(dt)));
    const Tensor e = empty({2, 3}, {.dtype = dt});
    EXPECT_EQ(e.dtype(), dt);
    EXPECT_EQ(e.shape(), Shape({2, 3}));
    EXPECT_TRUE(e.is_contiguous());
    EXPECT_EQ(e.device(), default_device());
    EXPECT_EQ(zeros({2, 3}, {.dtype = dt}).to_vector<double>(), std::vector<double>(6, 0.0));
    EXPECT_EQ(ones({4}, {.dtype = dt}).to_vector<double>(), std::vector<double>(4, 1.0));
    const double expected = dt == bool_ ? 1.0 : is_floating(dt) ? 2.5 : 2.0;  // converted
    EXPECT_EQ(full({3, 1}, 2.5, {.dtype = dt}).to_vector<double>(), std::vector<double>(3, expected));
  }
}

TEST(TensorFactories, DefaultsToFloat32AndScalarsAndEmptyShapesWork) {
  EXPECT_EQ(zeros({2}).dtype(), float32);
  EXPECT_EQ(full({}, -3.0).item<float>(), -3.f);
  EXPECT_EQ(ones({0, 5}).numel(), 0);
  EXPECT_EQ(ones({0, 5}).shape(), Shape({0, 5}));
  const Tensor like = zeros_like(ones({2, 2}, {.dtype = int64}));
  EXPECT_EQ(like.dtype(), int64);
  EXPECT_EQ(like.to_vector<std::int64_t>(), std::vector<std::int64_t>(4, 0));
  EXPECT_EQ(empty_like(zeros({3}), {.dtype = uint8}).dtype(), uint8);
}

// Factories validate shapes and name themselves in the error, not a helper they call.
TEST(TensorFactories, NegativeAndOverflowingShapesRaiseNamingTheOp) {
  const std::vector<std::pair<std::string, std::function<void(const Shape&)>>> ops = {
      {"empty", [](const Shape& s) { empty(s); }},
      {"zeros", [](const Shape& s) { zeros(s); }},
      {"ones", [](const Shape& s) { ones(s); }},
      {"full", [](const Shape& s) { full(s, 1.0); }},
      {"rand", [](const Shape& s) { Generator g(0); rand(s, {}, &g); }},
      {"randn", [](const Shape& s) { Generator g(0); randn(s, {}, &g); }},
      {"from_vector", [](const Shape& s) { from_vector<float>({1.f}, s); }},
  };
  const std::int64_t big = std::int64_t{1} << 40;
  for (const auto& [op, f] : ops) {
    for (const Shape& bad : {Shape{2, -1}, Shape{big, big}}) {
      try {
        f(bad);
        ADD_FAILURE() << op << bad << " did not throw";
      } catch (const ValueError& e) {
        EXPECT_THAT(e.message(), HasSubstr(op + ":")) << "shape " << bad;
        EXPECT_THAT(e.message(), HasSubstr(bad.str()));
      }
    }
  }
}

// ---- arange ----

TEST(TensorArange, CountsLikeNumpy) {
  EXPECT_THAT(arange(5).to_vector<float>(), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(arange(2, 11, 3).to_vector<float>(), ElementsAre(2, 5, 8));
  EXPECT_THAT(arange(2, 12, 3).to_vector<float>(), ElementsAre(2, 5, 8, 11));
  EXPECT_THAT(arange(5, 0, -2).to_vector<float>(), ElementsAre(5, 3, 1));
  EXPECT_THAT(arange(-1, -4, -1, {.dtype = int32}).to_vector<std::int32_t>(), ElementsAre(-1, -2, -3));
  EXPECT_EQ(arange(1, 2, 0.25).numel(), 4);
  EXPECT_EQ(arange(0, 0.3, 0.1).numel(), 3);  // 0.3 / 0.1 = 2.9999999999999996
}

TEST(TensorArange, FractionalStepValuesAreStartPlusIStep) {
  const std::vector<double> v = arange(0.5, 1.5, 0.1, {.dtype = float64}).to_vector<double>();
  ASSERT_EQ(v.size(), 10u);
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], std::fma(double(i), 0.1, 0.5)) << i;
  const std::vector<float> f = arange(0, 1, 0.1).to_vector<float>();
  ASSERT_EQ(f.size(), 10u);
  EXPECT_EQ(f[3], static_cast<float>(0.30000000000000004));
}

TEST(TensorArange, EmptyRangesGiveZeroElements) {
  EXPECT_EQ(arange(0).shape(), Shape({0}));
  EXPECT_EQ(arange(5, 5).numel(), 0);
  EXPECT_EQ(arange(5, 0).numel(), 0);       // positive step, stop below start
  EXPECT_EQ(arange(0, 5, -1).numel(), 0);   // negative step, stop above start
  EXPECT_EQ(arange(-3).numel(), 0);
}

TEST(TensorArange, ZeroOrNonFiniteStepRaises) {
  try {
    arange(0, 5, 0);
    FAIL() << "arange with step 0 did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("arange"));
    EXPECT_THAT(e.message(), HasSubstr("step"));
  }
  EXPECT_THROW(arange(0, 5, NAN), ValueError);
  EXPECT_THROW(arange(0, INFINITY), ValueError);
}

// A count past int64 must be a clear error, not a float-to-int overflow.
TEST(TensorArange, TooManyElementsRaisesNamingArange) {
  try {
    arange(0, 1e300);
    FAIL() << "arange(0, 1e300) did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("arange"));
  }
}

// ---- from_vector / from_host ----

TEST(TensorFromHost, CopiesAndConvertsTheData) {
  std::vector<double> data = {1.5, -2.25, 3.0, 4.75};
  const Tensor t = from_host(data.data(), {2, 2});
  EXPECT_EQ(t.dtype(), float64);
  data[0] = 100;  // the tensor owns a copy
  EXPECT_THAT(t.to_vector<double>(), ElementsAre(1.5, -2.25, 3.0, 4.75));
  const Tensor i = from_host(data.data(), {4}, {.dtype = int32});
  EXPECT_EQ(i.dtype(), int32);
  EXPECT_THAT(i.to_vector<std::int32_t>(), ElementsAre(100, -2, 3, 4));
  const Tensor h = from_vector<float>({0.1f, 1.f}, {.dtype = float16});
  EXPECT_EQ(h.dtype(), float16);
  EXPECT_EQ(h.to_vector<float>()[0], static_cast<float>(Half(0.1f)));
}

TEST(TensorFromHost, FromVectorTakesTheElementDtypeAndShape) {
  EXPECT_EQ(from_vector<std::int64_t>({1, 2, 3}).dtype(), int64);
  EXPECT_EQ(from_vector<std::uint8_t>({1, 2}).dtype(), uint8);
  const Tensor b = from_vector<bool>({true, false, true, true}, {2, 2});
  EXPECT_EQ(b.dtype(), bool_);
  EXPECT_THAT(b.to_vector<bool>(), ElementsAre(true, false, true, true));
  EXPECT_EQ(from_vector<float>({}).shape(), Shape({0}));
  EXPECT_EQ(from_vector<float>({7.f}, Shape{}).item<float>(), 7.f);
}

TEST(TensorFromHost, SizeMismatchRaisesShapeError) {
  try {
    from_vector<float>({1, 2, 3, 4, 5}, {2, 3});
    FAIL() << "5 values into (2, 3) did not throw";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), HasSubstr("5 values"));
    EXPECT_THAT(e.message(), HasSubstr("(2, 3)"));
  }
  EXPECT_THROW(from_host(static_cast<const float*>(nullptr), {2}), ValueError);
}

// ---- random fills ----

TEST(TensorRandom, SameSeedSameValuesAndGeneratorsAreIndependent) {
  for (DType dt : kFloatDTypes) {
    SCOPED_TRACE(std::string(name(dt)));
    Generator a(123), b(123), other(124);
    const Tensor ra = rand({37}, {.dtype = dt}, &a);
    (void)randn({11}, {.dtype = dt}, &other);  // drawing from another generator moves only it
    const Tensor rb = rand({37}, {.dtype = dt}, &b);
    EXPECT_TRUE(same_bits(ra, rb));
    EXPECT_FALSE(same_bits(ra, rand({37}, {.dtype = dt}, &other)));
    EXPECT_TRUE(same_bits(randn({9}, {.dtype = dt}, &a), randn({9}, {.dtype = dt}, &b)));
  }
}

TEST(TensorRandom, OffsetsAdvanceByBlocksOfFour) {
  Generator g(5);
  EXPECT_EQ(g.offset(), 0u);
  const Tensor first = rand({5}, {}, &g);
  EXPECT_EQ(g.offset(), 2u);  // ceil(5 / 4) Philox blocks
  const Tensor second = rand({5}, {}, &g);
  EXPECT_EQ(g.offset(), 4u);
  EXPECT_NE(first.to_vector<float>(), second.to_vector<float>());
  (void)randn({8}, {}, &g);
  EXPECT_EQ(g.offset(), 6u);
  (void)rand({0}, {}, &g);
  EXPECT_EQ(g.offset(), 6u);
  g.manual_seed(5);
  EXPECT_EQ(g.offset(), 0u);
  EXPECT_TRUE(same_bits(rand({5}, {}, &g), first));
}

// state() / set_state(): a generator put back to a saved state draws the same values
// again (what BackupAndRestore relies on), and only then.
TEST(TensorRandom, SetStateReplaysTheDrawsAfterTheSavedState) {
  Generator g(17);
  rand({5}, {}, &g);
  const Generator::Draw saved = g.state();
  EXPECT_EQ(saved.seed, 17u);
  EXPECT_EQ(saved.offset, g.offset());
  const auto first = rand({6}, {}, &g).to_vector<float>();
  const auto later = rand({6}, {}, &g).to_vector<float>();
  EXPECT_NE(first, later);
  g.set_state(saved);
  EXPECT_EQ(rand({6}, {}, &g).to_vector<float>(), first);
  Generator other(99);
  other.set_state(saved);  // the seed travels with the state
  EXPECT_EQ(rand({6}, {}, &other).to_vector<float>(), first);
}

TEST(TensorRandom, DefaultGeneratorFollowsManualSeed) {
  manual_seed(77);
  const Tensor a = rand({6});
  const Tensor b = rand({6});
  EXPECT_FALSE(same_bits(a, b));
  manual_seed(77);
  EXPECT_TRUE(same_bits(rand({6}), a));
  Generator g(77);
  EXPECT_TRUE(same_bits(rand({6}, {}, &g), a));
}

// Element i of a fill drawn at (seed, offset) is random_value(philox_block(seed, offset, i),
// lane i % 4), as Note [Philox stream convention] documents.
template <class T>
void expect_philox_convention(DType dt) {
  const std::uint64_t seed = 0x1234567890abcdefull;
  Generator g(seed);
  (void)rand({13}, {.dtype = dt}, &g);  // start at a nonzero offset
  const std::uint64_t offset = g.offset();
  constexpr std::int64_t n = 23;  // not a multiple of 4
  const Tensor u = uniform({n}, -1.5, 2.5, {.dtype = dt}, &g);
  const Tensor z = normal({n}, 0.5, 2.0, {.dtype = dt}, &g);
  const std::uint64_t z_offset = offset + philox_blocks(n);
  const Tensor hu = u.to(Device::cpu()), hz = z.to(Device::cpu());
  const T* pu = hu.data<T>();
  const T* pz = hz.data<T>();
  using detail::RandomDistribution;
  for (std::int64_t i = 0; i < n; ++i) {
    const int lane = static_cast<int>(i % 4);
    const T eu = detail::random_value<T>(RandomDistribution::uniform, -1.5, 2.5,
                                         philox_block(seed, offset, i), lane);
    const T ez = detail::random_value<T>(RandomDistribution::normal, 0.5, 2.0,
                                         philox_block(seed, z_offset, i), lane);
    EXPECT_EQ(std::memcmp(&pu[i], &eu, sizeof(T)), 0) << "uniform element " << i;
    EXPECT_EQ(std::memcmp(&pz[i], &ez, sizeof(T)), 0) << "normal element " << i;
  }
}

TEST(TensorRandom, ValuesFollowThePhiloxConvention) {
  expect_philox_convention<float>(float32);
  expect_philox_convention<double>(float64);
  expect_philox_convention<Half>(float16);
  expect_philox_convention<BFloat16>(bfloat16);
}

TEST(TensorRandom, UniformWordMapsToTheExpectedFloat) {
  // Independent of random_math.h: element 0 of rand at (seed 9, offset 0) is word 0 * 2^-32.
  Generator g(9);
  const float got = rand({1}, {}, &g).item<float>();
  EXPECT_EQ(got, static_cast<float>(philox_word(9, 0, 0) * std::ldexp(1.0, -32)));
}

// rand is [0, 1) and uniform [low, high) in every floating dtype: rounding to a 16-bit
// float must not produce the excluded upper bound.
TEST(TensorRandom, UniformStaysInsideTheHalfOpenInterval) {
  for (DType dt : kFloatDTypes) {
    SCOPED_TRACE(std::string(name(dt)));
    Generator g(2024);
    const std::vector<double> u = rand({100000}, {.dtype = dt}, &g).to_vector<double>();
    const auto [lo, hi] = std::minmax_element(u.begin(), u.end());
    EXPECT_GE(*lo, 0.0);
    EXPECT_LT(*hi, 1.0);
    EXPECT_LT(*lo, 0.01);
    EXPECT_GT(*hi, 0.99);
    const std::vector<double> w = uniform({20000}, -2.0, 3.0, {.dtype = dt}, &g).to_vector<double>();
    const auto [wlo, whi] = std::minmax_element(w.begin(), w.end());
    EXPECT_GE(*wlo, -2.0);
    EXPECT_LT(*whi, 3.0);
  }
}

TEST(TensorRandom, NormalHasTheRequestedMeanAndStd) {
  Generator g(31);
  constexpr int n = 100000;
  for (auto [mean, stddev] : {std::pair{0.0, 1.0}, std::pair{3.0, 0.5}}) {
    const std::vector<double> v =
        (mean == 0.0 ? randn({n}, {.dtype = float64}, &g)
                     : normal({n}, mean, stddev, {.dtype = float64}, &g))
            .to_vector<double>();
    double sum = 0, sq = 0;
    for (double x : v) sum += x;
    const double m = sum / n;
    for (double x : v) sq += (x - m) * (x - m);
    const double s = std::sqrt(sq / (n - 1));
    // Standard errors: stddev / sqrt(n) ~ 0.0032 for the mean, ~ 0.0022 for the std.
    EXPECT_NEAR(m, mean, 5 * stddev / std::sqrt(n)) << "mean " << mean;
    EXPECT_NEAR(s, stddev, 5 * stddev / std::sqrt(2.0 * n)) << "stddev " << stddev;
  }
  EXPECT_THAT(normal({3}, 4.0, 0.0, {}, &g).to_vector<float>(), ElementsAre(4, 4, 4));
}

TEST(TensorRandom, IntegerDtypesRaiseTypeError) {
  for (DType dt : {int32, int64, uint8, bool_}) {
    try {
      rand({3}, {.dtype = dt});
      ADD_FAILURE() << "rand did not throw for " << dt;
    } catch (const TypeError& e) {
      EXPECT_THAT(e.message(), HasSubstr("rand"));
      EXPECT_THAT(e.message(), HasSubstr(std::string(name(dt))));
    }
  }
  EXPECT_THROW(randn({3}, {.dtype = int64}), TypeError);
}

TEST(TensorRandom, InvalidParametersRaiseValueError) {
  Generator g(1);
  try {
    normal({3}, 0.0, -1.0, {}, &g);
    FAIL() << "normal with stddev -1 did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("stddev"));
  }
  EXPECT_THROW(uniform({3}, 1.0, 0.0, {}, &g), ValueError);
  EXPECT_EQ(g.offset(), 0u);  // a rejected draw reserves nothing
}

}  // namespace
}  // namespace kiln
