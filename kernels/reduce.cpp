// The reductions: axis handling, the (outer, K, inner) layout the kernels reduce, dtype
// rules, dispatch, and each op's recorded backward.
//
// Note [Reduction layout]: the kernels reduce a contiguous block viewed as (outer, K,
// inner), K being the elements that make one output. When the input is dense in some
// axis order (contiguous, or a permutation of a contiguous tensor such as a transpose)
// and its reduced axes are adjacent in that order, the block is the input itself, with
// no copy (sum over the batch axis of (N, C) is K = N, inner = C). Otherwise the kept
// axes are moved first and the reduced ones last and the result is made contiguous
// (inner = 1). The outputs come out in the memory order of the kept axes and are
// permuted back to their logical order.
#include "kiln/kernels/reduce.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/reduce_impl.h"
#include "kiln/kernels/unary.h"

namespace kiln {
namespace {

using reduce_math::GradKind;
using reduce_math::GradParams;

struct Plan {
  std::vector<std::int64_t> order;       // the block is x.permute(order), made contiguous
  std::vector<std::int64_t> kept_order;  // non-unit kept axes in the order outputs are stored
  std::vector<std::int64_t> kept_logical;  // the same axes in logical order
  Shape x_shape;
  DType dtype = DType::float32;          // x's
  Shape block_shape;                     // x's shape permuted by order
  Shape out_shape;                       // the op's result shape
  std::int64_t outer = 1, K = 1, inner = 1;
};

std::string axes_str(const Axes& axes) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < axes.size(); ++i) os << (i ? ", " : "") << axes[i];
  return os.str() + "]";
}

// Axes of x with extent > 1 sorted by decreasing stride, then the extent-1 axes (whose
// strides mean nothing): a permutation under which x is contiguous, when one exists;
// empty when x is not dense in any order.
std::vector<std::int64_t> memory_order(const Tensor& x) {
  if (x.numel() == 0) return {};
  std::vector<std::int64_t> order, units;
  for (int d = 0; d < x.ndim(); ++d) (x.shape()[d] == 1 ? units : order).push_back(d);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return x.strides()[static_cast<int>(a)] > x.strides()[static_cast<int>(b)];
  });
  std::int64_t expected = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const int d = static_cast<int>(*it);
    if (x.strides()[d] != expected) return {};
    expected *= x.shape()[d];
  }
  order.insert(order.end(), units.begin(), units.end());
  return order;
}

// Fills outer/K/inner and kept_order from `order` when the reduced non-unit axes are
// adjacent in it and in increasing order; false otherwise.
bool try_block(const Tensor& x, const std::vector<bool>& reduced, const std::vector<std::int64_t>& order,
               Plan& plan) {
  int phase = 0;  // 0: before the reduced run, 1: inside it, 2: after it
  std::int64_t last_reduced = -1;
  plan.outer = plan.K = plan.inner = 1;
  plan.kept_order.clear();
  for (const std::int64_t a : order) {
    const std::int64_t extent = x.shape()[static_cast<int>(a)];
    if (extent == 1) continue;
    if (reduced[static_cast<std::size_t>(a)]) {
      // Reduced axes in logical order, so k runs row-major over them and "the first
      // extreme element" (max/min gradients) means the logical first.
      if (phase == 2 || a < last_reduced) return false;
      last_reduced = a;
      phase = 1;
      plan.K *= extent;
    } else {
      if (phase == 1) phase = 2;
      (phase == 0 ? plan.outer : plan.inner) *= extent;
      plan.kept_order.push_back(a);
    }
  }
  return true;
}

Plan make_plan(const Tensor& x, const Axes& axes, bool keepdims, const char* op) {
  const int n = x.ndim();
  std::vector<bool> reduced(static_cast<std::size_t>(n), axes.empty());
  for (const std::int64_t a : axes) reduced[static_cast<std::size_t>(x.shape().normalize_axis(a, op))] = true;
  Plan plan;
  plan.x_shape = x.shape();
  plan.dtype = x.dtype();
  for (int d = 0; d < n; ++d) {
    if (!reduced[static_cast<std::size_t>(d)]) {
      plan.out_shape.push_back(x.shape()[d]);
      if (x.shape()[d] != 1) plan.kept_logical.push_back(d);
    } else if (keepdims) {
      plan.out_shape.push_back(1);
    }
  }
  plan.order = memory_order(x);
  if (plan.order.empty() || !try_block(x, reduced, plan.order, plan)) {
    plan.order.clear();
    for (int d = 0; d < n; ++d) if (!reduced[static_cast<std::size_t>(d)]) plan.order.push_back(d);
    for (int d = 0; d < n; ++d) if (reduced[static_cast<std::size_t>(d)]) plan.order.push_back(d);
    try_block(x, reduced, plan.order, plan);
  }
  for (const std::int64_t a : plan.order) plan.block_shape.push_back(x.shape()[static_cast<int>(a)]);
  return plan;
}

bool is_identity(std::span<const std::int64_t> perm) {
  for (std::size_t i = 0; i < perm.size(); ++i) if (perm[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}

// x (detached) as the contiguous (outer, K, inner) block of Note [Reduction layout].
Tensor block_of(const Tensor& x, const Plan& plan) {
  const Tensor xd = x.detach();
  return (is_identity(plan.order) ? xd : xd.permute(plan.order)).contiguous();
}

// Positions of kept_order's axes within kept_logical: the permutation from logical order
// to storage order.
std::vector<std::int64_t> storage_perm(const Plan& plan) {
  std::vector<std::int64_t> perm;
  for (const std::int64_t a : plan.kept_order) {
    perm.push_back(std::find(plan.kept_logical.begin(), plan.kept_logical.end(), a) - plan.kept_logical.begin());
  }
  return perm;
}

Shape extents(const Plan& plan, const std::vector<std::int64_t>& axes) {
  Shape s;
  for (const std::int64_t a : axes) s.push_back(plan.x_shape[static_cast<int>(a)]);
  return s;
}

// An (outer, inner) result buffer in storage order -> the op's result (logical order).
Tensor from_rows(const Tensor& rows, const Plan& plan) {
  const std::vector<std::int64_t> perm = storage_perm(plan);
  if (is_identity(perm)) return rows.reshape(plan.out_shape);
  std::vector<std::int64_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inverse[static_cast<std::size_t>(perm[i])] = static_cast<std::int64_t>(i);
  return rows.reshape(extents(plan, plan.kept_order)).permute(inverse).contiguous().reshape(plan.out_shape);
}

// The inverse of from_rows: a tensor of the op's result shape -> contiguous storage order.
Tensor to_rows(const Tensor& t, const Plan& plan) {
  const std::vector<std::int64_t> perm = storage_perm(plan);
  const Tensor logical = t.contiguous().reshape(extents(plan, plan.kept_logical));
  return is_identity(perm) ? logical : logical.permute(perm).contiguous();
}

// Runs the kernel on a block: returns the (outer * inner) results in storage order.
Tensor run_rows(const ReduceParams& params, const Tensor& block, const Plan& plan) {
  Tensor out = empty({plan.outer * plan.inner},
                     {.dtype = reduce_out_dtype(params.op, block.dtype()), .device = block.device()});
  const ReduceLayout layout{block.data_ptr(), out.data_ptr(), block.dtype(), plan.outer, plan.K, plan.inner};
  KILN_ON_DEVICE(block.device(), "reduce", cpu::reduce(params, layout),
                 cuda::reduce(params, layout, block.device().index()));
  return out;
}

// The backward kernel: gx in x's shape from the per-output tensors (storage order).
// g_rows (outer, inner) is converted to the input's dtype.
Tensor run_grad(const GradParams& params, const Plan& plan, const Tensor& g_rows, const Tensor& block,
                const Tensor& y_rows, const Tensor& mean_rows, const Tensor& index_rows) {
  const Tensor g = g_rows.to(plan.dtype);
  Tensor gx = empty(plan.block_shape, {.dtype = plan.dtype, .device = g.device()});
  const auto ptr = [](const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; };
  const ReduceGradLayout layout{gx.data_ptr(), ptr(block), ptr(y_rows), ptr(g), ptr(mean_rows),
                                static_cast<const std::int64_t*>(ptr(index_rows)), plan.dtype,
                                plan.outer, plan.K, plan.inner};
  if (gx.numel() > 0) {
    KILN_ON_DEVICE(gx.device(), "reduce backward", cpu::reduce_backward(params, layout),
                   cuda::reduce_backward(params, layout, gx.device().index()));
  }
  if (is_identity(plan.order)) return gx;
  std::vector<std::int64_t> inverse(plan.order.size());
  for (std::size_t i = 0; i < plan.order.size(); ++i) inverse[static_cast<std::size_t>(plan.order[i])] = static_cast<std::int64_t>(i);
  return gx.permute(inverse).contiguous();
}

void check_input(const Tensor& x, const char* op) {
  KILN_CHECK(x.defined(), ValueError, op, ": the input tensor is undefined");
}

bool is_arg(ReduceOp op) { return op == ReduceOp::argmax || op == ReduceOp::argmin; }

// One reduction: checks, the kernel, and (for differentiable ops) the backward that
// make_backward(plan, y) returns.
template <class MakeBackward>
Tensor reduce_op(const char* name, ReduceParams params, const Tensor& x, const Axes& axes, bool keepdims,
                 MakeBackward&& make_backward) {
  check_input(x, name);
  const Plan plan = make_plan(x, axes, keepdims, name);
  const bool needs_identity = params.op == ReduceOp::max || params.op == ReduceOp::min || is_arg(params.op);
  KILN_CHECK(!needs_identity || plan.K > 0 || plan.outer * plan.inner == 0, ValueError, name,
             ": cannot reduce over an empty axis (", name, " has no identity); input shape ", x.shape(),
             ", axes ", axes.empty() ? std::string("all") : axes_str(axes));
  const Tensor y = from_rows(run_rows(params, block_of(x, plan), plan), plan);
  if (!is_arg(params.op) && needs_grad({&x})) {
    record(std::string(name) + "Backward", {x}, {y}, make_backward(plan, y.detach()));
  }
  return y;
}

// Integer and bool inputs of var/std/norm compute in float32.
Tensor floating(const Tensor& x) { return is_floating(x.dtype()) ? x : x.to(DType::float32); }

GradParams grad_params(GradKind kind, double scale = 1.0) {
  GradParams p;
  p.kind = kind;
  p.scale = scale;
  return p;
}

// sum and mean: the gradient broadcast back, times `scale` (1 or 1/n); keeps no tensor.
BackwardFn broadcast_backward(const Plan& plan, double scale) {
  return [plan, scale](std::vector<Tensor>& g) {
    return std::vector<Tensor>{run_grad(grad_params(GradKind::broadcast, scale), plan, to_rows(g[0], plan),
                                        {}, {}, {}, {})};
  };
}

// max/min: the gradient goes to the first extreme element of each row (arg of the same
// kind finds it; NaN counts as the extreme, matching the NaN result).
Tensor extreme(const char* name, ReduceOp op, ReduceOp arg, const Tensor& x, const Axes& axes, bool keepdims) {
  return reduce_op(name, {op}, x, axes, keepdims, [x = x.detach(), arg](const Plan& plan, const Tensor&) {
    return BackwardFn([plan, x, arg](std::vector<Tensor>& g) {
      const Tensor index = run_rows({arg}, block_of(x, plan), plan);
      return std::vector<Tensor>{run_grad(grad_params(GradKind::select), plan, to_rows(g[0], plan), {}, {},
                                          {}, index)};
    });
  });
}

Tensor moment(const char* name, bool take_sqrt, const Tensor& x_in, const Axes& axes, bool keepdims, int ddof) {
  check_input(x_in, name);
  const Tensor x = floating(x_in);
  ReduceParams params{take_sqrt ? ReduceOp::std : ReduceOp::var};
  params.ddof = ddof;
  return reduce_op(name, params, x, axes, keepdims, [x = x.detach(), take_sqrt, ddof](const Plan& plan, const Tensor& y) {
    return BackwardFn([plan, x, y, take_sqrt, ddof](std::vector<Tensor>& g) {
      const Tensor block = block_of(x, plan);
      const Tensor mean_rows = run_rows({ReduceOp::mean}, block, plan);
      const double scale = 1.0 / static_cast<double>(std::max<std::int64_t>(plan.K - ddof, 0));
      const GradParams p = grad_params(take_sqrt ? GradKind::std : GradKind::var, scale);
      return std::vector<Tensor>{run_grad(p, plan, to_rows(g[0], plan), block,
                                          take_sqrt ? to_rows(y, plan) : Tensor(), mean_rows, {})};
    });
  });
}

BackwardFn norm_backward(const Plan& plan, const Tensor& x, const Tensor& y, const ReduceParams& params) {
  return [plan, x, y, params](std::vector<Tensor>& g) {
    const Tensor block = block_of(x, plan);
    const Tensor g_rows = to_rows(g[0], plan);
    if (params.norm == reduce_math::NormKind::linf) {  // the first element of largest magnitude
      GradParams gp = grad_params(GradKind::select);
      gp.select_sign = true;
      const Tensor index = run_rows({ReduceOp::argmax}, kiln::abs(block), plan);
      return std::vector<Tensor>{run_grad(gp, plan, g_rows, block, {}, {}, index)};
    }
    GradParams gp = grad_params(GradKind::norm);
    gp.norm = params.norm;
    gp.p = params.p;
    return std::vector<Tensor>{run_grad(gp, plan, g_rows, block, to_rows(y, plan), {}, {})};
  };
}

}  // namespace

Tensor sum(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduce_op("sum", {ReduceOp::sum}, x, axes, keepdims,
                   [](const Plan& plan, const Tensor&) { return broadcast_backward(plan, 1.0); });
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduce_op("mean", {ReduceOp::mean}, x, axes, keepdims, [](const Plan& plan, const Tensor&) {
    return broadcast_backward(plan, 1.0 / static_cast<double>(plan.K));
  });
}

Tensor max(const Tensor& x, const Axes& axes, bool keepdims) {
  return extreme("max", ReduceOp::max, ReduceOp::argmax, x, axes, keepdims);
}
Tensor min(const Tensor& x, const Axes& axes, bool keepdims) {
  return extreme("min", ReduceOp::min, ReduceOp::argmin, x, axes, keepdims);
}

Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdims) {
  return reduce_op("argmax", {ReduceOp::argmax}, x, {axis}, keepdims,
                   [](const Plan&, const Tensor&) { return BackwardFn(); });
}
Tensor argmin(const Tensor& x, std::int64_t axis, bool keepdims) {
  return reduce_op("argmin", {ReduceOp::argmin}, x, {axis}, keepdims,
                   [](const Plan&, const Tensor&) { return BackwardFn(); });
}

Tensor var(const Tensor& x, const Axes& axes, bool keepdims, int ddof) {
  return moment("var", false, x, axes, keepdims, ddof);
}
Tensor std(const Tensor& x, const Axes& axes, bool keepdims, int ddof) {
  return moment("std", true, x, axes, keepdims, ddof);
}

Tensor norm(const Tensor& x_in, double p, const Axes& axes, bool keepdims) {
  check_input(x_in, "norm");
  KILN_CHECK(p > 0 && !std::isnan(p), ValueError, "norm: p must be positive (or inf), got ", p,
             " for input shape ", x_in.shape());
  using reduce_math::NormKind;
  ReduceParams params{ReduceOp::norm};
  params.p = p;
  params.norm = std::isinf(p) ? NormKind::linf : p == 1.0 ? NormKind::l1 : p == 2.0 ? NormKind::l2 : NormKind::lp;
  const Tensor x = floating(x_in);
  return reduce_op("norm", params, x, axes, keepdims, [x = x.detach(), params](const Plan& plan, const Tensor& y) {
    return norm_backward(plan, x, y, params);
  });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_input(x, "sum_to");
  const int lead = x.ndim() - shape.ndim();
  KILN_CHECK(lead >= 0, ShapeError, "sum_to: cannot sum shape ", x.shape(), " to ", shape);
  Axes axes;
  for (int d = 0; d < x.ndim(); ++d) {
    if (d < lead) {
      axes.push_back(d);
      continue;
    }
    const std::int64_t want = shape[d - lead];
    KILN_CHECK(want == x.shape()[d] || want == 1, ShapeError, "sum_to: cannot sum shape ", x.shape(),
               " to ", shape, " (axis ", d, ": ", x.shape()[d], " -> ", want, ")");
    if (want != x.shape()[d]) axes.push_back(d);
  }
  if (axes.empty()) return x.shape() == shape ? x : x.reshape(shape);
  return sum(x, axes, /*keepdims=*/true).reshape(shape);
}

}  // namespace kiln
