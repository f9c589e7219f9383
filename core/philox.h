// Philox4x32-10, the counter-based generator behind every random fill in kiln (Salmon,
// Moraes, Dror, Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3", SC11; Random123),
// and the maps from its 32-bit words to uniform and normal floats. Header-only and
// KILN_HOST_DEVICE so the CPU loops and the CUDA kernels run this one definition.
//
// Note [Philox stream convention]
// A random fill of n elements drawn with (seed, offset) gives element i
//   word i % 4 of philox4x32_10({lo32(offset + i/4), hi32(offset + i/4), 0, 0},
//                               lo32(seed), hi32(seed))
// and then advances the generator's offset by ceil(n / 4) (philox_blocks(n)).
// Why: each element is a pure function of (seed, offset, i), with no state carried from
// one element to the next, so a CPU loop, a CUDA grid of any shape and the SIM build all
// produce the same numbers, bit for bit, and a dropout mask or an initial weight is the
// same on `cpu` and `cuda`. Consecutive fills use disjoint counters because the offset
// moves past every block a fill touched.
//
// Normal draws use Box-Muller on the pair of words (0, 1) or (2, 3) of the element's
// block: lanes 0 and 1 take r*cos(theta) and r*sin(theta) of words (0, 1), lanes 2 and 3
// those of words (2, 3). The transform runs in double and rounds once to float, so the
// small differences between host and device libm results (an ulp or two in double)
// almost never reach the float that is returned.
#pragma once

#include <cmath>
#include <cstdint>

#include "kiln/core/macros.h"

namespace kiln {

// One 128-bit Philox counter or output block, as four 32-bit words.
struct PhiloxBlock {
  std::uint32_t v[4];
};

namespace detail {

// Random123's Philox4x32 constants: round multipliers and the Weyl key increments
// (the golden ratio and sqrt(3) - 1, as 32-bit fractions).
inline constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;
inline constexpr int kPhiloxRounds = 10;

KILN_HOST_DEVICE KILN_FORCEINLINE PhiloxBlock philox_round(PhiloxBlock c, std::uint32_t k0,
                                                          std::uint32_t k1) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c.v[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c.v[2];
  const auto hi0 = static_cast<std::uint32_t>(p0 >> 32);
  const auto lo0 = static_cast<std::uint32_t>(p0);
  const auto hi1 = static_cast<std::uint32_t>(p1 >> 32);
  const auto lo1 = static_cast<std::uint32_t>(p1);
  return PhiloxBlock{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
}

}  // namespace detail

// The Philox4x32-10 bijection: ten rounds, the key bumped by the Weyl constants between
// rounds. Matches Random123's philox4x32(ctr, key) and its known-answer vectors.
KILN_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxBlock counter, std::uint32_t key0,
                                                  std::uint32_t key1) {
  for (int r = 0; r < detail::kPhiloxRounds; ++r) {
    if (r > 0) {
      key0 += detail::kPhiloxW0;
      key1 += detail::kPhiloxW1;
    }
    counter = detail::philox_round(counter, key0, key1);
  }
  return counter;
}

// The block that holds element i of a fill drawn at (seed, offset); see the Note.
KILN_HOST_DEVICE inline PhiloxBlock philox_block(std::uint64_t seed, std::uint64_t offset,
                                                 std::uint64_t i) {
  const std::uint64_t ctr = offset + i / 4;
  return philox4x32_10(
      PhiloxBlock{{static_cast<std::uint32_t>(ctr), static_cast<std::uint32_t>(ctr >> 32), 0u, 0u}},
      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// Word i % 4 of philox_block(seed, offset, i): the raw bits of element i.
KILN_HOST_DEVICE inline std::uint32_t philox_word(std::uint64_t seed, std::uint64_t offset,
                                                  std::uint64_t i) {
  return philox_block(seed, offset, i).v[i % 4];
}

// How far a fill of n elements moves the offset: ceil(n / 4) blocks.
KILN_HOST_DEVICE constexpr std::uint64_t philox_blocks(std::uint64_t n) {
  return n / 4 + (n % 4 != 0 ? 1 : 0);
}

// [0, 1) on the float grid of spacing 2^-24: the top 24 bits, exact in float.
KILN_HOST_DEVICE inline float uniform_from_bits(std::uint32_t u) {
  return static_cast<float>(u >> 8) * 5.9604644775390625e-08f;  // 2^-24
}

// [0, 1) on the double grid of spacing 2^-53: the top 53 of the 64 bits (hi:lo).
KILN_HOST_DEVICE inline double uniform_double_from_bits(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 32) | lo;
  return static_cast<double>(bits >> 11) * 1.1102230246251565e-16;  // 2^-53
}

// A standard normal for lane (= i % 4) of block b, by Box-Muller on the lane's word pair.
// u1 = (w + 1) 2^-32 lies in (0, 1], so log(u1) is finite and r <= sqrt(64 ln 2) ~ 6.66.
KILN_HOST_DEVICE inline float normal_from_block(const PhiloxBlock& b, int lane) {
  const int pair = (lane / 2) * 2;
  constexpr double kTwoPow32Inv = 2.3283064365386963e-10;  // 2^-32
  constexpr double kTwoPi = 6.283185307179586;
  const double u1 = (static_cast<double>(b.v[pair]) + 1.0) * kTwoPow32Inv;
  const double u2 = static_cast<double>(b.v[pair + 1]) * kTwoPow32Inv;
  const double r = ::sqrt(-2.0 * ::log(u1));
  const double theta = kTwoPi * u2;
  return static_cast<float>(lane % 2 == 0 ? r * ::cos(theta) : r * ::sin(theta));
}

// A position in a Philox stream: a fill drawn here reads element i with the functions
// below, then the owner moves `offset` on by philox_blocks(n). Small enough to pass by
// value into a kernel.
struct Philox4x32 {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;

  KILN_HOST_DEVICE PhiloxBlock block(std::uint64_t i) const {
    return philox_block(seed, offset, i);
  }
  KILN_HOST_DEVICE std::uint32_t word(std::uint64_t i) const {
    return philox_word(seed, offset, i);
  }
  KILN_HOST_DEVICE float uniform(std::uint64_t i) const { return uniform_from_bits(word(i)); }
  KILN_HOST_DEVICE float normal(std::uint64_t i) const {
    return normal_from_block(block(i), static_cast<int>(i % 4));
  }
};

}  // namespace kiln
