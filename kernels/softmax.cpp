// softmax and log_softmax: checks, moving the axis last (a copy only when it is not
// already innermost), dispatch, and the recorded backward (from the saved output).
#include "kiln/kernels/softmax.h"

#include <numeric>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/softmax_impl.h"

namespace kiln {
namespace {

// The permutation moving `axis` last; empty when every axis after it has extent 1 (the
// rows are then already innermost).
std::vector<std::int64_t> axis_last(const Shape& shape, int axis) {
  bool inner = true;
  for (int d = axis + 1; d < shape.ndim(); ++d) inner = inner && shape[d] == 1;
  if (inner) return {};
  std::vector<std::int64_t> perm;
  for (int d = 0; d < shape.ndim(); ++d) if (d != axis) perm.push_back(d);
  perm.push_back(axis);
  return perm;
}

std::vector<std::int64_t> inverse_of(const std::vector<std::int64_t>& perm) {
  std::vector<std::int64_t> inv(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inv[static_cast<std::size_t>(perm[i])] = static_cast<std::int64_t>(i);
  return inv;
}

// t (detached) with the softmax axis innermost, contiguous.
Tensor rows_of(const Tensor& t, const std::vector<std::int64_t>& perm) {
  const Tensor d = t.detach();
  return (perm.empty() ? d : d.permute(perm)).contiguous();
}

Tensor from_rows(const Tensor& rows, const std::vector<std::int64_t>& perm) {
  return perm.empty() ? rows : rows.permute(inverse_of(perm)).contiguous();
}

Tensor softmax_backward(const Tensor& y, const Tensor& g, int axis, bool log) {
  const std::vector<std::int64_t> perm = axis_last(y.shape(), axis);
  const Tensor yr = rows_of(y, perm), gr = rows_of(g.to(y.dtype()), perm);
  Tensor gx = empty(yr.shape(), {.dtype = y.dtype(), .device = y.device()});
  const std::int64_t K = y.shape()[axis];
  const SoftmaxGradLayout layout{gx.data_ptr(), yr.data_ptr(), gr.data_ptr(), y.dtype(),
                                 K == 0 ? 0 : y.numel() / K, K, log};
  if (y.numel() > 0) {
    KILN_ON_DEVICE(y.device(), "softmax backward", cpu::softmax_backward(layout),
                   cuda::softmax_backward(layout, y.device().index()));
  }
  return from_rows(gx, perm);
}

Tensor softmax_op(const Tensor& x, std::int64_t axis_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  KILN_CHECK(x.defined(), ValueError, name, ": the input tensor is undefined");
  KILN_CHECK(is_floating(x.dtype()), TypeError, name, ": expects a floating tensor, got ", x.dtype(),
             " of shape ", x.shape());
  const int axis = x.shape().normalize_axis(axis_in, name);
  const std::vector<std::int64_t> perm = axis_last(x.shape(), axis);
  const Tensor xr = rows_of(x, perm);
  Tensor yr = empty(xr.shape(), {.dtype = x.dtype(), .device = x.device()});
  const std::int64_t K = x.shape()[axis];
  const SoftmaxLayout layout{yr.data_ptr(), xr.data_ptr(), x.dtype(), K == 0 ? 0 : x.numel() / K, K, log};
  if (x.numel() > 0) {
    KILN_ON_DEVICE(x.device(), name, cpu::softmax_forward(layout),
                   cuda::softmax_forward(layout, x.device().index()));
  }
  const Tensor y = from_rows(yr, perm);
  if (needs_grad({&x})) {
    record(std::string(log ? "LogSoftmax" : "Softmax") + "Backward", {x}, {y},
           [y = y.detach(), axis, log](std::vector<Tensor>& g) {
             return std::vector<Tensor>{softmax_backward(y, g[0], axis, log)};
           });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis) { return softmax_op(x, axis, false); }
Tensor log_softmax(const Tensor& x, std::int64_t axis) { return softmax_op(x, axis, true); }

}  // namespace kiln
