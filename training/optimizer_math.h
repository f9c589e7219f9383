// Internal: the optimizers' element math, once for cpu and cuda (Keras 3's update formulas,
// see training/optimizers.h), the per-step scalars, and the flat-buffer step arguments
// that training/cpu/optimizers.cpp and training/cuda/optimizers.cu run.
//
// One element of a step (update_element): g *= clip scale (clipnorm / global_clipnorm),
// g = clip(g, -clipvalue, clipvalue), p -= p * wd * lr, then Update<Kind>::apply. The
// slots of the element are loaded into s[0..nslots) and stored back afterwards; p and g are
// in the compute type C (float for float32/float16/bfloat16, double for float64).
#pragma once

#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/error.h"
#include "kiln/core/half.h"
#include "kiln/core/dtype.h"
#include "kiln/core/macros.h"
#include "kiln/kernels/math.h"

namespace kiln::optimizers::detail {

enum class UpdateKind : std::uint8_t { sgd, adam, rmsprop, adagrad, adadelta, nadam };
inline constexpr int kMaxSlots = 3;

// How gradients are scaled before clipvalue: not at all; per parameter (clipnorm:
// g * clipnorm / den[member]); by one global factor (global_clipnorm: g * norm[0]).
enum class NormMode : std::uint8_t { none, per_param, global };

// Host-side scalars of one step, computed in double by the optimizer (fill_step) and the
// base class (lr, decay, clipping), converted to C once per launch.
struct StepScalars {
  UpdateKind kind = UpdateKind::sgd;
  double lr = 0.0;
  bool decay = false;             // weight decay set
  double weight_decay = 0.0;
  bool clip_value = false;        // clipvalue set
  double clipvalue = 0.0;
  double clipnorm = 0.0;          // NormMode::per_param
  // Optimizer-specific (names as in Keras' update_step).
  bool momentum_on = false;       // SGD / RMSprop momentum != 0
  bool nesterov = false;          // SGD
  bool amsgrad = false;           // Adam
  bool centered = false;          // RMSprop
  double momentum = 0.0;
  double one_minus_beta_1 = 0.0;  // Adam, Nadam
  double one_minus_beta_2 = 0.0;
  double rho = 0.0;               // RMSprop, Adadelta
  double one_minus_rho = 0.0;
  double epsilon = 0.0;
  double alpha = 0.0;             // Adam: lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
  double u_t_1 = 0.0;             // Nadam: u_{t+1}
  double one_minus_u_t = 0.0;     // 1 - u_t
  double one_minus_u_product_t = 0.0;    // 1 - prod_{k<=t} u_k
  double one_minus_u_product_t_1 = 0.0;  // 1 - prod_{k<=t} u_k * u_{t+1}
  double one_minus_beta_2_power = 0.0;   // 1 - beta_2^t
};

// StepScalars in the compute type, passed by value to kernels.
template <class C>
struct Scalars {
  C lr, weight_decay, clipvalue, clipnorm, momentum, one_minus_beta_1, one_minus_beta_2, rho,
      one_minus_rho, epsilon, alpha, u_t_1, one_minus_u_t, one_minus_u_product_t,
      one_minus_u_product_t_1, one_minus_beta_2_power;
  bool decay, clip_value, momentum_on, nesterov, amsgrad, centered;
};

template <class C>
Scalars<C> to_compute(const StepScalars& s) {
  auto c = [](double v) { return static_cast<C>(v); };
  return {c(s.lr), c(s.weight_decay), c(s.clipvalue), c(s.clipnorm), c(s.momentum),
          c(s.one_minus_beta_1), c(s.one_minus_beta_2), c(s.rho), c(s.one_minus_rho),
          c(s.epsilon), c(s.alpha), c(s.u_t_1), c(s.one_minus_u_t), c(s.one_minus_u_product_t),
          c(s.one_minus_u_product_t_1), c(s.one_minus_beta_2_power),
          s.decay, s.clip_value, s.momentum_on, s.nesterov, s.amsgrad, s.centered};
}

// ---- the updates (Keras 3's update_step, operation for operation) ----

template <UpdateKind K>
struct Update;

// Slots: [momentum] when momentum_on.
template <>
struct Update<UpdateKind::sgd> {
  template <class C>
  KILN_HOST_DEVICE static void apply(C& p, C g, C* s, const Scalars<C>& k) {
    if (!k.momentum_on) {
      p = p - g * k.lr;
      return;
    }
    s[0] = s[0] * k.momentum - g * k.lr;
    p = k.nesterov ? p + (s[0] * k.momentum - g * k.lr) : p + s[0];
  }
};

// Slots: momentum, velocity[, velocity_hat].
template <>
struct Update<UpdateKind::adam> {
  template <class C>
  KILN_HOST_DEVICE static void apply(C& p, C g, C* s, const Scalars<C>& k) {
    s[0] = s[0] + (g - s[0]) * k.one_minus_beta_1;
    s[1] = s[1] + (g * g - s[1]) * k.one_minus_beta_2;
    C v = s[1];
    if (k.amsgrad) {
      s[2] = (v != v || s[2] < v) ? v : s[2];  // ops.maximum(v_hat, v): NaN propagates
      v = s[2];
    }
    p = p - (s[0] * k.alpha) / (math::sqrt(v) + k.epsilon);
  }
};

// Slots: velocity[, momentum][, average_gradient] (in that order, Keras' build order).
// Every slot index is a constant in its branch, so s[] stays in registers.
template <>
struct Update<UpdateKind::rmsprop> {
  template <class C>
  KILN_HOST_DEVICE static void apply(C& p, C g, C* s, const Scalars<C>& k) {
    C& velocity = s[0];
    velocity = k.rho * velocity + k.one_minus_rho * (g * g);
    auto centered = [&](C& average_grad) {
      average_grad = k.rho * average_grad + k.one_minus_rho * g;
      return velocity - average_grad * average_grad + k.epsilon;
    };
    C denominator = velocity + k.epsilon;
    if (k.centered) denominator = k.momentum_on ? centered(s[2]) : centered(s[1]);
    const C increment = (k.lr * g) / math::sqrt(denominator);
    if (k.momentum_on) {
      s[1] = k.momentum * s[1] + increment;
      p = p - s[1];
    } else {
      p = p - increment;
    }
  }
};

// Slots: accumulator.
template <>
struct Update<UpdateKind::adagrad> {
  template <class C>
  KILN_HOST_DEVICE static void apply(C& p, C g, C* s, const Scalars<C>& k) {
    s[0] = s[0] + g * g;
    p = p - (k.lr * g) / math::sqrt(s[0] + k.epsilon);
  }
};

// Slots: accumulated_grad, accumulated_delta_var.
template <>
struct Update<UpdateKind::adadelta> {
  template <class C>
  KILN_HOST_DEVICE static void apply(C& p, C g, C* s, const Scalars<C>& k) {
    s[0] = k.rho * s[0] + k.one_minus_rho * (g * g);
    const C delta = -((math::sqrt(s[1] + k.epsilon) * g) / math::sqrt(s[0] + k.epsilon));
    s[1] = k.rho * s[1] + k.one_minus_rho * (delta * delta);
    p = p + k.lr * delta;
  }
};

// Slots: momentum, velocity.
template <>
struct Update<UpdateKind::nadam> {
  template <class C>
  KILN_HOST_DEVICE static void apply(C& p, C g, C* s, const Scalars<C>& k) {
    s[0] = s[0] + (g - s[0]) * k.one_minus_beta_1;
    s[1] = s[1] + (g * g - s[1]) * k.one_minus_beta_2;
    const C m_hat = (k.u_t_1 * s[0]) / k.one_minus_u_product_t_1 + (k.one_minus_u_t * g) / k.one_minus_u_product_t;
    const C v_hat = s[1] / k.one_minus_beta_2_power;
    p = p - (m_hat * k.lr) / (math::sqrt(v_hat) + k.epsilon);
  }
};

// Calls f.template operator()<Kind>() for the runtime kind.
template <class F>
decltype(auto) visit_update_kind(UpdateKind kind, F&& f) {
  switch (kind) {
    case UpdateKind::sgd: return f.template operator()<UpdateKind::sgd>();
    case UpdateKind::adam: return f.template operator()<UpdateKind::adam>();
    case UpdateKind::rmsprop: return f.template operator()<UpdateKind::rmsprop>();
    case UpdateKind::adagrad: return f.template operator()<UpdateKind::adagrad>();
    case UpdateKind::adadelta: return f.template operator()<UpdateKind::adadelta>();
    case UpdateKind::nadam: return f.template operator()<UpdateKind::nadam>();
  }
  return f.template operator()<UpdateKind::sgd>();  // unreachable: every enumerator is listed
}

// The slot counts an update kind can have (its options decide which): kernels are
// instantiated for these only.
template <UpdateKind K>
constexpr bool slot_count_possible(int s) {
  switch (K) {
    case UpdateKind::sgd: return s <= 1;
    case UpdateKind::adam: return s == 2 || s == 3;
    case UpdateKind::rmsprop: return s >= 1;
    case UpdateKind::adagrad: return s == 1;
    case UpdateKind::adadelta:
    case UpdateKind::nadam: return s == 2;
  }
  return false;
}

// Calls f.template operator()<S>() for the runtime slot count S in [0, kMaxSlots]: kernels
// take S as a constant so their per-element slot arrays live in registers.
template <class F>
decltype(auto) visit_slot_count(int nslots, F&& f) {
  switch (nslots) {
    case 0: return f.template operator()<0>();
    case 1: return f.template operator()<1>();
    case 2: return f.template operator()<2>();
    default: return f.template operator()<3>();
  }
}

// clip(x, lo, hi) with NaN passing through (ops.clip).
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C clip_value(C x, C lo, C hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

// One element of a step: clip, decay, update. `norm` is den (per_param) or the global scale.
template <UpdateKind K, class C>
KILN_HOST_DEVICE KILN_FORCEINLINE void update_element(C& p, C g, C* s, const Scalars<C>& k, NormMode mode,
                                                      C norm) {
  if (mode == NormMode::per_param) g = g * k.clipnorm / norm;
  if (mode == NormMode::global) g = g * norm;
  if (k.clip_value) g = clip_value(g, -k.clipvalue, k.clipvalue);
  if (k.decay) p = p - p * k.weight_decay * k.lr;
  Update<K>::apply(p, g, s, k);
}

// ---- the norms behind clipnorm / global_clipnorm (Keras' formulas, in double) ----

// Note [Norm reduction order]
// Sums of squares are taken in double in one fixed order on both devices, so cpu and cuda
// (SIM) clip bitwise alike: a chunk's kNormThreads "threads" each sum the elements
// t, t + kNormThreads, ... in turn; the block then combines them as the cuda kernel does
// (block_sum_in_order); a member's chunk sums are combined the same way, and the members'
// totals are added in member order. (A GPU may fuse g * g + s into one rounding, so there
// the two agree to within an ulp or so.)
inline constexpr int kNormThreads = 256;

// The cuda block sum's order over kNormThreads values (clobbered): xor butterflies within
// each 32-lane warp (lane i adds lane i ^ d, d = 16, 8, 4, 2, 1), then the warps' results
// added in warp order to 0.
inline double block_sum_in_order(double* v) {
  double total = 0.0;
  for (int w = 0; w < kNormThreads / 32; ++w) {
    double* lane = v + w * 32;
    for (int d = 16; d > 0; d /= 2) {
      double next[32];
      for (int i = 0; i < 32; ++i) next[i] = lane[i] + lane[i ^ d];
      for (int i = 0; i < 32; ++i) lane[i] = next[i];
    }
    total += lane[0];
  }
  return total;
}

// Keras' _clip_by_norm divides g * clipnorm by max(l2norm, clipnorm), l2norm = sqrt(sum)
// when sum > 0, else sum itself (0, or NaN which then propagates).
KILN_HOST_DEVICE inline double clipnorm_denominator(double sumsq, double clipnorm) {
  const double l2norm = sumsq > 0.0 ? ::sqrt(sumsq) : sumsq;
  if (l2norm != l2norm) return l2norm;
  return l2norm > clipnorm ? l2norm : clipnorm;
}
// Keras' clip_by_global_norm: c * min(1 / norm, 1 / c) + (norm - norm) (NaN for a
// non-finite norm).
KILN_HOST_DEVICE inline double global_clip_scale(double sumsq, double clipnorm) {
  const double norm = ::sqrt(sumsq);
  const double inv = 1.0 / norm, inv_c = 1.0 / clipnorm;
  return clipnorm * (inv < inv_c ? inv : inv_c) + (norm - norm);
}

// ---- the flat buffers of one (device, dtype) group, as the device code sees them ----

struct FlatArgs {
  DType dtype = DType::float32;        // of param and grad; slots in compute_t's dtype
  void* param = nullptr;               // (numel,)
  const void* grad = nullptr;          // (numel,)
  void* slots[kMaxSlots] = {};
  int nslots = 0;
  std::int64_t numel = 0;              // a multiple of kChunk
  std::int64_t chunk = 1024;           // kChunk
  const std::int32_t* chunk_member = nullptr;  // (numel / chunk,) member of each chunk
  const std::uint8_t* active = nullptr;        // (members,) or null: every member active
  NormMode norm_mode = NormMode::none;
  const double* norm = nullptr;        // per_param: den per member; global: norm[0] = scale
};

// The norm pipeline's buffers: partial sums of squares per chunk, then per member.
struct NormArgs {
  DType dtype = DType::float32;
  const void* grad = nullptr;
  std::int64_t numel = 0;
  std::int64_t chunk = 1024;
  const std::int32_t* member_chunks = nullptr;  // (members + 1,) first chunk of each member
  int members = 0;
  double* partials = nullptr;   // (numel / chunk,) scratch
  NormMode mode = NormMode::per_param;
  double clipnorm = 0.0;
  // out (members + 1,): per_param: norm[m] = den of member m; global: norm[0] = scale;
  // both: norm[members] = the group's sum of squares (for a global norm over groups).
  double* norm = nullptr;
};

// Calls f.template operator()<T>() with the parameter type of `dtype` (the fused steps
// of both devices dispatch through this one switch).
template <class F>
void visit_param_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: f.template operator()<float>(); return;
    case DType::float64: f.template operator()<double>(); return;
    case DType::float16: f.template operator()<Half>(); return;
    case DType::bfloat16: f.template operator()<BFloat16>(); return;
    default: KILN_THROW(TypeError, "optimizer step: parameters must be floating, got ", dtype);
  }
}

}  // namespace kiln::optimizers::detail

namespace kiln::optimizers::cpu {
void fused_step(const detail::FlatArgs& args, const detail::StepScalars& s);
void clip_norms(const detail::NormArgs& args);
}  // namespace kiln::optimizers::cpu
namespace kiln::optimizers::cuda {
void fused_step(const detail::FlatArgs& args, const detail::StepScalars& s, int device);
void clip_norms(const detail::NormArgs& args, int device);
}  // namespace kiln::optimizers::cuda
