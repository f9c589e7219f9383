// Element conversion between kiln's dtypes, shared by the CPU and CUDA copy kernels.
// Float-to-integer follows C++ truncation (as NumPy and PyTorch do for in-range values);
// anything to bool is "!= 0" (NaN -> true); 16-bit floats convert through float.
#pragma once

#include <type_traits>

#include "kiln/core/half.h"
#include "kiln/core/macros.h"

namespace kiln {
namespace detail {
template <class T>
inline constexpr bool is_half_like = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// Widens a value of any kiln element type to a C++ arithmetic type.
template <class From>
KILN_HOST_DEVICE KILN_FORCEINLINE auto widen(From v) {
  if constexpr (is_half_like<From>) {
    return static_cast<float>(v);
  } else {
    return v;
  }
}
}  // namespace detail

template <class To, class From>
KILN_HOST_DEVICE KILN_FORCEINLINE To convert(From value) {
  if constexpr (std::is_same_v<To, From>) {
    return value;
  } else {
    const auto wide = detail::widen(value);
    if constexpr (std::is_same_v<To, bool>) {
      return wide != 0;
    } else if constexpr (detail::is_half_like<To>) {
      // From float: one rounding. From anything wider: through double, which Half and
      // BFloat16 round once (see detail::double_to_float_round_odd).
      if constexpr (std::is_same_v<decltype(wide), const float>) {
        return To(wide);
      } else {
        return To(static_cast<double>(wide));
      }
    } else {
      return static_cast<To>(wide);
    }
  }
}

}  // namespace kiln
