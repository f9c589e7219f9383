// matmul and linear: NumPy's shape rules, the checks, the cuda GEMM backend setting, and
// the recorded backward (dA = dC·Bᵀ, dB = Aᵀ·dC, reduced over broadcast batch axes;
// d bias = the column sums of dC). The GEMM itself is planned in matmul_plan.cpp.
#include "kiln/kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/matmul_impl.h"
#include "kiln/kernels/reduce.h"

namespace kiln {
namespace {

// -1: no override; else the GemmBackend's value.
std::atomic<int> g_backend_override{-1};
std::atomic<bool> g_allow_tf32{false};

GemmBackend backend_from_env() {
#if KILN_CUDA_SIM
  return GemmBackend::native;  // SIM has no vendor library
#else
  const char* env = std::getenv("KILN_GEMM");
  if (env == nullptr || *env == '\0') return GemmBackend::vendor;
  const std::string_view value(env);
  if (value == "native") return GemmBackend::native;
  KILN_CHECK(value == "vendor" || value == "cublas", ValueError,
             "KILN_GEMM must be 'native' or 'vendor' (or 'cublas'), got '", value, "'");
  return GemmBackend::vendor;
#endif
}

void check_operands(const char* op, const Tensor& a, const Tensor& b, const char* a_name,
                    const char* b_name) {
  KILN_CHECK(a.defined() && b.defined(), ValueError, op, ": ", a.defined() ? b_name : a_name,
             " is an undefined tensor");
  detail::check_same_device(op, {&a, &b});
  KILN_CHECK(is_floating(a.dtype()) && a.dtype() == b.dtype(), TypeError, op,
             ": expects two floating tensors of one dtype, got ", a_name, " ", a.dtype(), " ",
             a.shape(), " and ", b_name, " ", b.dtype(), " ", b.shape());
}

// a (..., m, k), b (..., k, n): the inner extents agree and the batch axes broadcast.
void check_matmul_shapes(const Tensor& a, const Tensor& b, const Tensor& a2, const Tensor& b2) {
  KILN_CHECK(a2.size(-1) == b2.size(-2), ShapeError, "matmul: inner dimensions differ: a has shape ",
             a.shape(), " and b has shape ", b.shape(), " (", a2.size(-1), " != ", b2.size(-2), ")");
  const int na = a2.ndim() - 2, nb = b2.ndim() - 2;
  for (int i = 1; i <= std::min(na, nb); ++i) {
    const std::int64_t x = a2.size(na - i), y = b2.size(nb - i);
    KILN_CHECK(x == y || x == 1 || y == 1, ShapeError,
               "matmul: batch dimensions do not broadcast: a has shape ", a.shape(),
               " and b has shape ", b.shape());
  }
}

// NumPy's promotion of 1-D operands: a (k) -> (1, k), b (k) -> (k, 1).
Tensor promote_a(const Tensor& a) { return a.ndim() == 1 ? a.unsqueeze(0) : a; }
Tensor promote_b(const Tensor& b) { return b.ndim() == 1 ? b.unsqueeze(1) : b; }

// Sums a batched gradient g (batch..., r, c) down to the shape of x (its operand).
Tensor reduce_to(const Tensor& g, const Tensor& x) {
  return g.shape() == x.shape() ? g : sum_to(g, x.shape());
}

// The gradients of C = A·B for promoted operands a2 (..., m, k), b2 (..., k, n) and
// gc2 (batch..., m, n). A 2-D b (one matrix for every batch) takes its gradient as one
// GEMM over the batch folded into the rows: Σ_b A_bᵀ·dC_b = A(batch·m, k)ᵀ · dC(batch·m, n).
Tensor grad_a(const Tensor& gc2, const Tensor& b2, const Tensor& a2) {
  return reduce_to(matmul(gc2, b2.transpose(-1, -2)), a2);
}
Tensor grad_b(const Tensor& gc2, const Tensor& a2, const Tensor& b2) {
  if (b2.ndim() == 2 && gc2.ndim() > 2) {
    // gc2's batch axes are then a2's own, so both fold without an expand.
    return matmul(a2.reshape({-1, a2.size(-1)}).t(), gc2.reshape({-1, gc2.size(-1)}));
  }
  return reduce_to(matmul(a2.transpose(-1, -2), gc2), b2);
}

std::vector<Tensor> matmul_backward(const Tensor& gc, const Tensor& a, const Tensor& b, bool need_a,
                                    bool need_b) {
  const Tensor a2 = promote_a(a), b2 = promote_b(b);
  Tensor gc2 = gc.to(a.dtype());
  if (a.ndim() == 1) gc2 = gc2.unsqueeze(gc2.ndim() - (b.ndim() == 1 ? 0 : 1));
  if (b.ndim() == 1) gc2 = gc2.unsqueeze(gc2.ndim());
  Tensor ga, gb;
  if (need_a) ga = grad_a(gc2, b2, a2).reshape(a.shape());
  if (need_b) gb = grad_b(gc2, a2, b2).reshape(b.shape());
  return {ga, gb};
}

// y = x·wᵀ + b: dx = dy·w, dw = dy(rows, out)ᵀ · x(rows, in), db = 1(rows) · dy(rows, out)
// (column sums as a GEMV, so 16-bit gradients accumulate in float32 like the GEMMs).
std::vector<Tensor> linear_backward(const Tensor& gy, const Tensor& x, const Tensor& w, bool need_x,
                                    bool need_w, bool need_bias) {
  const Tensor g = gy.to(x.dtype());
  const Tensor g_rows = g.reshape({-1, w.size(0)});  // (rows, out)
  Tensor gx, gw, gb;
  if (need_x) gx = matmul(g, w);
  if (need_w) gw = matmul(g_rows.t(), x.reshape({-1, w.size(1)}));
  if (need_bias) gb = matmul(ones({g_rows.size(0)}, {.dtype = x.dtype(), .device = x.device()}), g_rows);
  return {gx, gw, gb};
}

}  // namespace

GemmBackend gemm_backend() {
  const int override_value = g_backend_override.load(std::memory_order_relaxed);
  if (override_value >= 0) return static_cast<GemmBackend>(override_value);
  static const GemmBackend from_env = backend_from_env();
  return from_env;
}

void set_gemm_backend(GemmBackend backend) {
  g_backend_override.store(static_cast<int>(backend), std::memory_order_relaxed);
}

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands("matmul", a, b, "a", "b");
  KILN_CHECK(a.ndim() >= 1 && b.ndim() >= 1, ShapeError,
             "matmul: operands must be at least 1-D, got a of shape ", a.shape(), " and b of shape ",
             b.shape());
  const Tensor a2 = promote_a(a.detach()), b2 = promote_b(b.detach());
  check_matmul_shapes(a, b, a2, b2);
  Tensor y = detail::batched_gemm("matmul", a2, b2, Tensor());
  if (b.ndim() == 1) y = y.squeeze(-1);
  if (a.ndim() == 1) y = y.squeeze(-1 - (b.ndim() == 1 ? 0 : 1));
  if (needs_grad({&a, &b})) {
    record("MatmulBackward", {a, b}, {y},
           [a = a.detach(), b = b.detach(), need_a = a.requires_grad(),
            need_b = b.requires_grad()](std::vector<Tensor>& g) {
             return matmul_backward(g[0], a, b, need_a, need_b);
           });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_operands("linear", x, w, "x", "w");
  KILN_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.size(-1) == w.size(1), ShapeError,
             "linear: expected x of shape (..., in) and w of shape (out, in), got x ", x.shape(),
             " and w ", w.shape());
  if (bias.defined()) {
    detail::check_same_device("linear", {&x, &bias});
    KILN_CHECK(bias.dtype() == x.dtype(), TypeError, "linear: bias has dtype ", bias.dtype(),
               ", x and w have ", x.dtype());
    KILN_CHECK(bias.ndim() == 1 && bias.size(0) == w.size(0), ShapeError,
               "linear: expected a bias of shape (", w.size(0), ",) for w of shape ", w.shape(),
               ", got ", bias.shape());
  }
  const Tensor x2 = promote_a(x.detach());
  Tensor y = detail::batched_gemm("linear", x2, w.detach().t(), bias);
  if (x.ndim() == 1) y = y.squeeze(0);
  if (needs_grad({&x, &w, &bias})) {
    record("LinearBackward", {x, w, bias}, {y},
           [x = x.detach(), w = w.detach(), need_x = x.requires_grad(), need_w = w.requires_grad(),
            need_bias = bias.defined() && bias.requires_grad()](std::vector<Tensor>& g) {
             return linear_backward(g[0], x, w, need_x, need_w, need_bias);
           });
  }
  return y;
}

}  // namespace kiln
