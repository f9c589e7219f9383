// Half and BFloat16 (core/half.h): rounding to nearest even, subnormals, the overflow
// threshold, NaN, signed zero, an exhaustive round trip of every 16-bit pattern, and
// float -> 16-bit conversion against a float64 reference rounding.
#include "kiln/core/half.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace kiln {
namespace {

std::uint16_t half_bits(float f) { return Half(f).bits; }
std::uint16_t bf16_bits(float f) { return BFloat16(f).bits; }
float from_half(std::uint16_t b) { return static_cast<float>(Half::from_bits(b)); }
float from_bf16(std::uint16_t b) { return static_cast<float>(BFloat16::from_bits(b)); }
float bits_to_float(std::uint32_t u) { return detail::bits_float(u); }

// Rounds a finite float to the grid of a binary format with `mant_bits` stored mantissa
// bits, smallest normal exponent `min_exp`, and largest finite value `max_finite`, in
// float64 where every step is exact: scale to units of the ulp, rint (ties to even under
// the default rounding mode), scale back. Values that round past max_finite are Inf.
double reference_round(float f, int mant_bits, int min_exp, double max_finite) {
  const double x = f;
  if (x == 0) return x;
  const int exp = std::max(std::ilogb(x), min_exp);
  const double ulp = std::ldexp(1.0, exp - mant_bits);
  const double r = std::rint(x / ulp) * ulp;
  if (std::fabs(r) > max_finite) return std::copysign(HUGE_VAL, x);
  return r;
}
double reference_half(float f) { return reference_round(f, 10, -14, 65504.0); }
double reference_bf16(float f) {
  return reference_round(f, 7, -126, static_cast<double>(bits_to_float(0x7f7f0000u)));
}

bool same_value(float got, double want) {
  return got == static_cast<float>(want) && std::signbit(got) == std::signbit(want);
}

TEST(Half, RoundsTiesToEven) {
  // At 1 the half ulp is 2^-10; a tie sits at 2^-11 past a grid point.
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);       // 1 (even) wins
  EXPECT_EQ(half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);   // 1 + 2^-9 (even) wins
  EXPECT_EQ(half_bits(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(half_bits(2049.0f), half_bits(2048.0f));  // ulp 2 above 2048
  EXPECT_EQ(half_bits(2051.0f), half_bits(2052.0f));
  EXPECT_EQ(half_bits(-2049.0f), half_bits(-2048.0f));
  // A tie whose rounding carries into the exponent: 2047.5 -> 2048.
  EXPECT_EQ(from_half(half_bits(2047.5f)), 2048.0f);
}

TEST(Half, Subnormals) {
  const float tiny = std::ldexp(1.0f, -24);  // smallest half subnormal
  EXPECT_EQ(half_bits(tiny), 0x0001);
  EXPECT_EQ(half_bits(-tiny), 0x8001);
  EXPECT_EQ(half_bits(tiny / 2), 0x0000);                             // tie -> 0 (even)
  EXPECT_EQ(half_bits(std::nextafter(tiny / 2, 1.0f)), 0x0001);
  EXPECT_EQ(half_bits(1.5f * tiny), 0x0002);                          // tie -> 2 (even)
  EXPECT_EQ(half_bits(2.5f * tiny), 0x0002);
  EXPECT_EQ(half_bits(1023 * tiny), 0x03ff);                          // largest subnormal
  EXPECT_EQ(half_bits(1023.5f * tiny), 0x0400);                       // ties up to 2^-14
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -14)), 0x0400);                // smallest normal
  EXPECT_EQ(half_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(from_half(0x0001), tiny);
  EXPECT_EQ(from_half(0x03ff), 1023 * tiny);
  EXPECT_EQ(from_half(0x8200), -512 * tiny);
}

TEST(Half, LargestFiniteAndOverflow) {
  EXPECT_EQ(half_bits(65504.0f), 0x7bff);
  EXPECT_EQ(from_half(0x7bff), 65504.0f);
  EXPECT_EQ(half_bits(std::nextafter(65520.0f, 0.0f)), 0x7bff);  // below the tie
  EXPECT_EQ(half_bits(65520.0f), 0x7c00);                        // the tie goes to Inf
  EXPECT_EQ(half_bits(-65520.0f), 0xfc00);
  EXPECT_EQ(half_bits(1e10f), 0x7c00);
  EXPECT_EQ(half_bits(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(half_bits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(half_bits(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(from_half(0x7c00), std::numeric_limits<float>::infinity());
}

TEST(Half, NaNStaysNaN) {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  const float snan_low_payload = bits_to_float(0x7f800001u);  // payload below half's bits
  for (float nan : {qnan, -qnan, snan_low_payload, bits_to_float(0xffc00123u)}) {
    const std::uint16_t h = half_bits(nan);
    EXPECT_EQ(h & 0x7c00, 0x7c00) << std::hex << detail::float_bits(nan);
    EXPECT_NE(h & 0x0200, 0) << "quiet bit, from " << std::hex << detail::float_bits(nan);
    EXPECT_EQ(h >> 15, detail::float_bits(nan) >> 31) << "sign";
    EXPECT_TRUE(std::isnan(from_half(h)));
  }
  EXPECT_TRUE(std::isnan(from_half(0x7c01)));  // a signalling half NaN widens to NaN
}

TEST(Half, SignedZero) {
  EXPECT_EQ(half_bits(0.0f), 0x0000);
  EXPECT_EQ(half_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(from_half(0x8000)));
  EXPECT_EQ(from_half(0x8000), 0.0f);
  EXPECT_EQ(half_bits(-std::ldexp(1.0f, -26)), 0x8000);  // underflow keeps the sign
}

TEST(Half, EveryBitPatternRoundTripsThroughFloat) {
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0;
    const std::uint16_t back = half_bits(from_half(h));
    if (is_nan) {
      // NaN comes back as a quiet NaN of the same sign; the payload is not kept.
      ASSERT_EQ(back & 0xfe00, (h & 0x8000) | 0x7e00) << "half bits 0x" << std::hex << b;
    } else {
      ASSERT_EQ(back, h) << "half bits 0x" << std::hex << b;
    }
  }
}

// Random floats from the range where half has something to say (2^-26 .. 2^17), plus
// random bit patterns of every exponent, plus exact midpoints of adjacent halves (ties).
TEST(Half, FloatConversionMatchesFloat64ReferenceRounding) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  std::mt19937 rng(12345);
  std::uniform_int_distribution<std::uint32_t> any;
  std::uniform_int_distribution<std::uint32_t> exp_in_range(127 - 26, 127 + 17);
  for (int i = 0; i < 300000; ++i) {
    std::uint32_t u = any(rng);
    if (i % 3 == 0) u = (u & 0x807fffffu) | (exp_in_range(rng) << 23);
    if (i % 3 == 1) {  // midpoint of half h and its successor (both finite, same sign)
      const auto h = static_cast<std::uint16_t>(u % 0x7bff);
      const float mid = (from_half(h) + from_half(static_cast<std::uint16_t>(h + 1))) / 2;
      u = detail::float_bits((u >> 31) ? -mid : mid);
    }
    const float f = bits_to_float(u);
    if (std::isnan(f)) continue;
    ASSERT_TRUE(same_value(from_half(half_bits(f)), reference_half(f)))
        << "float " << f << " (bits 0x" << std::hex << u << "): got half 0x" << half_bits(f)
        << std::dec << " = " << from_half(half_bits(f)) << ", reference " << reference_half(f);
  }
}

TEST(BFloat16, RoundsTiesToEven) {
  // At 1 the bfloat16 ulp is 2^-7; a tie sits at 2^-8 past a grid point.
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(bf16_bits(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)), 0x3f81);
  EXPECT_EQ(bf16_bits(-(1.0f + std::ldexp(1.0f, -8))), 0xbf80);
  EXPECT_EQ(bf16_bits(257.0f), bf16_bits(256.0f));  // ulp 2 above 256
  EXPECT_EQ(bf16_bits(259.0f), bf16_bits(260.0f));
}

TEST(BFloat16, SubnormalsZeroInfAndOverflow) {
  EXPECT_EQ(bf16_bits(bits_to_float(0x00010000u)), 0x0001);  // smallest bf16 subnormal
  EXPECT_EQ(bf16_bits(bits_to_float(0x00008000u)), 0x0000);  // tie -> 0 (even)
  EXPECT_EQ(bf16_bits(bits_to_float(0x00018000u)), 0x0002);  // tie -> 2 (even)
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(from_bf16(0x8000)));
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(bf16_bits(-std::numeric_limits<float>::infinity()), 0xff80);
  // Largest finite bf16 is 0x7f7f; float's max lies past the midpoint to Inf.
  EXPECT_EQ(bf16_bits(bits_to_float(0x7f7f0000u)), 0x7f7f);
  EXPECT_EQ(bf16_bits(bits_to_float(0x7f7f7fffu)), 0x7f7f);
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::max()), 0x7f80);
}

TEST(BFloat16, NaNStaysNaN) {
  for (std::uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff80ffffu}) {
    const std::uint16_t b = bf16_bits(bits_to_float(nan));
    EXPECT_EQ(b & 0x7f80, 0x7f80) << std::hex << nan;
    EXPECT_NE(b & 0x0040, 0) << "quiet bit, from " << std::hex << nan;
    EXPECT_EQ(b >> 15, nan >> 31) << "sign";
    EXPECT_TRUE(std::isnan(from_bf16(b)));
  }
}

TEST(BFloat16, EveryBitPatternRoundTripsThroughFloat) {
  for (std::uint32_t u = 0; u <= 0xffff; ++u) {
    const auto b = static_cast<std::uint16_t>(u);
    const bool is_nan = (b & 0x7f80) == 0x7f80 && (b & 0x007f) != 0;
    const std::uint16_t back = bf16_bits(from_bf16(b));
    // NaN only gains the quiet bit; bfloat16 keeps the rest of its payload.
    ASSERT_EQ(back, is_nan ? (b | 0x0040) : b) << "bfloat16 bits 0x" << std::hex << u;
  }
}

TEST(BFloat16, FloatConversionMatchesFloat64ReferenceRounding) {
  std::mt19937 rng(54321);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 300000; ++i) {
    std::uint32_t u = any(rng);
    if (i % 2 == 1) u = (u & 0xffff0000u) | 0x8000u;  // an exact tie
    const float f = bits_to_float(u);
    if (std::isnan(f)) continue;
    ASSERT_TRUE(same_value(from_bf16(bf16_bits(f)), reference_bf16(f)))
        << "float " << f << " (bits 0x" << std::hex << u << "): got bfloat16 0x"
        << bf16_bits(f) << std::dec << ", reference " << reference_bf16(f);
  }
}

}  // namespace
}  // namespace kiln

// Half(double) and BFloat16(double) round once: a value just above a float-level tie
// must not be rounded to float first (which would land on the tie and go to even).
TEST(HalfConversion, FromDoubleRoundsOnce) {
  EXPECT_EQ(kiln::Half(1.0004882812509095).bits, 0x3c01);      // 1 + 2^-11 + 2^-40
  EXPECT_EQ(kiln::Half(-1.0004882812509095).bits, 0xbc01);
  EXPECT_EQ(kiln::Half(1.0004882812500000).bits, 0x3c00);      // the exact tie: to even
  EXPECT_EQ(kiln::BFloat16(1.0039062500009095).bits, 0x3f81);  // 1 + 2^-8 + 2^-40
  EXPECT_EQ(kiln::BFloat16(1.00390625).bits, 0x3f80);
  EXPECT_EQ(kiln::Half(1e300).bits, 0x7c00);
}
