// batch_norm and layer_norm: checks (dtypes, lengths, devices), laying x out as contiguous
// (rows, C), dispatch, the in-place running-statistics update, and the recorded backward
// (Note [Normalization formulas] in normalization_impl.h).
#include "kiln/kernels/normalization.h"

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/normalization_impl.h"

namespace kiln {
namespace {

// gamma, beta and the running statistics may have x's dtype, or float32 for float16 /
// bfloat16 x (Keras' mixed precision keeps these variables in float32).
bool param_dtype_ok(DType param, DType x) {
  return param == x || (param == DType::float32 && (x == DType::float16 || x == DType::bfloat16));
}

void check_param(const char* op, const char* what, const Tensor& p, const Tensor& x, bool required) {
  if (!p.defined()) {
    KILN_CHECK(!required, ValueError, op, ": ", what, " is undefined (x has shape ", x.shape(), ")");
    return;
  }
  const std::int64_t C = x.size(-1);
  KILN_CHECK(p.ndim() == 1 && p.size(0) == C, ShapeError, op, ": expected ", what, " of shape (", C,
             ",) for x of shape ", x.shape(), ", got ", p.shape());
  KILN_CHECK(param_dtype_ok(p.dtype(), x.dtype()), TypeError, op, ": ", what, " has dtype ", p.dtype(),
             " and shape ", p.shape(), " but x has dtype ", x.dtype(), " and shape ", x.shape(),
             " (expected ", x.dtype(),
             (x.dtype() == DType::float16 || x.dtype() == DType::bfloat16) ? " or float32)" : ")");
}

void check_x(const char* op, const Tensor& x) {
  KILN_CHECK(x.defined(), ValueError, op, ": the input tensor is undefined");
  KILN_CHECK(is_floating(x.dtype()), TypeError, op, ": expects a floating tensor, got ", x.dtype(), " of shape ",
             x.shape());
  KILN_CHECK(x.ndim() >= 1, ShapeError, op, ": expects x of shape (..., C), got a scalar of shape ", x.shape());
}

// A (C) parameter as a contiguous tensor in the statistics type (undefined stays so).
Tensor as_stat(const Tensor& p, DType stat) {
  return p.defined() ? p.detach().to(stat).contiguous() : Tensor();
}

const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

std::int64_t rows_of(const Tensor& x) {
  const std::int64_t C = x.size(-1);
  return C == 0 ? 0 : x.numel() / C;
}

// Gradients of batch_norm: dx (when need_x), dgamma and dbeta (when gamma / beta are
// defined and need them), in the dtypes of x, gamma and beta.
struct BatchNormSaved {
  Tensor x;            // (rows, C) contiguous, x's dtype
  Tensor mean, invstd; // (C) statistics type
  Tensor gamma;        // (C) statistics type, or undefined
  DType gamma_dtype = DType::float32, beta_dtype = DType::float32;
  bool training = true, need_x = false, need_gamma = false, need_beta = false;
};

std::vector<Tensor> batch_norm_backward(const BatchNormSaved& s, const Tensor& g, const Shape& x_shape) {
  const DType stat = norm_stat_dtype(s.x.dtype());
  const Device device = s.x.device();
  const std::int64_t rows = s.x.size(0), C = s.x.size(1);
  const Tensor dy = g.detach().to(s.x.dtype()).contiguous().view({rows, C});
  Tensor sum_dy = empty({C}, {.dtype = stat, .device = device});
  Tensor sum_dy_xhat = empty({C}, {.dtype = stat, .device = device});
  const bool need_sums = s.need_gamma || s.need_beta || (s.training && s.need_x);
  if (need_sums) {
    const NormGradSumsLayout l{dy.data_ptr(), s.x.data_ptr(), s.x.dtype(), rows, C, s.mean.data_ptr(),
                               s.invstd.data_ptr(), false, sum_dy.data_ptr(), sum_dy_xhat.data_ptr()};
    KILN_ON_DEVICE(device, "batch_norm backward", cpu::norm_grad_sums(l), cuda::norm_grad_sums(l, device.index()));
  }
  std::vector<Tensor> grads(3);
  if (s.need_x) {
    Tensor dx = empty({rows, C}, {.dtype = s.x.dtype(), .device = device});
    const BatchNormGradLayout l{dx.data_ptr(), dy.data_ptr(), s.x.data_ptr(), s.x.dtype(), rows, C,
                                s.mean.data_ptr(), s.invstd.data_ptr(), ptr_or_null(s.gamma),
                                sum_dy.data_ptr(), sum_dy_xhat.data_ptr(), s.training};
    KILN_ON_DEVICE(device, "batch_norm backward", cpu::batch_norm_backward(l),
                   cuda::batch_norm_backward(l, device.index()));
    grads[0] = dx.view(x_shape);
  }
  if (s.need_gamma) grads[1] = sum_dy_xhat.to(s.gamma_dtype);
  if (s.need_beta) grads[2] = sum_dy.to(s.beta_dtype);
  return grads;
}

// Runs the statistics kernel; in training, updates running_mean / running_var in place
// (no autograd: the kernel writes a detached working copy in the statistics type, copied
// back when the caller's tensor has another dtype or layout).
void batch_norm_statistics(const Tensor& x2, const Tensor& running_mean, const Tensor& running_var,
                           const Tensor& mean, const Tensor& invstd, const BatchNormOptions& o) {
  NoGradGuard no_grad;
  const DType stat = norm_stat_dtype(x2.dtype());
  const Tensor rm = running_mean.detach(), rv = running_var.detach();
  const auto working = [stat](const Tensor& t) {
    return t.dtype() == stat && t.is_contiguous() ? t : t.to(stat).contiguous();
  };
  const Tensor rm_work = working(rm), rv_work = working(rv);
  const BatchNormStatsLayout l{x2.data_ptr(), x2.dtype(), x2.size(0), x2.size(1), mean.data_ptr(),
                               invstd.data_ptr(), rm_work.data_ptr(), rv_work.data_ptr(), o.momentum, o.epsilon,
                               o.training};
  const Device device = x2.device();
  KILN_ON_DEVICE(device, "batch_norm", cpu::batch_norm_stats(l), cuda::batch_norm_stats(l, device.index()));
  if (o.training) {
    if (!rm_work.is_same(rm)) Tensor(rm).copy_(rm_work);
    if (!rv_work.is_same(rv)) Tensor(rv).copy_(rv_work);
  }
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& options) {
  constexpr const char* op = "batch_norm";
  check_x(op, x);
  check_param(op, "gamma", gamma, x, false);
  check_param(op, "beta", beta, x, false);
  check_param(op, "running_mean", running_mean, x, true);
  check_param(op, "running_var", running_var, x, true);
  detail::check_same_device(op, {&x, &gamma, &beta, &running_mean, &running_var});
  KILN_CHECK(std::isfinite(options.momentum) && options.momentum >= 0 && options.momentum <= 1, ValueError, op,
             ": momentum must lie in [0, 1], got ", options.momentum, " (x of shape ", x.shape(), ")");
  KILN_CHECK(std::isfinite(options.epsilon) && options.epsilon >= 0, ValueError, op,
             ": epsilon must be finite and >= 0, got ", options.epsilon, " (x of shape ", x.shape(), ")");

  const DType stat = norm_stat_dtype(x.dtype());
  const Device device = x.device();
  const std::int64_t C = x.size(-1), rows = rows_of(x);
  const Tensor x2 = x.detach().contiguous().view({rows, C});
  const Tensor mean = empty({C}, {.dtype = stat, .device = device});
  const Tensor invstd = empty({C}, {.dtype = stat, .device = device});
  batch_norm_statistics(x2, running_mean, running_var, mean, invstd, options);

  const Tensor g = as_stat(gamma, stat), b = as_stat(beta, stat);
  Tensor y = empty({rows, C}, {.dtype = x.dtype(), .device = device});
  const BatchNormApplyLayout l{y.data_ptr(), x2.data_ptr(), x.dtype(), rows, C, mean.data_ptr(),
                              invstd.data_ptr(), ptr_or_null(g), ptr_or_null(b)};
  if (rows * C > 0) {
    KILN_ON_DEVICE(device, op, cpu::batch_norm_apply(l), cuda::batch_norm_apply(l, device.index()));
  }
  y = y.view(x.shape());
  if (needs_grad({&x, &gamma, &beta})) {
    BatchNormSaved s{x2,
                     mean,
                     invstd,
                     g,
                     gamma.defined() ? gamma.dtype() : stat,
                     beta.defined() ? beta.dtype() : stat,
                     options.training,
                     x.requires_grad(),
                     gamma.defined() && gamma.requires_grad(),
                     beta.defined() && beta.requires_grad()};
    record("BatchNormBackward", {x, gamma, beta}, {y},
           [s = std::move(s), shape = x.shape()](std::vector<Tensor>& grads) {
             return batch_norm_backward(s, grads[0], shape);
           });
  }
  return y;
}

namespace {

struct LayerNormSaved {
  Tensor x;             // (rows, K) contiguous, x's dtype
  Tensor mean, invstd;  // (rows) statistics type
  Tensor gamma;         // (K) statistics type, or undefined
  DType gamma_dtype = DType::float32, beta_dtype = DType::float32;
  bool need_x = false, need_gamma = false, need_beta = false;
};

std::vector<Tensor> layer_norm_backward(const LayerNormSaved& s, const Tensor& g, const Shape& x_shape) {
  const DType stat = norm_stat_dtype(s.x.dtype());
  const Device device = s.x.device();
  const std::int64_t rows = s.x.size(0), K = s.x.size(1);
  const Tensor dy = g.detach().to(s.x.dtype()).contiguous().view({rows, K});
  std::vector<Tensor> grads(3);
  if (s.need_x) {
    Tensor dx = empty({rows, K}, {.dtype = s.x.dtype(), .device = device});
    const LayerNormGradLayout l{dx.data_ptr(), dy.data_ptr(), s.x.data_ptr(), s.x.dtype(), rows, K,
                                ptr_or_null(s.gamma), s.mean.data_ptr(), s.invstd.data_ptr()};
    if (rows * K > 0) {
      KILN_ON_DEVICE(device, "layer_norm backward", cpu::layer_norm_backward(l),
                     cuda::layer_norm_backward(l, device.index()));
    }
    grads[0] = dx.view(x_shape);
  }
  if (s.need_gamma || s.need_beta) {
    Tensor sum_dy = empty({K}, {.dtype = stat, .device = device});
    Tensor sum_dy_xhat = empty({K}, {.dtype = stat, .device = device});
    const NormGradSumsLayout l{dy.data_ptr(), s.x.data_ptr(), s.x.dtype(), rows, K, s.mean.data_ptr(),
                               s.invstd.data_ptr(), true, sum_dy.data_ptr(), sum_dy_xhat.data_ptr()};
    KILN_ON_DEVICE(device, "layer_norm backward", cpu::norm_grad_sums(l), cuda::norm_grad_sums(l, device.index()));
    if (s.need_gamma) grads[1] = sum_dy_xhat.to(s.gamma_dtype);
    if (s.need_beta) grads[2] = sum_dy.to(s.beta_dtype);
  }
  return grads;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double epsilon) {
  constexpr const char* op = "layer_norm";
  check_x(op, x);
  check_param(op, "gamma", gamma, x, false);
  check_param(op, "beta", beta, x, false);
  detail::check_same_device(op, {&x, &gamma, &beta});
  KILN_CHECK(std::isfinite(epsilon) && epsilon >= 0, ValueError, op, ": epsilon must be finite and >= 0, got ",
             epsilon, " (x of shape ", x.shape(), ")");

  const DType stat = norm_stat_dtype(x.dtype());
  const Device device = x.device();
  const std::int64_t K = x.size(-1), rows = rows_of(x);
  const Tensor x2 = x.detach().contiguous().view({rows, K});
  const Tensor g = as_stat(gamma, stat), b = as_stat(beta, stat);
  Tensor y = empty({rows, K}, {.dtype = x.dtype(), .device = device});
  const Tensor mean = empty({rows}, {.dtype = stat, .device = device});
  const Tensor invstd = empty({rows}, {.dtype = stat, .device = device});
  const LayerNormLayout l{y.data_ptr(), x2.data_ptr(), x.dtype(), rows, K, ptr_or_null(g), ptr_or_null(b),
                         mean.data_ptr(), invstd.data_ptr(), epsilon};
  if (rows * K > 0) {
    KILN_ON_DEVICE(device, op, cpu::layer_norm_forward(l), cuda::layer_norm_forward(l, device.index()));
  }
  y = y.view(x.shape());
  if (needs_grad({&x, &gamma, &beta})) {
    LayerNormSaved s{x2,
                     mean,
                     invstd,
                     g,
                     gamma.defined() ? gamma.dtype() : stat,
                     beta.defined() ? beta.dtype() : stat,
                     x.requires_grad(),
                     gamma.defined() && gamma.requires_grad(),
                     beta.defined() && beta.requires_grad()};
    record("LayerNormBackward", {x, gamma, beta}, {y},
           [s = std::move(s), shape = x.shape()](std::vector<Tensor>& grads) {
             return layer_norm_backward(s, grads[0], shape);
           });
  }
  return y;
}

}  // namespace kiln
