// Half (IEEE binary16) and BFloat16 storage types, usable on host and device.
// Conversions from float round to nearest, ties to even; NaN stays NaN (quiet), and
// values past the largest finite number become Inf, as CUDA's __float2half_rn does.
// Arithmetic is done by converting to float: storage in 16 bits, math in 32.
#pragma once

#include <cstdint>
#include <cstring>

#include "kiln/core/macros.h"

namespace kiln {
namespace detail {

KILN_HOST_DEVICE KILN_FORCEINLINE std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
KILN_HOST_DEVICE KILN_FORCEINLINE float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// float -> binary16 bits, round to nearest even (handles subnormals, Inf, NaN).
KILN_HOST_DEVICE inline std::uint16_t float_to_half_bits(float f) {
  const std::uint32_t x = float_bits(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Inf or NaN
    return static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to Inf
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25 rounds to 0
    const std::uint32_t exp = abs >> 23;
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - exp;  // 14..24: aligns to units of 2^-24
    std::uint32_t q = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);
  }
  // Normal: rebias exponent 127 -> 15, keep 10 mantissa bits, round on the 13 dropped.
  std::uint32_t h = ((abs - 0x38000000u) >> 13);
  const std::uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
  return static_cast<std::uint16_t>(sign | h);
}

KILN_HOST_DEVICE inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13));  // Inf / NaN
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    // Subnormal: value = mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

KILN_HOST_DEVICE inline std::uint16_t float_to_bfloat16_bits(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN, sign kept
  }
  const std::uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);  // ties to even
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}

KILN_HOST_DEVICE inline float bfloat16_bits_to_float(std::uint16_t b) {
  return bits_float(static_cast<std::uint32_t>(b) << 16);
}

// double -> float rounded to odd: when inexact, the last mantissa bit is forced to 1.
// Rounding that float to a 16-bit type then equals rounding the double directly (float's
// 24 bits >= 2p + 2 for p = 11 and 8), so Half(double) and BFloat16(double) round once.
KILN_HOST_DEVICE inline float double_to_float_round_odd(double d) {
  const float f = static_cast<float>(d);
  const double back = static_cast<double>(f);
  if (back == d || d != d || back - back != 0) return f;  // exact, NaN, or overflowed to Inf
  std::uint32_t bits = float_bits(f);
  if ((bits & 1u) == 0) {
    const bool too_big = (d > 0) ? back > d : back < d;  // |f| > |d|
    bits = too_big ? bits - 1u : bits + 1u;  // sign-magnitude: step the magnitude
  }
  return bits_float(bits);
}

}  // namespace detail

struct Half {
  std::uint16_t bits;  // no initializer: trivial, so __shared__ arrays of it are allowed; Half{} is zero

  Half() = default;
  KILN_HOST_DEVICE explicit Half(float f) : bits(detail::float_to_half_bits(f)) {}
  KILN_HOST_DEVICE explicit Half(double d) : Half(detail::double_to_float_round_odd(d)) {}
  KILN_HOST_DEVICE explicit operator float() const { return detail::half_bits_to_float(bits); }
  KILN_HOST_DEVICE static constexpr Half from_bits(std::uint16_t b) {
    Half h;
    h.bits = b;
    return h;
  }
};

struct BFloat16 {
  std::uint16_t bits;  // no initializer: trivial, so __shared__ arrays of it are allowed; Half{} is zero

  BFloat16() = default;
  KILN_HOST_DEVICE explicit BFloat16(float f) : bits(detail::float_to_bfloat16_bits(f)) {}
  KILN_HOST_DEVICE explicit BFloat16(double d) : BFloat16(detail::double_to_float_round_odd(d)) {}
  KILN_HOST_DEVICE explicit operator float() const {
    return detail::bfloat16_bits_to_float(bits);
  }
  KILN_HOST_DEVICE static constexpr BFloat16 from_bits(std::uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2);

}  // namespace kiln
