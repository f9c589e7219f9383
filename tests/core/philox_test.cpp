// Philox4x32-10 (core/philox.h): Random123's known-answer vectors, kiln's stream
// convention (Note [Philox stream convention]), and the uniform and normal maps.
#include "kiln/core/philox.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln {
namespace {

struct KnownAnswer {
  const char* name;
  PhiloxBlock counter;
  std::uint32_t key0, key1;
  PhiloxBlock expected;
};

// Random123 tests/kat_vectors (github.com/DEShawResearch/random123), the three
// "philox4x32 10" lines; columns are counter (4 words), key (2 words), expected (4 words).
constexpr KnownAnswer kKnownAnswers[] = {
    {"zeros", {{0x00000000, 0x00000000, 0x00000000, 0x00000000}}, 0x00000000, 0x00000000,
     {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
    {"ones", {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
     {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
    {"pi", {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
     {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
};

TEST(Philox, MatchesRandom123KnownAnswerVectors) {
  for (const auto& kat : kKnownAnswers) {
    const PhiloxBlock out = philox4x32_10(kat.counter, kat.key0, kat.key1);
    for (int w = 0; w < 4; ++w) {
      EXPECT_EQ(out.v[w], kat.expected.v[w]) << kat.name << " word " << w;
    }
  }
}

TEST(Philox, WordFollowsStreamConvention) {
  const std::uint64_t seed = 0x0123456789abcdefull;
  const std::uint64_t offset = 0x00000001fffffffeull;  // the counter crosses 2^32 below
  for (std::uint64_t i = 0; i < 64; ++i) {
    const std::uint64_t ctr = offset + i / 4;
    const PhiloxBlock block = philox4x32_10(
        {{static_cast<std::uint32_t>(ctr), static_cast<std::uint32_t>(ctr >> 32), 0, 0}},
        0x89abcdefu, 0x01234567u);
    EXPECT_EQ(philox_word(seed, offset, i), block.v[i % 4]) << "element " << i;
  }
}

TEST(Philox, ElementsFourApartUseConsecutiveCounters) {
  const std::uint64_t seed = 42;
  for (std::uint64_t i = 0; i < 32; ++i) {
    EXPECT_EQ(philox_word(seed, 7, i + 4), philox_word(seed, 8, i)) << "element " << i;
  }
}

TEST(Philox, FourElementsShareOneBlock) {
  const PhiloxBlock block = philox_block(5, 9, 12);
  for (std::uint64_t i = 12; i < 16; ++i) {
    EXPECT_EQ(philox_word(5, 9, i), block.v[i % 4]);
  }
  EXPECT_NE(philox_word(5, 9, 16), block.v[0]);
}

TEST(Philox, HighSeedAndOffsetBitsChangeTheStream) {
  const std::uint64_t lo = 1234;
  const std::uint64_t hi = lo | (std::uint64_t{1} << 40);
  EXPECT_NE(philox_word(lo, 0, 0), philox_word(hi, 0, 0));
  EXPECT_NE(philox_word(0, lo, 0), philox_word(0, hi, 0));
}

TEST(Philox, IsDeterministicAndSeedSensitive) {
  std::vector<std::uint32_t> a, b, c;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    a.push_back(philox_word(2024, 3, i));
    b.push_back(philox_word(2024, 3, i));
    c.push_back(philox_word(2025, 3, i));
  }
  EXPECT_EQ(a, b);
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == c[i];
  EXPECT_LE(same, 1);
}

TEST(Philox, BlocksForFillRoundUp) {
  EXPECT_EQ(philox_blocks(0), 0u);
  EXPECT_EQ(philox_blocks(1), 1u);
  EXPECT_EQ(philox_blocks(4), 1u);
  EXPECT_EQ(philox_blocks(5), 2u);
  EXPECT_EQ(philox_blocks(1001), 251u);
}

TEST(Philox, GeneratorStructAgreesWithFreeFunctions) {
  const Philox4x32 gen{.seed = 77, .offset = 1000};
  for (std::uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(gen.word(i), philox_word(77, 1000, i));
    EXPECT_EQ(gen.uniform(i), uniform_from_bits(philox_word(77, 1000, i)));
    EXPECT_EQ(gen.normal(i),
              normal_from_block(philox_block(77, 1000, i), static_cast<int>(i % 4)));
  }
}

TEST(PhiloxUniform, MapsBitsIntoHalfOpenUnitInterval) {
  EXPECT_EQ(uniform_from_bits(0u), 0.0f);
  EXPECT_EQ(uniform_from_bits(0xffffffffu), 1.0f - std::ldexp(1.0f, -24));
  EXPECT_EQ(uniform_from_bits(0x80000000u), 0.5f);
  EXPECT_EQ(uniform_double_from_bits(0u, 0u), 0.0);
  EXPECT_EQ(uniform_double_from_bits(0xffffffffu, 0xffffffffu), 1.0 - std::ldexp(1.0, -53));
  EXPECT_EQ(uniform_double_from_bits(0x80000000u, 0u), 0.5);
  // The low word supplies the bottom 21 of the 53 bits.
  EXPECT_EQ(uniform_double_from_bits(0u, 0x800u), std::ldexp(1.0, -53));
}

TEST(PhiloxUniform, SampleHasUniformMeanAndVariance) {
  constexpr int kN = 100000;
  double sum = 0, sum_sq = 0;
  float lo = 1, hi = 0;
  for (int i = 0; i < kN; ++i) {
    const float u = uniform_from_bits(philox_word(31337, 0, static_cast<std::uint64_t>(i)));
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    sum_sq += static_cast<double>(u) * u;
  }
  const double mean = sum / kN;
  const double var = sum_sq / kN - mean * mean;
  // Standard errors at n = 1e5: mean 9.1e-4, variance 2.4e-4; these are ~5 of them.
  EXPECT_NEAR(mean, 0.5, 5e-3);
  EXPECT_NEAR(var, 1.0 / 12.0, 1.5e-3);
  EXPECT_LT(lo, 1e-3f);
  EXPECT_GT(hi, 1 - 1e-3f);
}

TEST(PhiloxNormal, BoxMullerOnKnownWords) {
  // u1 = (0x7fffffff + 1) 2^-32 = 1/2, so r = sqrt(2 ln 2); u2 = 0 gives theta = 0.
  const double r = std::sqrt(2.0 * std::log(2.0));
  PhiloxBlock b{{0x7fffffffu, 0u, 0x7fffffffu, 0x40000000u}};  // words 2,3: theta = pi/2
  EXPECT_FLOAT_EQ(normal_from_block(b, 0), static_cast<float>(r));
  EXPECT_NEAR(normal_from_block(b, 1), 0.0f, 1e-7f);
  EXPECT_NEAR(normal_from_block(b, 2), 0.0f, 1e-7f);
  EXPECT_FLOAT_EQ(normal_from_block(b, 3), static_cast<float>(r));
}

TEST(PhiloxNormal, ExtremeWordsStayFinite) {
  // Word 0 -> u1 = 2^-32, the largest radius; word 0xffffffff -> u1 = 1, radius 0.
  const PhiloxBlock smallest_u1{{0u, 0u, 0xffffffffu, 0x12345678u}};
  EXPECT_FLOAT_EQ(normal_from_block(smallest_u1, 0),
                  static_cast<float>(std::sqrt(64.0 * std::log(2.0))));
  EXPECT_EQ(normal_from_block(smallest_u1, 2), 0.0f);
  EXPECT_EQ(normal_from_block(smallest_u1, 3), 0.0f);
}

TEST(PhiloxNormal, LanesPairUpOnTheirOwnWords) {
  const PhiloxBlock a = philox_block(9, 0, 0);
  PhiloxBlock b = a;
  b.v[0] ^= 0xdeadbeefu;  // touches lanes 0 and 1 only
  EXPECT_NE(normal_from_block(a, 0), normal_from_block(b, 0));
  EXPECT_NE(normal_from_block(a, 1), normal_from_block(b, 1));
  EXPECT_EQ(normal_from_block(a, 2), normal_from_block(b, 2));
  EXPECT_EQ(normal_from_block(a, 3), normal_from_block(b, 3));
  // The pair shares one radius: n0^2 + n1^2 = -2 ln u1.
  const double n0 = normal_from_block(a, 0), n1 = normal_from_block(a, 1);
  const double u1 = (static_cast<double>(a.v[0]) + 1.0) * std::ldexp(1.0, -32);
  EXPECT_NEAR(n0 * n0 + n1 * n1, -2.0 * std::log(u1), 1e-5 * (1 - 2.0 * std::log(u1)));
}

TEST(PhiloxNormal, SampleHasStandardMeanAndVariance) {
  constexpr int kN = 100000;
  double sum = 0, sum_sq = 0, sum_4 = 0;
  for (int i = 0; i < kN; ++i) {
    const auto idx = static_cast<std::uint64_t>(i);
    const double x = normal_from_block(philox_block(271828, 5, idx), i % 4);
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sum_sq += x * x;
    sum_4 += x * x * x * x;
  }
  const double mean = sum / kN;
  const double var = sum_sq / kN - mean * mean;
  // Standard errors at n = 1e5: mean 3.2e-3, variance 4.5e-3, fourth moment 0.03.
  EXPECT_NEAR(mean, 0.0, 0.016);
  EXPECT_NEAR(var, 1.0, 0.025);
  EXPECT_NEAR(sum_4 / kN, 3.0, 0.15);
}

}  // namespace
}  // namespace kiln
