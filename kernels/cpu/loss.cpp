// cpu implementation of the fused losses: one loop per row over the formulas of
// kernels/loss_impl.h (see Note [Loss rows] there), rows split over OpenMP threads.
#include "kiln/kernels/cpu/loops.h"
#include "kiln/kernels/loss_impl.h"

namespace kiln::cpu {
namespace {

// One row's view of the operands: target(c) and pred(c) in the compute type C.
template <LossKind K, class T>
struct RowAccess {
  using C = math::compute_t<T>;
  const T* y_pred;
  const T* y_true;               // dense losses
  const std::int64_t* labels;    // sparse losses
  std::int64_t inner;

  C pred(std::int64_t base, std::int64_t c) const { return convert<C>(y_pred[base + c * inner]); }
  C target(std::int64_t r, std::int64_t base, std::int64_t c) const {
    if constexpr (is_sparse(K)) {
      return labels[r] == c ? C(1) : C(0);
    } else {
      return convert<C>(y_true[base + c * inner]);
    }
  }
};

template <LossKind K, class T>
RowAccess<K, T> row_access(const LossProblem& pb) {
  const bool sparse = is_sparse(K);
  return {static_cast<const T*>(pb.y_pred), sparse ? nullptr : static_cast<const T*>(pb.y_true),
          sparse ? static_cast<const std::int64_t*>(pb.y_true) : nullptr, pb.layout.inner};
}

bool parallel(const RowLayout& l) { return l.rows > 1 && l.rows * l.classes > kParallelGrain; }

template <LossKind K, class T>
void forward_rows(const LossProblem& pb, math::compute_t<T>* row_loss, math::compute_t<T>* aux) {
  using C = math::compute_t<T>;
  using P = LossPolicy<K>;
  const LossParams<C> prm = loss_params<C>(pb);
  const RowLayout l = pb.layout;
  const RowAccess<K, T> in = row_access<K, T>(pb);
#pragma omp parallel for if (parallel(l)) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const std::int64_t base = row_base(l, r);
    C pre = C(0);
    if constexpr (P::kTwoPass) {
      for (std::int64_t c = 0; c < l.classes; ++c) pre += in.pred(base, c);
    }
    loss_detail::RowState<C> st = loss_detail::initial_state<C>();
    for (std::int64_t c = 0; c < l.classes; ++c)
      P::step(st, in.target(r, base, c), in.pred(base, c), prm, pre);
    C p_label = C(0);
    if constexpr (is_sparse(K)) p_label = in.pred(base, in.labels[r]);
    row_loss[r] = P::finish(st, prm, pre, p_label, aux + r * kLossAux);
  }
}

template <LossKind K, class T>
void backward_rows(const LossProblem& pb, const math::compute_t<T>* aux, const T* gy,
                   std::int64_t gy_stride, double divisor, T* grad) {
  using C = math::compute_t<T>;
  using P = LossPolicy<K>;
  const LossParams<C> prm = loss_params<C>(pb);
  const RowLayout l = pb.layout;
  const RowAccess<K, T> in = row_access<K, T>(pb);
#pragma omp parallel for if (parallel(l)) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const std::int64_t base = row_base(l, r);
    const C scale = static_cast<C>(static_cast<double>(convert<C>(gy[r * gy_stride])) / divisor);
    const C* row_aux = aux + r * kLossAux;
    for (std::int64_t c = 0; c < l.classes; ++c) {
      grad[base + c * l.inner] =
          convert<T>(P::grad(in.target(r, base, c), in.pred(base, c), prm, row_aux) * scale);
    }
  }
}

// Calls f.template operator()<T>() for the floating dtypes losses accept.
template <class F>
void visit_loss_dtype(DType dtype, F&& f) {
  visit_dtype(dtype, [&]<class T>() {
    if constexpr (is_floating(dtype_of<T>())) {
      f.template operator()<T>();
    } else {
      KILN_THROW(InternalError, "loss: non-floating dtype ", dtype, " reached the cpu kernel");
    }
  });
}

}  // namespace

void loss_forward(const LossProblem& pb, void* row_loss, void* aux) {
  visit_loss_kind(pb.kind, [&]<LossKind K>() {
    visit_loss_dtype(pb.dtype, [&]<class T>() {
      using C = math::compute_t<T>;
      forward_rows<K, T>(pb, static_cast<C*>(row_loss), static_cast<C*>(aux));
    });
  });
}

void loss_reduce(const LossProblem& pb, const void* row_loss, double divisor, void* out) {
  visit_loss_dtype(pb.dtype, [&]<class T>() {
    using C = math::compute_t<T>;
    const auto* rl = static_cast<const C*>(row_loss);
    double total = 0.0;
    for (std::int64_t r = 0; r < pb.layout.rows; ++r) total += static_cast<double>(rl[r]);
    *static_cast<T*>(out) = convert<T>(total / divisor);
  });
}

void loss_backward(const LossProblem& pb, const void* aux, const void* gy, std::int64_t gy_stride,
                   double divisor, void* grad) {
  visit_loss_kind(pb.kind, [&]<LossKind K>() {
    visit_loss_dtype(pb.dtype, [&]<class T>() {
      using C = math::compute_t<T>;
      backward_rows<K, T>(pb, static_cast<const C*>(aux), static_cast<const T*>(gy), gy_stride, divisor,
                          static_cast<T*>(grad));
    });
  });
}

}  // namespace kiln::cpu
