// The loss ops: checks, the row layout of Note [Loss rows] (kernels/loss_impl.h), device
// dispatch, the reduction, and the recorded backward (for y_pred only: y_true gets none).
#include "kiln/kernels/loss.h"

#include <cmath>
#include <string>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/loss_impl.h"
#include "kiln/kernels/shape_ops_impl.h"

namespace kiln {
namespace {

struct LossSpec {
  const char* op;  // the public name, for messages (and the autograd node's name)
  LossKind kind;
  std::int64_t axis = -1;
  double label_smoothing = 0.0;
  double delta = 1.0;
  Reduction reduction = Reduction::mean;
};

// The operands laid out for the kernels: contiguous, detached, y_true converted (dense:
// to y_pred's dtype; sparse: to int64 labels, one per row).
struct Prepared {
  LossProblem pb;
  Tensor y_true;
  Tensor y_pred;
  Shape sample_shape;  // y_pred's shape without the reduced axis
  Shape pred_shape;

  LossProblem problem() const {  // pb with pointers into the tensors held here
    LossProblem p = pb;
    p.y_true = y_true.data_ptr();
    p.y_pred = y_pred.data_ptr();
    return p;
  }
};

Tensor sparse_labels(const LossSpec& s, const Tensor& y_true, const Shape& sample_shape, const Tensor& y_pred,
                     int axis) {
  KILN_CHECK(y_true.dtype() == DType::int32 || y_true.dtype() == DType::int64, TypeError, s.op,
             ": y_true must hold int32 or int64 class indices, got ", y_true.dtype(), " of shape ",
             y_true.shape());
  Tensor labels = y_true.detach();
  // Keras also accepts labels with a kept extent-1 class axis: (N, 1) for (N, C).
  if (labels.ndim() == y_pred.ndim() && labels.ndim() > 0 && labels.shape()[axis] == 1) {
    labels = labels.squeeze(axis);
  }
  KILN_CHECK(labels.shape() == sample_shape, ShapeError, s.op, ": y_true of shape ", y_true.shape(),
             " does not fit y_pred of shape ", y_pred.shape(), " (expected labels of shape ", sample_shape,
             ")");
  return labels.to(DType::int64).contiguous();
}

void check_labels(const LossSpec& s, const Prepared& p, const Tensor& y_true) {
  const void* labels = p.y_true.data_ptr();
  const RowLayout& l = p.pb.layout;
  std::int64_t bad = -1;
  // cuda: one small kernel marks the first bad row in a device flag, read back here.
  KILN_ON_DEVICE(
      p.y_true.device(), s.op, bad = cpu::first_bad_index(labels, DType::int64, l.rows, 0, l.classes),
      bad = cuda::first_bad_index(labels, DType::int64, l.rows, 0, l.classes, p.y_true.device().index()));
  if (bad < 0) return;
  const auto value = p.y_true.reshape({-1}).select(0, bad).item<std::int64_t>();
  KILN_THROW(IndexError, s.op, ": label ", value, " at flat index ", bad, " of y_true (shape ",
             y_true.shape(), ") is out of range for ", l.classes, " classes");
}

Prepared prepare(const LossSpec& s, const Tensor& y_true, const Tensor& y_pred) {
  KILN_CHECK(y_true.defined() && y_pred.defined(), ValueError, s.op, ": y_true and y_pred must be defined");
  detail::check_same_device(s.op, {&y_true, &y_pred});
  KILN_CHECK(is_floating(y_pred.dtype()), TypeError, s.op, ": y_pred must be a floating tensor, got ",
             y_pred.dtype(), " of shape ", y_pred.shape());
  KILN_CHECK(s.label_smoothing >= 0.0 && s.label_smoothing <= 1.0, ValueError, s.op,
             ": label_smoothing must lie in [0, 1], got ", s.label_smoothing);
  KILN_CHECK(y_pred.ndim() >= 1, ShapeError, s.op, ": y_pred needs at least one axis, got shape ",
             y_pred.shape());
  const int axis = y_pred.shape().normalize_axis(s.axis, s.op);
  Prepared p;
  p.pred_shape = y_pred.shape();
  p.sample_shape = y_pred.shape();
  p.sample_shape.erase(axis);
  RowLayout& l = p.pb.layout;
  l.classes = y_pred.shape()[axis];
  for (int d = axis + 1; d < y_pred.ndim(); ++d) l.inner *= y_pred.shape()[d];
  l.rows = p.sample_shape.numel();
  p.pb.kind = s.kind;
  p.pb.dtype = y_pred.dtype();
  p.pb.label_smoothing = s.label_smoothing;
  p.pb.delta = s.delta;
  p.y_pred = y_pred.detach().contiguous();
  if (is_sparse(s.kind)) {
    p.y_true = sparse_labels(s, y_true, p.sample_shape, y_pred, axis);
    check_labels(s, p, y_true);
  } else {
    KILN_CHECK(y_true.shape() == y_pred.shape(), ShapeError, s.op, ": y_true of shape ", y_true.shape(),
               " does not match y_pred of shape ", y_pred.shape());
    p.y_true = y_true.detach().to(y_pred.dtype()).contiguous();
  }
  return p;
}

Tensor loss_backward(const Prepared& p, const Tensor& aux, Reduction reduction, const Tensor& g) {
  const Device device = p.y_pred.device();
  const Tensor gy = g.to(p.pb.dtype).contiguous();
  Tensor grad = empty(p.pred_shape, {.dtype = p.pb.dtype, .device = device});
  const std::int64_t gy_stride = reduction == Reduction::none ? 1 : 0;
  const double divisor = reduction == Reduction::mean ? static_cast<double>(p.pb.layout.rows) : 1.0;
  const LossProblem pb = p.problem();
  KILN_ON_DEVICE(device, "loss backward",
                 cpu::loss_backward(pb, aux.data_ptr(), gy.data_ptr(), gy_stride, divisor, grad.data_ptr()),
                 cuda::loss_backward(pb, aux.data_ptr(), gy.data_ptr(), gy_stride, divisor, grad.data_ptr(),
                                     device.index()));
  return grad;
}

Tensor run_loss(const LossSpec& s, const Tensor& y_true, const Tensor& y_pred) {
  const Prepared p = prepare(s, y_true, y_pred);
  const Device device = y_pred.device();
  const DType compute = loss_compute_dtype(p.pb.dtype);
  const RowLayout& l = p.pb.layout;
  Tensor row_loss = empty({l.rows}, {.dtype = compute, .device = device});
  Tensor aux = empty({l.rows, kLossAux}, {.dtype = compute, .device = device});
  const LossProblem pb = p.problem();
  KILN_ON_DEVICE(device, s.op, cpu::loss_forward(pb, row_loss.data_ptr(), aux.data_ptr()),
                 cuda::loss_forward(pb, row_loss.data_ptr(), aux.data_ptr(), device.index()));
  Tensor out;
  if (s.reduction == Reduction::none) {
    out = row_loss.to(p.pb.dtype).reshape(p.sample_shape);
  } else {
    out = empty({}, {.dtype = p.pb.dtype, .device = device});
    // Keras' sum_over_batch_size: the sum over every per-sample loss, over their count.
    const double divisor = s.reduction == Reduction::mean ? static_cast<double>(l.rows) : 1.0;
    KILN_ON_DEVICE(device, s.op, cpu::loss_reduce(pb, row_loss.data_ptr(), divisor, out.data_ptr()),
                   cuda::loss_reduce(pb, row_loss.data_ptr(), divisor, out.data_ptr(), device.index()));
  }
  if (needs_grad({&y_pred})) {
    record(backward_name(s.op), {y_pred}, {out},
           [p, aux, reduction = s.reduction](std::vector<Tensor>& g) {
             if (!g[0].defined()) return std::vector<Tensor>{Tensor()};
             return std::vector<Tensor>{loss_backward(p, aux, reduction, g[0])};
           });
  }
  return out;
}

}  // namespace

namespace {
// The three cross-entropies differ only in their name and the kinds for logits / probabilities.
Tensor cross_entropy(const char* op, LossKind logits, LossKind probs, const Tensor& y_true,
                     const Tensor& y_pred, const CrossEntropyOptions& o) {
  return run_loss({.op = op,
                   .kind = o.from_logits ? logits : probs,
                   .axis = o.axis,
                   .label_smoothing = o.label_smoothing,
                   .reduction = o.reduction},
                  y_true, y_pred);
}
}  // namespace

Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, CrossEntropyOptions o) {
  return cross_entropy("sparse_categorical_crossentropy", LossKind::sparse_ce_logits, LossKind::sparse_ce_probs,
                       y_true, y_pred, o);
}

Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, CrossEntropyOptions o) {
  return cross_entropy("categorical_crossentropy", LossKind::ce_logits, LossKind::ce_probs, y_true, y_pred, o);
}

// Keras' binary_crossentropy averages the elementwise loss over `axis` (default -1).
Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred, CrossEntropyOptions o) {
  return cross_entropy("binary_crossentropy", LossKind::bce_logits, LossKind::bce_probs, y_true, y_pred, o);
}

Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred, Reduction reduction) {
  return run_loss({.op = "mean_squared_error", .kind = LossKind::mse, .reduction = reduction}, y_true,
                  y_pred);
}

Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred, Reduction reduction) {
  return run_loss({.op = "mean_absolute_error", .kind = LossKind::mae, .reduction = reduction}, y_true,
                  y_pred);
}

Tensor huber(const Tensor& y_true, const Tensor& y_pred, double delta, Reduction reduction) {
  KILN_CHECK(std::isfinite(delta) && delta >= 0.0, ValueError, "huber: delta must be finite and >= 0, got ",
             delta);
  return run_loss({.op = "huber", .kind = LossKind::huber, .delta = delta, .reduction = reduction}, y_true,
                  y_pred);
}

Tensor kl_divergence(const Tensor& y_true, const Tensor& y_pred, Reduction reduction) {
  return run_loss({.op = "kl_divergence", .kind = LossKind::kl, .reduction = reduction}, y_true, y_pred);
}

}  // namespace kiln
