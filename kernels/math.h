// Scalar math for kernels that both devices share: overloads for float and double that
// resolve to the C library on the host (and in SIM) and to CUDA's device math under nvcc.
// Always call them qualified (kiln::math::exp): inside namespace kiln an unqualified exp
// would find the tensor op kiln::exp(const Tensor&).
#pragma once

#include <cmath>
#include <type_traits>

#include "kiln/core/half.h"
#include "kiln/core/macros.h"

namespace kiln::math {

#define KILN_MATH_UNARY(name, f32, f64)                                   \
  KILN_HOST_DEVICE KILN_FORCEINLINE float name(float x) { return ::f32(x); } \
  KILN_HOST_DEVICE KILN_FORCEINLINE double name(double x) { return ::f64(x); }
KILN_MATH_UNARY(exp, expf, exp)
KILN_MATH_UNARY(expm1, expm1f, expm1)
KILN_MATH_UNARY(log, logf, log)
KILN_MATH_UNARY(log1p, log1pf, log1p)
KILN_MATH_UNARY(sqrt, sqrtf, sqrt)
KILN_MATH_UNARY(tanh, tanhf, tanh)
KILN_MATH_UNARY(erf, erff, erf)
KILN_MATH_UNARY(fabs, fabsf, fabs)
#undef KILN_MATH_UNARY

KILN_HOST_DEVICE KILN_FORCEINLINE float pow(float x, float y) { return ::powf(x, y); }
KILN_HOST_DEVICE KILN_FORCEINLINE double pow(double x, double y) { return ::pow(x, y); }

template <class T>
KILN_HOST_DEVICE KILN_FORCEINLINE bool isnan(T x) {
  return x != x;
}

// The type kernels compute in: float for the 16-bit floats, the type itself otherwise.
template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

}  // namespace kiln::math
