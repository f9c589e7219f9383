// The formulas of the unary ops and of their derivatives, once, for both devices.
// Unary<Op>::forward(x, alpha) and Unary<Op>::backward(x, y, g, alpha) work on the compute
// type C (float or double); y is the forward output, g the output gradient.
#pragma once

#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/kernels/math.h"

namespace kiln {

// X-macro list: the enum and the visitor below stay in step.
#define KILN_UNARY_OPS(X)                                                                    \
  X(neg) X(abs) X(exp) X(log) X(log1p) X(sqrt) X(rsqrt) X(square) X(sign) X(relu) X(relu6) \
  X(leaky_relu) X(elu) X(selu) X(gelu) X(gelu_tanh) X(sigmoid) X(hard_sigmoid) X(tanh)      \
  X(softplus) X(softsign) X(silu)

enum class UnaryOp : std::uint8_t {
#define KILN_ENUM_ENTRY(name) name,
  KILN_UNARY_OPS(KILN_ENUM_ENTRY)
#undef KILN_ENUM_ENTRY
};

// Calls f.template operator()<Op>() for the runtime op (host code: the dispatch).
template <class F>
decltype(auto) visit_unary_op(UnaryOp op, F&& f) {
  switch (op) {
#define KILN_VISIT_ENTRY(name) \
  case UnaryOp::name: return f.template operator()<UnaryOp::name>();
    KILN_UNARY_OPS(KILN_VISIT_ENTRY)
#undef KILN_VISIT_ENTRY
  }
  return f.template operator()<UnaryOp::neg>();  // unreachable: every enumerator is listed
}

template <UnaryOp Op>
struct Unary;

#define KILN_UNARY(OP, FWD, BWD)                                                        \
  template <>                                                                           \
  struct Unary<UnaryOp::OP> {                                                           \
    template <class C>                                                                  \
    KILN_HOST_DEVICE static C forward(C x, C alpha) { (void)alpha; return FWD; }        \
    template <class C>                                                                  \
    KILN_HOST_DEVICE static C backward(C x, C y, C g, C alpha) {                        \
      (void)x; (void)y; (void)alpha; return BWD;                                        \
    }                                                                                   \
  };

namespace unary_detail {
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C sigmoid(C x) {
  // Stable for both signs: never exponentiates a large positive number.
  if (x >= C(0)) return C(1) / (C(1) + math::exp(-x));
  const C e = math::exp(x);
  return e / (C(1) + e);
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C sign(C x) {
  return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x);  // keeps NaN and signed zero
}
inline constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
inline constexpr double kSeluScale = 1.0507009873554804934193349852946;
inline constexpr double kInvSqrt2 = 0.70710678118654752440;
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;
inline constexpr double kSqrt2OverPi = 0.79788456080286535588;
inline constexpr double kGeluCubic = 0.044715;
}  // namespace unary_detail

// NaN propagates through every op: comparisons are written so a NaN input takes the
// branch that returns an expression of x.
KILN_UNARY(neg, -x, -g)
KILN_UNARY(abs, x < C(0) ? -x : x, g * unary_detail::sign(x))
KILN_UNARY(exp, math::exp(x), g * y)
KILN_UNARY(log, math::log(x), g / x)
KILN_UNARY(log1p, math::log1p(x), g / (C(1) + x))
KILN_UNARY(sqrt, math::sqrt(x), g / (C(2) * y))
KILN_UNARY(rsqrt, C(1) / math::sqrt(x), C(-0.5) * g * y * y * y)
KILN_UNARY(square, x * x, C(2) * x * g)
KILN_UNARY(sign, unary_detail::sign(x), C(0) * g)
KILN_UNARY(relu, x < C(0) ? C(0) : x, x > C(0) ? g : C(0))
KILN_UNARY(relu6, x < C(0) ? C(0) : (x > C(6) ? C(6) : x), (x > C(0) && x < C(6)) ? g : C(0))
KILN_UNARY(leaky_relu, x < C(0) ? alpha * x : x, x > C(0) ? g : alpha * g)
KILN_UNARY(elu, x > C(0) ? x : alpha * math::expm1(x), x > C(0) ? g : g * (y + alpha))
KILN_UNARY(selu,
           x > C(0) ? C(unary_detail::kSeluScale) * x
                    : C(unary_detail::kSeluScale * unary_detail::kSeluAlpha) * math::expm1(x),
           x > C(0) ? C(unary_detail::kSeluScale) * g
                    : g * (y + C(unary_detail::kSeluScale * unary_detail::kSeluAlpha)))
KILN_UNARY(gelu, C(0.5) * x * (C(1) + math::erf(x * C(unary_detail::kInvSqrt2))),
           g * (C(0.5) * (C(1) + math::erf(x * C(unary_detail::kInvSqrt2))) +
                x * C(unary_detail::kInvSqrt2Pi) * math::exp(C(-0.5) * x * x)))
KILN_UNARY(gelu_tanh,
           C(0.5) * x *
               (C(1) + math::tanh(C(unary_detail::kSqrt2OverPi) * (x + C(unary_detail::kGeluCubic) * x * x * x))),
           g * [&] {
             const C t = math::tanh(C(unary_detail::kSqrt2OverPi) *
                                    (x + C(unary_detail::kGeluCubic) * x * x * x));
             return C(0.5) * (C(1) + t) +
                    C(0.5) * x * (C(1) - t * t) * C(unary_detail::kSqrt2OverPi) *
                        (C(1) + C(3 * unary_detail::kGeluCubic) * x * x);
           }())
KILN_UNARY(sigmoid, unary_detail::sigmoid(x), g * y * (C(1) - y))
KILN_UNARY(hard_sigmoid, x < C(-3) ? C(0) : (x > C(3) ? C(1) : x / C(6) + C(0.5)),
           (x > C(-3) && x < C(3)) ? g / C(6) : C(0))
KILN_UNARY(tanh, math::tanh(x), g * (C(1) - y * y))
KILN_UNARY(softplus, (x > C(0) ? x : C(0)) + math::log1p(math::exp(-math::fabs(x))),
           g * unary_detail::sigmoid(x))
KILN_UNARY(softsign, x / (C(1) + math::fabs(x)),
           g / ((C(1) + math::fabs(x)) * (C(1) + math::fabs(x))))
KILN_UNARY(silu, x * unary_detail::sigmoid(x),
           g * [&] {
             const C s = unary_detail::sigmoid(x);
             return s * (C(1) + x * (C(1) - s));
           }())
#undef KILN_UNARY

// Ops defined on signed integers too (no gradient there): neg, abs, square, sign, relu.
constexpr bool unary_accepts_integers(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::square || op == UnaryOp::sign ||
         op == UnaryOp::relu;
}

// Whether Unary<Op> is instantiated for storage type T: floating types, and the signed
// integers (int32, int64) for the ops above; never bool or uint8.
template <UnaryOp Op, class T>
inline constexpr bool unary_supports =
    !std::is_integral_v<T> || (std::is_signed_v<T> && unary_accepts_integers(Op));

// Element functors over storage types: convert to the compute type, apply, convert back.
template <UnaryOp Op, class T>
struct UnaryForwardFn {
  math::compute_t<T> alpha;
  KILN_HOST_DEVICE T operator()(T x) const {
    using C = math::compute_t<T>;
    return convert<T>(Unary<Op>::forward(convert<C>(x), alpha));
  }
};

template <UnaryOp Op, class T>
struct UnaryBackwardFn {
  math::compute_t<T> alpha;
  KILN_HOST_DEVICE T operator()(T x, T y, T g) const {
    using C = math::compute_t<T>;
    return convert<T>(Unary<Op>::backward(convert<C>(x), convert<C>(y), convert<C>(g), alpha));
  }
};

}  // namespace kiln
