// The reductions' accumulators, once, for both devices. A reducer R over input type T has
//   acc_t init(T first)          the empty accumulator of a row whose first element is
//                                `first` (only the variance uses it: it shifts by it);
//   acc_t step(acc_t, T x, k)    adds element k of the row;
//   acc_t combine(acc_t, acc_t)  merges two partial results of one row (any order: every
//                                combine is commutative, argmax compares indices);
//   out_t finish(acc_t, n)       the result of a row of n elements.
// Accumulation types: float for float16/bfloat16/float32, double for float64, int64 for
// integer and bool sums (kernels/reduce.h).
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kiln/core/convert.h"
#include "kiln/kernels/math.h"

namespace kiln::reduce_math {

// The type sums accumulate in and the type a sum is returned in.
template <class T>
using sum_acc_t = std::conditional_t<std::is_floating_point_v<math::compute_t<T>>, math::compute_t<T>,
                                     std::int64_t>;
template <class T>
using sum_out_t = std::conditional_t<std::is_floating_point_v<math::compute_t<T>>, T, std::int64_t>;
// mean returns the input's floating type, float32 for integers.
template <class T>
using mean_out_t = std::conditional_t<std::is_floating_point_v<math::compute_t<T>>, T, float>;

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C lowest() {
  if constexpr (std::is_floating_point_v<C>) return -std::numeric_limits<C>::infinity();
  else return std::numeric_limits<C>::lowest();
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C highest() {
  if constexpr (std::is_floating_point_v<C>) return std::numeric_limits<C>::infinity();
  else return std::numeric_limits<C>::max();
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C abs_of(C x) {
  return x < C(0) ? -x : x;
}

template <class T>
struct SumReducer {
  using acc_t = sum_acc_t<T>;
  using out_t = sum_out_t<T>;
  KILN_HOST_DEVICE acc_t init(T) const { return acc_t(0); }
  KILN_HOST_DEVICE acc_t step(acc_t a, T x, std::int64_t) const { return a + convert<acc_t>(x); }
  KILN_HOST_DEVICE acc_t combine(acc_t a, acc_t b) const { return a + b; }
  KILN_HOST_DEVICE out_t finish(acc_t a, std::int64_t) const { return convert<out_t>(a); }
};

// n == 0 gives NaN (0 / 0), as NumPy.
template <class T>
struct MeanReducer {
  using acc_t = sum_acc_t<T>;
  using out_t = mean_out_t<T>;
  KILN_HOST_DEVICE acc_t init(T) const { return acc_t(0); }
  KILN_HOST_DEVICE acc_t step(acc_t a, T x, std::int64_t) const { return a + convert<acc_t>(x); }
  KILN_HOST_DEVICE acc_t combine(acc_t a, acc_t b) const { return a + b; }
  KILN_HOST_DEVICE out_t finish(acc_t a, std::int64_t n) const {
    if constexpr (std::is_floating_point_v<acc_t>) {
      return convert<out_t>(a / static_cast<acc_t>(n));
    } else {
      return static_cast<out_t>(static_cast<double>(a) / static_cast<double>(n));
    }
  }
};

// max (IsMax) or min; a NaN anywhere makes the result NaN.
template <class T, bool IsMax>
struct ExtremeReducer {
  using acc_t = math::compute_t<T>;
  using out_t = T;
  KILN_HOST_DEVICE acc_t init(T) const { return IsMax ? lowest<acc_t>() : highest<acc_t>(); }
  KILN_HOST_DEVICE acc_t combine(acc_t a, acc_t b) const {
    if (math::isnan(a)) return a;
    if (math::isnan(b)) return b;
    return (IsMax ? b > a : b < a) ? b : a;
  }
  KILN_HOST_DEVICE acc_t step(acc_t a, T x, std::int64_t) const { return combine(a, convert<acc_t>(x)); }
  KILN_HOST_DEVICE out_t finish(acc_t a, std::int64_t) const { return convert<out_t>(a); }
};

// argmax/argmin: the first index of the extreme value; NaN counts as the extreme (NumPy).
template <class C>
struct ArgAcc {
  C value;
  std::int64_t index;  // INT64_MAX: no element yet
};

template <class T, bool IsMax>
struct ArgReducer {
  using C = math::compute_t<T>;
  using acc_t = ArgAcc<C>;
  using out_t = std::int64_t;
  KILN_HOST_DEVICE acc_t init(T) const {
    return {IsMax ? lowest<C>() : highest<C>(), std::numeric_limits<std::int64_t>::max()};
  }
  KILN_HOST_DEVICE acc_t combine(acc_t a, acc_t b) const {
    const bool an = math::isnan(a.value), bn = math::isnan(b.value);
    if (an != bn) return an ? a : b;
    if (!an && a.value != b.value) return (IsMax ? a.value > b.value : a.value < b.value) ? a : b;
    return a.index <= b.index ? a : b;
  }
  KILN_HOST_DEVICE acc_t step(acc_t a, T x, std::int64_t k) const { return combine(a, {convert<C>(x), k}); }
  KILN_HOST_DEVICE out_t finish(acc_t a, std::int64_t) const { return a.index; }
};

// Welford's running mean and sum of squared deviations of (x - shift), where shift is
// the row's first element: every partial of a row shares it, so combines stay exact, and
// rows like 1e8 + noise in float32 keep their small deviations (Chan et al. merge).
template <class C>
struct MomentAcc {
  C shift;
  C mean;  // of (x - shift)
  C m2;
  std::int64_t n;
};

template <class T>
struct MomentReducer {
  using C = math::compute_t<T>;
  using acc_t = MomentAcc<C>;
  using out_t = T;
  int ddof = 0;
  bool take_sqrt = false;  // std instead of var
  KILN_HOST_DEVICE acc_t init(T first) const { return {convert<C>(first), C(0), C(0), 0}; }
  KILN_HOST_DEVICE acc_t step(acc_t a, T x, std::int64_t) const {
    const C v = convert<C>(x) - a.shift;
    a.n += 1;
    const C d = v - a.mean;
    a.mean += d / static_cast<C>(a.n);
    a.m2 += d * (v - a.mean);
    return a;
  }
  KILN_HOST_DEVICE acc_t combine(acc_t a, acc_t b) const {
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    const std::int64_t n = a.n + b.n;
    const C d = b.mean - a.mean;
    const C fb = static_cast<C>(b.n) / static_cast<C>(n);
    a.mean += d * fb;
    a.m2 += b.m2 + d * d * static_cast<C>(a.n) * fb;
    a.n = n;
    return a;
  }
  // NumPy's divisor max(n - ddof, 0): 0 / 0 is NaN, m2 / 0 is inf.
  KILN_HOST_DEVICE out_t finish(acc_t a, std::int64_t) const {
    const std::int64_t dof = a.n - ddof > 0 ? a.n - ddof : 0;
    const C v = a.m2 / static_cast<C>(dof);
    return convert<out_t>(take_sqrt ? math::sqrt(v) : v);
  }
};

// p-norms: p = 1 (sum |x|), 2 (sqrt of the sum of squares), inf (max |x|, NaN
// propagating) and any other p > 0 ((sum |x|^p)^(1/p)).
enum class NormKind : std::uint8_t { l1, l2, linf, lp };

template <class T>
struct NormReducer {
  using C = math::compute_t<T>;
  using acc_t = C;
  using out_t = T;
  NormKind kind = NormKind::l2;
  C p = C(2);
  KILN_HOST_DEVICE acc_t init(T) const { return C(0); }
  KILN_HOST_DEVICE acc_t step(acc_t a, T x, std::int64_t) const {
    const C v = abs_of(convert<C>(x));
    switch (kind) {
      case NormKind::l1: return a + v;
      case NormKind::l2: return a + v * v;
      case NormKind::linf: return combine(a, v);
      case NormKind::lp: break;
    }
    return a + math::pow(v, p);
  }
  KILN_HOST_DEVICE acc_t combine(acc_t a, acc_t b) const {
    if (kind != NormKind::linf) return a + b;
    if (math::isnan(a)) return a;
    return math::isnan(b) || b > a ? b : a;
  }
  KILN_HOST_DEVICE out_t finish(acc_t a, std::int64_t) const {
    switch (kind) {
      case NormKind::l1:
      case NormKind::linf: return convert<out_t>(a);
      case NormKind::l2: return convert<out_t>(math::sqrt(a));
      case NormKind::lp: break;
    }
    return convert<out_t>(math::pow(a, C(1) / p));
  }
};

}  // namespace kiln::reduce_math

namespace kiln::reduce_math {

// The backward of a reduction, per input element x (index k along the reduced run) of a
// row with result y, output gradient g, row mean `mean` and selected index `index`:
//   broadcast  g * scale                          (sum: 1, mean: 1/n)
//   select     k == index ? g (* sign(x)) : 0     (max/min: the first extreme; inf-norm)
//   var        g * 2 (x - mean) * scale           (scale = 1 / (n - ddof))
//   std        g * (x - mean) * scale / y
//   norm       g * sign(x) |x|^(p-1) / y^(p-1)    (0 where y == 0: a subgradient)
enum class GradKind : std::uint8_t { broadcast, select, var, std, norm };

struct GradParams {
  GradKind kind = GradKind::broadcast;
  double scale = 1.0;
  bool select_sign = false;  // select: multiply by sign(x) (the inf-norm)
  NormKind norm = NormKind::l2;
  double p = 2.0;
};

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C sign_of(C x) {
  return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
}

template <class C>
KILN_HOST_DEVICE C grad_of(const GradParams& p, C x, std::int64_t k, C y, C g, C mean, std::int64_t index) {
  const C scale = static_cast<C>(p.scale);
  switch (p.kind) {
    case GradKind::broadcast: return g * scale;
    case GradKind::select:
      if (k != index) return C(0);
      return p.select_sign ? g * sign_of(x) : g;
    case GradKind::var: return g * C(2) * (x - mean) * scale;
    case GradKind::std: return g * (x - mean) * scale / y;
    case GradKind::norm: break;
  }
  if (y == C(0)) return C(0);
  switch (p.norm) {
    case NormKind::l1: return g * sign_of(x);
    case NormKind::l2: return g * x / y;
    default: break;
  }
  const C e = static_cast<C>(p.p) - C(1);
  return g * sign_of(x) * math::pow(abs_of(x), e) / math::pow(y, e);
}

}  // namespace kiln::reduce_math
