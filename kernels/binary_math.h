// The formulas of the binary family, once, for both devices: Binary<Op>::forward(a, b) and
// the gradients grad_a / grad_b(a, b, g), comparisons, where, clamp and axpy. They work on
// the compute type C (float for the 16-bit floats, else the storage type); the *Fn
// functors at the bottom convert from and to the storage type T around them.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kiln/core/convert.h"
#include "kiln/kernels/math.h"

namespace kiln {

// X-macro lists: each enum and its visitor stay in step.
#define KILN_BINARY_OPS(X) X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum)
#define KILN_COMPARE_OPS(X) X(eq) X(ne) X(lt) X(le) X(gt) X(ge)

enum class BinaryOp : std::uint8_t {
#define KILN_ENUM_ENTRY(name) name,
  KILN_BINARY_OPS(KILN_ENUM_ENTRY)
};
enum class CompareOp : std::uint8_t { KILN_COMPARE_OPS(KILN_ENUM_ENTRY) };
#undef KILN_ENUM_ENTRY

// Ops with an op(s, x) scalar form (sub(s, x), div(s, x)); the others need no
// instantiation of the scalar-first kernels on either device.
constexpr bool has_scalar_first(BinaryOp op) { return op == BinaryOp::sub || op == BinaryOp::div; }

// Calls f.template operator()<Op>() for the runtime op (host code: the dispatch).
template <class F>
decltype(auto) visit_binary_op(BinaryOp op, F&& f) {
  switch (op) {
#define KILN_VISIT_ENTRY(name) \
  case BinaryOp::name: return f.template operator()<BinaryOp::name>();
    KILN_BINARY_OPS(KILN_VISIT_ENTRY)
#undef KILN_VISIT_ENTRY
  }
  return f.template operator()<BinaryOp::add>();  // unreachable: every enumerator is listed
}

template <class F>
decltype(auto) visit_compare_op(CompareOp op, F&& f) {
  switch (op) {
#define KILN_VISIT_ENTRY(name) \
  case CompareOp::name: return f.template operator()<CompareOp::name>();
    KILN_COMPARE_OPS(KILN_VISIT_ENTRY)
#undef KILN_VISIT_ENTRY
  }
  return f.template operator()<CompareOp::eq>();  // unreachable
}

namespace binary_detail {

// Integer + - * wrap modulo 2^bits (as NumPy and PyTorch do) without signed-overflow UB.
template <class C, bool = std::is_integral_v<C>>
struct Wrap {
  using type = C;
};
template <class C>
struct Wrap<C, true> {
  using type = std::make_unsigned_t<C>;
};
template <class C>
using wrap_t = typename Wrap<C>::type;
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C add(C a, C b) {
  return static_cast<C>(static_cast<wrap_t<C>>(a) + static_cast<wrap_t<C>>(b));
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C sub(C a, C b) {
  return static_cast<C>(static_cast<wrap_t<C>>(a) - static_cast<wrap_t<C>>(b));
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C mul(C a, C b) {
  // Promote unsigned 8-bit values past int so the product cannot overflow a signed int.
  using W = std::conditional_t<std::is_integral_v<C> && (sizeof(C) < sizeof(unsigned)), unsigned,
                               wrap_t<C>>;
  return static_cast<C>(static_cast<W>(a) * static_cast<W>(b));
}

// Integer power by squaring; a negative exponent gives 0 unless |a| == 1 (PyTorch's rule;
// NumPy raises instead).
template <class C>
KILN_HOST_DEVICE C ipow(C a, C b) {
  if constexpr (std::is_signed_v<C>) {
    if (b < 0) {
      if (a == 1) return C(1);
      if (a == -1) return (b % 2 == 0) ? C(1) : C(-1);
      return C(0);
    }
  }
  C result = 1;
  while (b > 0) {
    if (b & 1) result = mul(result, a);
    a = mul(a, a);
    b = static_cast<C>(b >> 1);
  }
  return result;
}

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C power(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    return ipow(a, b);
  } else {
    return math::pow(a, b);
  }
}

// Gradient share of `a` in maximum(a, b) (the same for minimum with `wins` = a < b):
// all of g where a wins or is NaN (NaN wins, as the forward returns it), half on a tie.
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C extremum_share(bool wins, C a, C b, C g) {
  if (wins || math::isnan(a)) return g;
  return a == b ? g * C(0.5) : C(0);
}

}  // namespace binary_detail

template <BinaryOp Op>
struct Binary;

#define KILN_BINARY(OP, FWD, GRAD_A, GRAD_B)                                           \
  template <>                                                                          \
  struct Binary<BinaryOp::OP> {                                                        \
    template <class C>                                                                 \
    KILN_HOST_DEVICE static C forward(C a, C b) { return FWD; }                        \
    template <class C>                                                                 \
    KILN_HOST_DEVICE static C grad_a(C a, C b, C g) { (void)a; (void)b; return GRAD_A; } \
    template <class C>                                                                 \
    KILN_HOST_DEVICE static C grad_b(C a, C b, C g) { (void)a; (void)b; return GRAD_B; } \
  };

// NaN propagates through every op: maximum/minimum test the winner so that a NaN on
// either side is returned (NumPy's maximum, not fmax).
KILN_BINARY(add, binary_detail::add(a, b), g, g)
KILN_BINARY(sub, binary_detail::sub(a, b), g, -g)
KILN_BINARY(mul, binary_detail::mul(a, b), g * b, g * a)
KILN_BINARY(div, a / b, g / b, -(g / b) * (a / b))
// d/da a^b = b a^(b-1) (0 where b == 0, so 0^0 gives 0 not NaN); d/db a^b = a^b log(a),
// defined for a > 0 only and taken as 0 elsewhere (the limit at a = 0 for b > 0).
KILN_BINARY(pow, binary_detail::power(a, b),
            b == C(0) ? C(0) : g * b * binary_detail::power(a, b - C(1)),
            a > C(0) ? g * binary_detail::power(a, b) * math::log(a) : C(0))
KILN_BINARY(maximum, (a > b || math::isnan(a)) ? a : b,
            binary_detail::extremum_share(a > b, a, b, g),
            binary_detail::extremum_share(b > a, b, a, g))
KILN_BINARY(minimum, (a < b || math::isnan(a)) ? a : b,
            binary_detail::extremum_share(a < b, a, b, g),
            binary_detail::extremum_share(b < a, b, a, g))
#undef KILN_BINARY

template <CompareOp Op>
struct Compare;
#define KILN_COMPARE(OP, EXPR)                                             \
  template <>                                                              \
  struct Compare<CompareOp::OP> {                                          \
    template <class C>                                                     \
    KILN_HOST_DEVICE static bool apply(C a, C b) { return EXPR; }          \
  };
// IEEE semantics: every comparison with NaN is false except ne.
KILN_COMPARE(eq, a == b)
KILN_COMPARE(ne, a != b)
KILN_COMPARE(lt, a < b)
KILN_COMPARE(le, a <= b)
KILN_COMPARE(gt, a > b)
KILN_COMPARE(ge, a >= b)
#undef KILN_COMPARE

// Which ops a storage type T supports: bool takes part in comparisons and where only;
// the gradients exist for floating types only.
template <class T>
inline constexpr bool binary_arithmetic_supports = !std::is_same_v<T, bool>;
template <class T>
inline constexpr bool binary_grad_supports = !std::is_integral_v<T>;

// ---- element functors over storage types ----

// out = op(a, b)
template <BinaryOp Op, class T>
struct BinaryFn {
  KILN_HOST_DEVICE T operator()(T a, T b) const {
    using C = math::compute_t<T>;
    return convert<T>(Binary<Op>::forward(convert<C>(a), convert<C>(b)));
  }
};

// out = op(x, s), or op(s, x) when ScalarFirst; s is held in the compute type.
template <BinaryOp Op, class T, bool ScalarFirst>
struct BinaryScalarFn {
  math::compute_t<T> s;
  KILN_HOST_DEVICE T operator()(T x) const {
    using C = math::compute_t<T>;
    const C v = convert<C>(x);
    return convert<T>(ScalarFirst ? Binary<Op>::forward(s, v) : Binary<Op>::forward(v, s));
  }
};

// grad of input Wrt (0: a, 1: b) from (a, b, g).
template <BinaryOp Op, class T, int Wrt>
struct BinaryGradFn {
  KILN_HOST_DEVICE T operator()(T a, T b, T g) const {
    using C = math::compute_t<T>;
    const C ca = convert<C>(a), cb = convert<C>(b), cg = convert<C>(g);
    return convert<T>(Wrt == 0 ? Binary<Op>::grad_a(ca, cb, cg) : Binary<Op>::grad_b(ca, cb, cg));
  }
};

// grad of the tensor operand x of op(x, s) (or op(s, x) when ScalarFirst), from (x, g).
template <BinaryOp Op, class T, bool ScalarFirst>
struct BinaryScalarGradFn {
  math::compute_t<T> s;
  KILN_HOST_DEVICE T operator()(T x, T g) const {
    using C = math::compute_t<T>;
    const C v = convert<C>(x), cg = convert<C>(g);
    return convert<T>(ScalarFirst ? Binary<Op>::grad_b(s, v, cg) : Binary<Op>::grad_a(v, s, cg));
  }
};

template <CompareOp Op, class T>
struct CompareFn {
  KILN_HOST_DEVICE bool operator()(T a, T b) const {
    using C = math::compute_t<T>;
    return Compare<Op>::apply(convert<C>(a), convert<C>(b));
  }
};

template <class T>
struct WhereFn {
  KILN_HOST_DEVICE T operator()(bool cond, T a, T b) const { return cond ? a : b; }
};

// min(max(x, lo), hi), NaN kept (both comparisons are false for NaN).
template <class T>
struct ClampFn {
  math::compute_t<T> lo, hi;
  KILN_HOST_DEVICE T operator()(T x) const {
    using C = math::compute_t<T>;
    C v = convert<C>(x);
    v = v < lo ? lo : v;
    return convert<T>(v > hi ? hi : v);
  }
};

// The gradient of clamp passes where lo <= x <= hi.
template <class T>
struct ClampGradFn {
  math::compute_t<T> lo, hi;
  KILN_HOST_DEVICE T operator()(T x, T g) const {
    using C = math::compute_t<T>;
    const C v = convert<C>(x);
    return (v >= lo && v <= hi) ? g : convert<T>(C(0));
  }
};

// out = a + alpha * b (the optimizers' update; alpha is integral for integer types).
template <class T>
struct AxpyFn {
  math::compute_t<T> alpha;
  KILN_HOST_DEVICE T operator()(T a, T b) const {
    using C = math::compute_t<T>;
    return convert<T>(binary_detail::add(convert<C>(a), binary_detail::mul(alpha, convert<C>(b))));
  }
};

// A double bound for clamp in the compute type C: integer types round lo up and hi down
// and saturate to C's range, so clamp(int_x, 0.5, 2.5) keeps 1 and 2.
template <class C>
C clamp_bound(double v, bool is_lo) {
  if constexpr (std::is_integral_v<C>) {
    const double r = is_lo ? std::ceil(v) : std::floor(v);
    if (!(r > static_cast<double>(std::numeric_limits<C>::lowest()))) return std::numeric_limits<C>::lowest();
    if (!(r < static_cast<double>(std::numeric_limits<C>::max()))) return std::numeric_limits<C>::max();
    return static_cast<C>(r);
  } else {
    return static_cast<C>(v);
  }
}

}  // namespace kiln
