// Keras 3's sample weighting, masks and reductions for losses (see loss_weights.h).
#include "kiln/training/loss_weights.h"

#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"

namespace kiln::losses::detail {
namespace {

constexpr double kEpsilon = 1e-7;  // keras.backend.epsilon()

Tensor scalar_like(double value, const Tensor& like) {
  return full({}, value, {.dtype = like.dtype(), .device = like.device()});
}

// divide_no_nan(num, den) for a scalar tensor den: 0 where den == 0, without a NaN reaching
// the gradient of the unused branch.
Tensor divide_no_nan(const Tensor& num, const Tensor& den) {
  const Tensor zero = eq(den, 0.0);
  const Tensor safe = where(zero, scalar_like(1.0, den), den);
  return where(zero, scalar_like(0.0, num), div(num, safe));
}

}  // namespace

std::pair<Tensor, Tensor> squeeze_or_expand_to_same_rank(Tensor x1, Tensor x2, bool expand_rank_1) {
  const int r1 = x1.ndim(), r2 = x2.ndim();
  if (r1 == r2) return {x1, x2};
  if (r1 == r2 + 1 && x1.shape()[r1 - 1] == 1) {
    if (r2 == 1 && expand_rank_1) {
      x2 = x2.unsqueeze(-1);
    } else {
      x1 = x1.squeeze(-1);
    }
  }
  if (r2 == r1 + 1 && x2.shape()[r2 - 1] == 1) {
    if (r1 == 1 && expand_rank_1) {
      x1 = x1.unsqueeze(-1);
    } else {
      x2 = x2.squeeze(-1);
    }
  }
  return {x1, x2};
}

std::pair<Tensor, Tensor> align_weight(const Tensor& values, const Tensor& sample_weight, const std::string& op) {
  KILN_CHECK(sample_weight.device() == values.device(), DeviceError, op, ": sample_weight of shape ",
             sample_weight.shape(), " is on ", sample_weight.device(), " but the values are on ", values.device());
  auto [v, w] = squeeze_or_expand_to_same_rank(values, sample_weight.to(values.dtype()));
  KILN_CHECK(w.ndim() <= v.ndim(), ShapeError, op, ": sample_weight of shape ", sample_weight.shape(),
             " does not fit values of shape ", values.shape());
  while (w.ndim() < v.ndim()) w = w.unsqueeze(-1);  // per-sample weights over extra axes
  KILN_CHECK(broadcast_shapes(w.shape(), v.shape(), op.c_str()) == v.shape(), ShapeError, op,
             ": sample_weight of shape ", sample_weight.shape(), " does not broadcast to values of shape ",
             values.shape());
  return {v, w};
}

Tensor apply_mask(const Tensor& sample_weight, const Tensor& mask, Reduction reduction, DType dtype) {
  Tensor m = mask.to(dtype);
  if (reduction == Reduction::sum_over_batch_size || reduction == Reduction::mean) {
    const double total = static_cast<double>(m.numel());
    m = mul(m, div(scalar_like(total, m), add(sum(m), kEpsilon)));
  }
  if (!sample_weight.defined()) return m;
  Tensor w = sample_weight.to(dtype);
  std::tie(m, w) = squeeze_or_expand_to_same_rank(m, w);
  return mul(w, m);
}

Tensor reduce_weighted(const Tensor& values, const Tensor& sample_weight, Reduction reduction,
                       const std::string& op) {
  Tensor v = values;
  Tensor w;
  if (sample_weight.defined()) {
    std::tie(v, w) = align_weight(values, sample_weight, op);
    v = mul(v, w);
  }
  if (reduction == Reduction::none || v.ndim() == 0) return v;
  const Tensor total = sum(v);
  switch (reduction) {
    case Reduction::sum: return total;
    case Reduction::mean_with_sample_weight:
      if (w.defined()) return divide_no_nan(total, sum(w));  // Keras: the weights' own sum
      [[fallthrough]];
    default: return divide_no_nan(total, scalar_like(static_cast<double>(v.numel()), total));
  }
}

}  // namespace kiln::losses::detail
