// cpu optimizer step over one flat group (see Note [Flat parameter buffers] in
// training/optimizers.h): one OpenMP loop over chunks of kChunk elements, each element
// through detail::update_element; and the clipnorm / global_clipnorm norms, per chunk in
// double, then per member, in the cuda kernels' order (Note [Norm reduction order]).
#include <cmath>

#include "kiln/core/error.h"
#include "kiln/core/half.h"
#include "kiln/training/optimizer_math.h"

namespace kiln::optimizers::cpu {
namespace {

using detail::FlatArgs;
using detail::NormArgs;
using detail::NormMode;
using detail::UpdateKind;

// Below this many elements one thread does the step (OpenMP start-up costs more).
constexpr std::int64_t kParallelElements = 1 << 15;

// S slots (a constant, so s[] below stays in registers).
template <UpdateKind K, class T, int S>
void step_typed(const FlatArgs& a, const detail::StepScalars& scalars) {
  using C = math::compute_t<T>;
  const detail::Scalars<C> k = detail::to_compute<C>(scalars);
  auto* param = static_cast<T*>(a.param);
  const auto* grad = static_cast<const T*>(a.grad);
  C* slots[detail::kMaxSlots] = {};
  for (int j = 0; j < S; ++j) slots[j] = static_cast<C*>(a.slots[j]);
  const std::int64_t chunks = a.numel / a.chunk;
#pragma omp parallel for if (a.numel > kParallelElements) schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int32_t member = a.chunk_member ? a.chunk_member[c] : 0;
    if (a.active && !a.active[member]) continue;
    C norm = C(0);
    if (a.norm_mode == NormMode::per_param) norm = static_cast<C>(a.norm[member]);
    if (a.norm_mode == NormMode::global) norm = static_cast<C>(a.norm[0]);
    const std::int64_t begin = c * a.chunk, end = begin + a.chunk;
    for (std::int64_t i = begin; i < end; ++i) {
      C s[detail::kMaxSlots] = {};
      for (int j = 0; j < S; ++j) s[j] = slots[j][i];
      C p = convert<C>(param[i]);
      detail::update_element<K>(p, convert<C>(grad[i]), s, k, a.norm_mode, norm);
      param[i] = convert<T>(p);
      for (int j = 0; j < S; ++j) slots[j][i] = s[j];
    }
  }
}

}  // namespace

void fused_step(const FlatArgs& args, const detail::StepScalars& s) {
  detail::visit_param_dtype(args.dtype, [&]<class T>() {
    detail::visit_update_kind(s.kind, [&]<UpdateKind K>() {
      detail::visit_slot_count(args.nslots, [&]<int S>() {
        if constexpr (detail::slot_count_possible<K>(S)) {
          step_typed<K, T, S>(args, s);
        } else {
          KILN_ASSERT(false, "optimizer step: update kind ", static_cast<int>(K), " with ", S, " slots");
        }
      });
    });
  });
}

// Sums in the order of Note [Norm reduction order] (training/optimizer_math.h).
void clip_norms(const NormArgs& a) {
  constexpr int kThreads = detail::kNormThreads;
  const std::int64_t chunks = a.numel / a.chunk;
  detail::visit_param_dtype(a.dtype, [&]<class T>() {
    const auto* grad = static_cast<const T*>(a.grad);
#pragma omp parallel for if (a.numel > kParallelElements) schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) {
      double sums[kThreads];
      for (int t = 0; t < kThreads; ++t) {
        double s = 0.0;
        for (std::int64_t i = t; i < a.chunk; i += kThreads) {
          const double g = static_cast<double>(convert<math::compute_t<T>>(grad[c * a.chunk + i]));
          s += g * g;
        }
        sums[t] = s;
      }
      a.partials[c] = detail::block_sum_in_order(sums);
    }
  });
  double total = 0.0;
  for (int m = 0; m < a.members; ++m) {
    double sums[kThreads];
    for (int t = 0; t < kThreads; ++t) {
      double s = 0.0;
      for (std::int32_t c = a.member_chunks[m] + t; c < a.member_chunks[m + 1]; c += kThreads) s += a.partials[c];
      sums[t] = s;
    }
    const double sum = detail::block_sum_in_order(sums);
    if (a.mode == NormMode::per_param) a.norm[m] = detail::clipnorm_denominator(sum, a.clipnorm);
    total += sum;
  }
  a.norm[a.members] = total;
  if (a.mode == NormMode::global) a.norm[0] = detail::global_clip_scale(total, a.clipnorm);
}

}  // namespace kiln::optimizers::cpu
