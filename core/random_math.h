// The value of element i of a random fill, shared by the CPU loop and the CUDA kernel so
// both devices produce the same numbers for the same (seed, offset).
// uniform: a + (b - a) * u with u in [0, 1); normal: a + b * z with z ~ N(0, 1).
// Both evaluate in double with an explicit fma, so no compiler contraction can make the
// devices disagree; the result is then rounded once to T.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kiln/core/convert.h"
#include "kiln/core/macros.h"
#include "kiln/core/philox.h"

namespace kiln::detail {

enum class RandomDistribution : int { uniform = 0, normal = 1 };

// The largest T below v (v finite): one step of the sign-magnitude bit pattern.
template <class T>
KILN_HOST_DEVICE KILN_FORCEINLINE T next_below(T v) {
  using Bits = std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                  std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
  constexpr Bits kSign = Bits(1) << (8 * sizeof(T) - 1);
  Bits bits;
  memcpy(&bits, static_cast<const void*>(&v), sizeof bits);
  if ((bits & static_cast<Bits>(~kSign)) == 0) {
    bits = kSign | 1;  // +-0 -> the smallest negative subnormal
  } else {
    bits = (bits & kSign) ? bits + 1 : bits - 1;
  }
  memcpy(static_cast<void*>(&v), &bits, sizeof bits);
  return v;
}

template <class T>
KILN_HOST_DEVICE KILN_FORCEINLINE T random_value(RandomDistribution kind, double a, double b,
                                                 const PhiloxBlock& block, int lane) {
  if (kind == RandomDistribution::uniform) {
    // 32 random bits per element: in [0, 1) exactly, for every dtype.
    const double u = static_cast<double>(block.v[lane]) * 2.3283064365386963e-10;  // 2^-32
    const T x = convert<T>(fma(b - a, u, a));
    // Rounding to T (float16 above all) can land on b; keep the interval half-open.
    return (b > a && static_cast<double>(detail::widen(x)) >= b) ? next_below(x) : x;
  }
  const double z = normal_from_block(block, lane);
  return convert<T>(fma(b, z, a));
}

}  // namespace kiln::detail
