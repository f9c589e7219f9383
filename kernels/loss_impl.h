// Internal: the fused losses' row model, their formulas (once, for cpu and cuda), and the
// per-device entry points (kernels/cpu/loss.cpp, kernels/cuda/loss.cu).
//
// Note [Loss rows]
// Every loss reduces y_pred over one axis (the class axis, or Keras' axis=-1 for the
// regression losses) to one value per sample. With y_pred contiguous and viewed as
// (A, C, B) around that axis, row r = a * B + b holds the C elements at
//   (r / B) * C * B + r % B + c * B,   c in [0, C)
// (RowLayout: rows = A * B, classes = C, inner = B). y_true has the same layout (or, for
// the sparse loss, one int64 label per row), and the per-sample losses come out in row
// order, which is the row-major order of y_pred's shape without the axis.
// A loss kernel walks each row twice at most and keeps a RowState: the running max and
// scaled sum of exponentials of an online softmax (m, s) and two plain sums (a, b). The
// forward writes the row's loss and two saved values (aux) per row; the backward is then
// one elementwise pass per row: grad = LossPolicy::grad(t, p, prm, aux) * dL/d(row loss).
#pragma once

#include <cstdint>
#include <limits>

#include "kiln/core/convert.h"
#include "kiln/core/dtype.h"
#include "kiln/kernels/math.h"

namespace kiln {

enum class LossKind : std::uint8_t {
  sparse_ce_logits,  // sparse categorical cross-entropy, from logits
  sparse_ce_probs,   // ... from probabilities
  ce_logits,         // categorical cross-entropy, from logits
  ce_probs,
  bce_logits,        // binary cross-entropy (mean over the axis)
  bce_probs,
  mse,               // mean over the axis
  mae,
  huber,
  kl,                // sum over the axis
};

struct RowLayout {
  std::int64_t rows = 0;
  std::int64_t classes = 0;
  std::int64_t inner = 1;
};

KILN_HOST_DEVICE KILN_FORCEINLINE std::int64_t row_base(const RowLayout& l, std::int64_t r) {
  return l.inner == 1 ? r * l.classes : (r / l.inner) * l.classes * l.inner + r % l.inner;
}

// One loss evaluation, as the op entry prepared it (contiguous operands, checked labels).
struct LossProblem {
  LossKind kind = LossKind::mse;
  RowLayout layout;
  DType dtype = DType::float32;  // y_pred's (and dense y_true's, and the gradient's)
  double label_smoothing = 0.0;
  double delta = 1.0;            // huber
  const void* y_true = nullptr;  // dense: dtype, layout as y_pred; sparse: int64 per row
  const void* y_pred = nullptr;
};

// The dtype per-row losses and aux values are kept in: float64 for float64, else float32.
constexpr DType loss_compute_dtype(DType dtype) {
  return dtype == DType::float64 ? DType::float64 : DType::float32;
}
inline constexpr int kLossAux = 2;  // saved values per row

namespace loss_detail {

inline constexpr double kEpsilon = 1e-7;  // keras.backend.epsilon()

template <class C>
struct RowState {
  C m, s, a, b;
};

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C infinity() {
  return std::numeric_limits<C>::infinity();
}

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE RowState<C> initial_state() {
  return {-infinity<C>(), C(0), C(0), C(0)};
}

// Online softmax step: (m, s) with s = sum exp(x - m). x == m covers rows of -inf (or
// +inf) logits, where x - m would be NaN; a NaN x makes s NaN, as it should.
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE void softmax_step(RowState<C>& st, C x) {
  if (x > st.m) {
    st.s = st.s * math::exp(st.m - x) + C(1);
    st.m = x;
  } else {
    st.s += x == st.m ? C(1) : math::exp(x - st.m);
  }
}

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE RowState<C> combine(const RowState<C>& p, const RowState<C>& q) {
  const C m = q.m > p.m ? q.m : p.m;
  const C sp = p.m == m ? p.s : p.s * math::exp(p.m - m);
  const C sq = q.m == m ? q.s : q.s * math::exp(q.m - m);
  return {m, sp + sq, p.a + q.a, p.b + q.b};
}

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C clip(C x, C lo, C hi) {
  return x < lo ? lo : (x > hi ? hi : x);  // NaN passes through
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE bool in_range(C x, C lo, C hi) {
  return x >= lo && x <= hi;
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C sign(C x) {
  return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
}
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C sigmoid(C x) {
  if (x >= C(0)) return C(1) / (C(1) + math::exp(-x));
  const C e = math::exp(x);
  return e / (C(1) + e);
}

}  // namespace loss_detail

// What a policy sees of one row element: the target t (dense losses; for the sparse ones
// 1 at the label and 0 elsewhere), the prediction p, and the element's class c.
// Parameters shared by every policy: ls = label smoothing, classes = C, delta (huber).
template <class C>
struct LossParams {
  C ls = C(0);
  C classes = C(1);
  C delta = C(1);
  KILN_HOST_DEVICE C smooth_categorical(C t) const { return t * (C(1) - ls) + ls / classes; }
  KILN_HOST_DEVICE C smooth_binary(C t) const { return t * (C(1) - ls) + C(0.5) * ls; }
};

// LossPolicy<Kind>: kTwoPass (a first pass sums the row's p into `pre` before the main
// pass), step(st, t, p, prm, pre) for each element of the main pass, finish(st, prm, pre,
// p_label, aux) -> the row's loss (p_label: p at the label, sparse losses only; aux:
// kLossAux values kept for the backward), and grad(t, p, prm, aux) -> dloss/dp for one
// element. The sparse losses see t = 1 at the label and 0 elsewhere.
template <LossKind K>
struct LossPolicy;

// -sum_c t_c log softmax(x)_c = lse * sum(t) - sum(t * x), with t as given (Keras does not
// assume soft targets sum to 1). aux = (lse, sum(t)).
template <>
struct LossPolicy<LossKind::ce_logits> {
  static constexpr bool kTwoPass = false;
  template <class C>
  KILN_HOST_DEVICE static void step(loss_detail::RowState<C>& st, C t, C x, const LossParams<C>& prm, C) {
    loss_detail::softmax_step(st, x);
    const C ts = prm.smooth_categorical(t);
    st.a += ts * x;
    st.b += ts;
  }
  template <class C>
  KILN_HOST_DEVICE static C finish(const loss_detail::RowState<C>& st, const LossParams<C>&, C, C,
                                   C* aux) {
    const C lse = st.m + math::log(st.s);
    aux[0] = lse;
    aux[1] = st.b;
    return lse * st.b - st.a;
  }
  template <class C>
  KILN_HOST_DEVICE static C grad(C t, C x, const LossParams<C>& prm, const C* aux) {
    return math::exp(x - aux[0]) * aux[1] - prm.smooth_categorical(t);
  }
};

// The sparse form reads the label's logit directly: lse - (1 - ls) x_y - ls/C sum(x), so
// masked (-inf) logits elsewhere in the row do not turn 0 * -inf into NaN. aux = (lse, 1).
template <>
struct LossPolicy<LossKind::sparse_ce_logits> {
  static constexpr bool kTwoPass = false;
  template <class C>
  KILN_HOST_DEVICE static void step(loss_detail::RowState<C>& st, C, C x, const LossParams<C>& prm, C) {
    loss_detail::softmax_step(st, x);
    if (prm.ls > C(0)) st.a += x;
  }
  template <class C>
  KILN_HOST_DEVICE static C finish(const loss_detail::RowState<C>& st, const LossParams<C>& prm, C,
                                   C x_label, C* aux) {
    const C lse = st.m + math::log(st.s);
    aux[0] = lse;
    aux[1] = C(1);
    const C smoothed = prm.ls > C(0) ? prm.ls / prm.classes * st.a : C(0);
    return lse - (C(1) - prm.ls) * x_label - smoothed;
  }
  template <class C>
  KILN_HOST_DEVICE static C grad(C t, C x, const LossParams<C>& prm, const C* aux) {
    return LossPolicy<LossKind::ce_logits>::grad(t, x, prm, aux);
  }
};

// -sum_c t_c log(clip(p_c / S)) with S = sum(p) (Keras normalises, then clips to
// [eps, 1 - eps]); S comes from the first pass (`pre`). d/dp_k = (dL/du_k + W) / S with
// u = p / S and W = sum of t over the unclipped classes. aux = (S, W).
template <>
struct LossPolicy<LossKind::ce_probs> {
  static constexpr bool kTwoPass = true;
  template <class C>
  KILN_HOST_DEVICE static C lo() { return C(loss_detail::kEpsilon); }
  template <class C>
  KILN_HOST_DEVICE static C hi() { return C(1) - C(loss_detail::kEpsilon); }
  template <class C>
  KILN_HOST_DEVICE static void step(loss_detail::RowState<C>& st, C t, C p, const LossParams<C>& prm,
                                    C pre) {
    const C u = p / pre;
    const C ts = prm.smooth_categorical(t);
    st.a -= ts * math::log(loss_detail::clip(u, lo<C>(), hi<C>()));
    if (loss_detail::in_range(u, lo<C>(), hi<C>())) st.b += ts;
  }
  template <class C>
  KILN_HOST_DEVICE static C finish(const loss_detail::RowState<C>& st, const LossParams<C>&, C pre, C,
                                   C* aux) {
    aux[0] = pre;
    aux[1] = st.b;
    return st.a;
  }
  template <class C>
  KILN_HOST_DEVICE static C grad(C t, C p, const LossParams<C>& prm, const C* aux) {
    const C u = p / aux[0];
    const C dldu = loss_detail::in_range(u, lo<C>(), hi<C>()) ? -prm.smooth_categorical(t) / u : C(0);
    return (dldu + aux[1]) / aux[0];
  }
};
template <>
struct LossPolicy<LossKind::sparse_ce_probs> : LossPolicy<LossKind::ce_probs> {};

// The elementwise losses: the row loss is sum_c f(t_c, p_c) * kScale (1 / C for Keras'
// mean over the axis, 1 for kl_divergence's sum). aux is unused.
template <class F>
struct ElementwiseLoss {
  static constexpr bool kTwoPass = false;
  template <class C>
  KILN_HOST_DEVICE static void step(loss_detail::RowState<C>& st, C t, C p, const LossParams<C>& prm, C) {
    st.a += F::value(t, p, prm);
  }
  template <class C>
  KILN_HOST_DEVICE static C finish(const loss_detail::RowState<C>& st, const LossParams<C>& prm, C, C,
                                   C* aux) {
    aux[0] = aux[1] = C(0);
    return F::kMean ? st.a / prm.classes : st.a;
  }
  template <class C>
  KILN_HOST_DEVICE static C grad(C t, C p, const LossParams<C>& prm, const C*) {
    const C g = F::derivative(t, p, prm);
    return F::kMean ? g / prm.classes : g;
  }
};

namespace loss_detail {

// Stable sigmoid cross-entropy: max(x, 0) - x t + log(1 + exp(-|x|)).
struct BceLogits {
  static constexpr bool kMean = true;
  template <class C>
  KILN_HOST_DEVICE static C value(C t, C x, const LossParams<C>& prm) {
    const C ts = prm.smooth_binary(t);
    return (x > C(0) ? x : C(0)) - x * ts + math::log1p(math::exp(-math::fabs(x)));
  }
  template <class C>
  KILN_HOST_DEVICE static C derivative(C t, C x, const LossParams<C>& prm) {
    return sigmoid(x) - prm.smooth_binary(t);
  }
};

struct BceProbs {
  static constexpr bool kMean = true;
  template <class C>
  KILN_HOST_DEVICE static C value(C t, C p, const LossParams<C>& prm) {
    const C ts = prm.smooth_binary(t);
    const C q = clip(p, C(kEpsilon), C(1) - C(kEpsilon));
    return -(ts * math::log(q) + (C(1) - ts) * math::log(C(1) - q));
  }
  template <class C>
  KILN_HOST_DEVICE static C derivative(C t, C p, const LossParams<C>& prm) {
    if (!in_range(p, C(kEpsilon), C(1) - C(kEpsilon))) return C(0);
    const C ts = prm.smooth_binary(t);
    return (C(1) - ts) / (C(1) - p) - ts / p;
  }
};

struct SquaredError {
  static constexpr bool kMean = true;
  template <class C>
  KILN_HOST_DEVICE static C value(C t, C p, const LossParams<C>&) { return (p - t) * (p - t); }
  template <class C>
  KILN_HOST_DEVICE static C derivative(C t, C p, const LossParams<C>&) { return C(2) * (p - t); }
};

struct AbsoluteError {
  static constexpr bool kMean = true;
  template <class C>
  KILN_HOST_DEVICE static C value(C t, C p, const LossParams<C>&) { return math::fabs(p - t); }
  template <class C>
  KILN_HOST_DEVICE static C derivative(C t, C p, const LossParams<C>&) { return sign(p - t); }
};

// 0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2 (e = p - t).
struct Huber {
  static constexpr bool kMean = true;
  template <class C>
  KILN_HOST_DEVICE static C value(C t, C p, const LossParams<C>& prm) {
    const C e = p - t;
    const C ae = math::fabs(e);
    return ae <= prm.delta ? C(0.5) * e * e : prm.delta * ae - C(0.5) * prm.delta * prm.delta;
  }
  template <class C>
  KILN_HOST_DEVICE static C derivative(C t, C p, const LossParams<C>& prm) {
    const C e = p - t;
    return math::fabs(e) <= prm.delta ? e : prm.delta * sign(e);
  }
};

// t log(t / p) with both clipped to [eps, 1] (Keras' kl_divergence), summed.
struct KlDivergence {
  static constexpr bool kMean = false;
  template <class C>
  KILN_HOST_DEVICE static C value(C t, C p, const LossParams<C>&) {
    const C tc = clip(t, C(kEpsilon), C(1));
    return tc * math::log(tc / clip(p, C(kEpsilon), C(1)));
  }
  template <class C>
  KILN_HOST_DEVICE static C derivative(C t, C p, const LossParams<C>&) {
    return in_range(p, C(kEpsilon), C(1)) ? -clip(t, C(kEpsilon), C(1)) / p : C(0);
  }
};

}  // namespace loss_detail

template <>
struct LossPolicy<LossKind::bce_logits> : ElementwiseLoss<loss_detail::BceLogits> {};
template <>
struct LossPolicy<LossKind::bce_probs> : ElementwiseLoss<loss_detail::BceProbs> {};
template <>
struct LossPolicy<LossKind::mse> : ElementwiseLoss<loss_detail::SquaredError> {};
template <>
struct LossPolicy<LossKind::mae> : ElementwiseLoss<loss_detail::AbsoluteError> {};
template <>
struct LossPolicy<LossKind::huber> : ElementwiseLoss<loss_detail::Huber> {};
template <>
struct LossPolicy<LossKind::kl> : ElementwiseLoss<loss_detail::KlDivergence> {};

constexpr bool is_sparse(LossKind k) {
  return k == LossKind::sparse_ce_logits || k == LossKind::sparse_ce_probs;
}

// Calls f.template operator()<Kind>() for the runtime kind.
template <class F>
decltype(auto) visit_loss_kind(LossKind kind, F&& f) {
  switch (kind) {
    case LossKind::sparse_ce_logits: return f.template operator()<LossKind::sparse_ce_logits>();
    case LossKind::sparse_ce_probs: return f.template operator()<LossKind::sparse_ce_probs>();
    case LossKind::ce_logits: return f.template operator()<LossKind::ce_logits>();
    case LossKind::ce_probs: return f.template operator()<LossKind::ce_probs>();
    case LossKind::bce_logits: return f.template operator()<LossKind::bce_logits>();
    case LossKind::bce_probs: return f.template operator()<LossKind::bce_probs>();
    case LossKind::mse: return f.template operator()<LossKind::mse>();
    case LossKind::mae: return f.template operator()<LossKind::mae>();
    case LossKind::huber: return f.template operator()<LossKind::huber>();
    case LossKind::kl: return f.template operator()<LossKind::kl>();
  }
  return f.template operator()<LossKind::mse>();  // unreachable: every enumerator is listed
}

template <class C>
LossParams<C> loss_params(const LossProblem& pb) {
  return {static_cast<C>(pb.label_smoothing), static_cast<C>(pb.layout.classes), static_cast<C>(pb.delta)};
}

namespace cpu {
// row_loss: compute dtype [rows]; aux: compute dtype [rows, kLossAux].
void loss_forward(const LossProblem& pb, void* row_loss, void* aux);
// out (pb.dtype, one element) = sum(row_loss) / divisor.
void loss_reduce(const LossProblem& pb, const void* row_loss, double divisor, void* out);
// grad (pb.dtype, y_pred's layout) = dloss/dy_pred * gy[r * gy_stride] / divisor.
void loss_backward(const LossProblem& pb, const void* aux, const void* gy, std::int64_t gy_stride,
                   double divisor, void* grad);
}  // namespace cpu
namespace cuda {
void loss_forward(const LossProblem& pb, void* row_loss, void* aux, int device);
void loss_reduce(const LossProblem& pb, const void* row_loss, double divisor, void* out, int device);
void loss_backward(const LossProblem& pb, const void* aux, const void* gy, std::int64_t gy_stride,
                   double divisor, void* grad, int device);
}  // namespace cuda

}  // namespace kiln
