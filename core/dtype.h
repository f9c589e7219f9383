// DType: the element types a Tensor can hold, as a small runtime value.
// Compute in float16/bfloat16 accumulates in float32 (see kernels/).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string_view>
#include <type_traits>

#include "kiln/core/error.h"
#include "kiln/core/half.h"

namespace kiln {

enum class DType : std::uint8_t { float32, float16, bfloat16, float64, int32, int64, uint8, bool_ };

// NumPy-style spellings: kiln::float32, kiln::int64, ...
inline constexpr DType float32 = DType::float32;
inline constexpr DType float16 = DType::float16;
inline constexpr DType bfloat16 = DType::bfloat16;
inline constexpr DType float64 = DType::float64;
inline constexpr DType int32 = DType::int32;
inline constexpr DType int64 = DType::int64;
inline constexpr DType uint8 = DType::uint8;
inline constexpr DType bool_ = DType::bool_;

inline constexpr int kNumDTypes = 8;

// Size of one element in bytes.
constexpr std::size_t itemsize(DType dt) {
  switch (dt) {
    case DType::float64:
    case DType::int64: return 8;
    case DType::float32:
    case DType::int32: return 4;
    case DType::float16:
    case DType::bfloat16: return 2;
    case DType::uint8:
    case DType::bool_: return 1;
  }
  return 0;
}

constexpr bool is_floating(DType dt) {
  return dt == DType::float32 || dt == DType::float16 || dt == DType::bfloat16 ||
         dt == DType::float64;
}
constexpr bool is_integral(DType dt) { return !is_floating(dt) && dt != DType::bool_; }

// "float32", "bfloat16", "bool", ...
std::string_view name(DType dt);
// Parses the names above (and "float", "half", "double", "int", "long"); throws TypeError.
DType parse_dtype(std::string_view text);
std::ostream& operator<<(std::ostream& os, DType dt);

// The C++ type of each dtype, and back.
template <DType D> struct cpp_type;
template <> struct cpp_type<DType::float32> { using type = float; };
template <> struct cpp_type<DType::float16> { using type = Half; };
template <> struct cpp_type<DType::bfloat16> { using type = BFloat16; };
template <> struct cpp_type<DType::float64> { using type = double; };
template <> struct cpp_type<DType::int32> { using type = std::int32_t; };
template <> struct cpp_type<DType::int64> { using type = std::int64_t; };
template <> struct cpp_type<DType::uint8> { using type = std::uint8_t; };
template <> struct cpp_type<DType::bool_> { using type = bool; };
template <DType D> using cpp_type_t = typename cpp_type<D>::type;

template <class T> constexpr DType dtype_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, float>) return DType::float32;
  else if constexpr (std::is_same_v<U, Half>) return DType::float16;
  else if constexpr (std::is_same_v<U, BFloat16>) return DType::bfloat16;
  else if constexpr (std::is_same_v<U, double>) return DType::float64;
  else if constexpr (std::is_same_v<U, std::int32_t>) return DType::int32;
  else if constexpr (std::is_same_v<U, std::int64_t>) return DType::int64;
  else if constexpr (std::is_same_v<U, std::uint8_t>) return DType::uint8;
  else if constexpr (std::is_same_v<U, bool>) return DType::bool_;
  else static_assert(sizeof(U) == 0, "kiln: no dtype for this C++ type");
}

// Calls f.template operator()<T>() with T the C++ type of dt:
//   visit_dtype(t.dtype(), [&]<class T>() { fill<T>(...); });
template <class F>
decltype(auto) visit_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::float32: return f.template operator()<float>();
    case DType::float16: return f.template operator()<Half>();
    case DType::bfloat16: return f.template operator()<BFloat16>();
    case DType::float64: return f.template operator()<double>();
    case DType::int32: return f.template operator()<std::int32_t>();
    case DType::int64: return f.template operator()<std::int64_t>();
    case DType::uint8: return f.template operator()<std::uint8_t>();
    case DType::bool_: return f.template operator()<bool>();
  }
  KILN_THROW(InternalError, "visit_dtype: invalid dtype value ", static_cast<int>(dt));
}

}  // namespace kiln
