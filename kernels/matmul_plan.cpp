// Planning a GEMM from tensors: which layout each matrix has (row-major or transposed, so
// transposed views need no copy), how the broadcast batch axes step through memory, and
// how many backend calls that takes. See Note [Batch axes of a GEMM].
#include <algorithm>
#include <optional>

#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/matmul_impl.h"

namespace kiln::detail {
namespace {

// The layout of the last two axes (rows, cols) of x if a BLAS can read them as they are:
// one of the two strides is 1 and the other leaves room for a whole row (or column).
// Extent-1 axes may have any stride; a zero stride (an expanded axis) never qualifies.
std::optional<GemmOperand> blas_layout(const Tensor& x) {
  const std::int64_t rows = x.size(-2), cols = x.size(-1);
  const std::int64_t s_rows = x.stride(-2), s_cols = x.stride(-1);
  GemmOperand op;
  op.data = x.data_ptr();
  if ((cols == 1 || s_cols == 1) && (rows == 1 || s_rows >= cols)) {
    op.ld = rows == 1 ? cols : s_rows;
    return op;
  }
  if ((rows == 1 || s_rows == 1) && (cols == 1 || s_cols >= rows)) {
    op.transposed = true;
    op.ld = cols == 1 ? rows : s_cols;
    return op;
  }
  return std::nullopt;
}

GemmOperand operand_for(Tensor& x) {
  if (auto op = blas_layout(x)) return *op;
  x = x.contiguous();
  return *blas_layout(x);
}

// Note [Batch axes of a GEMM]
// The output's batch axes (the broadcast of a's and b's) are coalesced like an
// elementwise loop: extent-1 axes dropped, neighbours merged where every operand steps
// through them as one run. Operands that broadcast along an axis step 0 there. The
// innermost coalesced axis becomes the backend's strided batch; any outer ones are walked
// here, one backend call each (they exist only for mixed broadcasts like
// (2, 1, m, k) x (3, k, n)). When b is one matrix for every batch and a's batches follow
// each other row after row (a contiguous (..., m, k)), the batch folds into m: one GEMM
// of (batch * m, k) x (k, n), the shape of every linear layer.
struct BatchPlan {
  int ndim = 0;  // coalesced axes, outermost first
  std::int64_t extent[Shape::kMaxDims] = {};
  std::int64_t stride[3][Shape::kMaxDims] = {};  // a, b, c; in elements
};

// The stride of x along output batch axis d (of nb), 0 where x broadcasts.
std::int64_t batch_stride(const Tensor& x, int d, int nb) {
  const int dx = d - (nb - (x.ndim() - 2));
  if (dx < 0 || x.size(dx) == 1) return 0;
  return x.stride(dx);
}

BatchPlan plan_batch(const Shape& out_shape, const Tensor& a, const Tensor& b) {
  const int nb = out_shape.ndim() - 2;
  const Strides c_strides = contiguous_strides(out_shape);
  BatchPlan plan;
  for (int d = nb - 1; d >= 0; --d) {
    const std::int64_t extent = out_shape[d];
    if (extent == 1) continue;
    const std::int64_t s[3] = {batch_stride(a, d, nb), batch_stride(b, d, nb), c_strides[d]};
    const int cur = plan.ndim - 1;
    bool merge = cur >= 0;
    for (int k = 0; k < 3 && merge; ++k) merge = s[k] == plan.stride[k][cur] * plan.extent[cur];
    if (merge) {
      plan.extent[cur] *= extent;
      continue;
    }
    plan.extent[plan.ndim] = extent;
    for (int k = 0; k < 3; ++k) plan.stride[k][plan.ndim] = s[k];
    ++plan.ndim;
  }
  std::reverse(plan.extent, plan.extent + plan.ndim);
  for (auto& s : plan.stride) std::reverse(s, s + plan.ndim);
  return plan;
}

// Whether a and b both broadcast along some batch axis of the output (both expanded
// there): every batch along it computes the same product, which oneDNN cannot express.
bool both_broadcast(const Shape& out_shape, const Tensor& a, const Tensor& b) {
  const int nb = out_shape.ndim() - 2;
  for (int d = 0; d < nb; ++d) {
    if (out_shape[d] > 1 && batch_stride(a, d, nb) == 0 && batch_stride(b, d, nb) == 0) return true;
  }
  return false;
}

const void* advance(const void* p, std::int64_t elements, std::size_t itemsize) {
  return static_cast<const char*>(p) + elements * static_cast<std::int64_t>(itemsize);
}

[[maybe_unused]] cuda::GemmOptions cuda_options() {  // unused in OFF builds
  cuda::GemmOptions options;
  options.path = gemm_backend() == GemmBackend::native ? cuda::GemmPath::native : cuda::GemmPath::vendor;
  options.allow_tf32 = allow_tf32();
  return options;
}

void run(const char* op, const GemmProblem& p, Device device) {
  KILN_ON_DEVICE(device, op, cpu::gemm(p), cuda::gemm(p, cuda_options(), device.index()));
}

// One backend call per index of the outer axes (all but the innermost).
void run_batches(const char* op, GemmProblem p, const BatchPlan& plan, Device device) {
  if (plan.ndim == 0) return run(op, p, device);
  const int inner = plan.ndim - 1;
  p.batch = plan.extent[inner];
  p.a.batch_stride = plan.stride[0][inner];
  p.b.batch_stride = plan.stride[1][inner];
  if (inner == 0 && p.b.batch_stride == 0 && !p.a.transposed && p.a.batch_stride == p.m * p.a.ld) {
    p.m *= p.batch;  // folds, see the Note
    p.batch = 1;
    p.a.batch_stride = 0;
    return run(op, p, device);
  }
  const std::size_t size = itemsize(p.dtype);
  std::int64_t index[Shape::kMaxDims] = {}, offset[3] = {};
  const GemmProblem base = p;
  while (true) {
    p.a.data = advance(base.a.data, offset[0], size);
    p.b.data = advance(base.b.data, offset[1], size);
    p.c = const_cast<void*>(advance(base.c, offset[2], size));
    run(op, p, device);
    int d = inner - 1;
    for (; d >= 0; --d) {
      for (int k = 0; k < 3; ++k) offset[k] += plan.stride[k][d];
      if (++index[d] < plan.extent[d]) break;
      for (int k = 0; k < 3; ++k) offset[k] -= plan.stride[k][d] * plan.extent[d];
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

}  // namespace

Tensor batched_gemm(const char* op, const Tensor& a_in, const Tensor& b_in, const Tensor& bias) {
  Tensor a = a_in.detach(), b = b_in.detach();
  const Shape batch_a(a.shape().span().first(a.ndim() - 2));
  const Shape batch_b(b.shape().span().first(b.ndim() - 2));
  Shape out_shape = broadcast_shapes(batch_a, batch_b, op);
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  if (out.numel() == 0) return out;
  if (k == 0) {  // an empty sum: zeros, plus the bias
    out.zero_();
    if (bias.defined()) out.copy_(bias.detach());
    return out;
  }
  GemmProblem p;
  p.dtype = a.dtype();
  p.m = m;
  p.n = n;
  p.k = k;
  if (both_broadcast(out_shape, a, b)) {  // rare: materialise a's batches
    Shape a_shape = out_shape;
    a_shape[a_shape.ndim() - 1] = k;
    a = a.expand(a_shape).contiguous();
  }
  p.a = operand_for(a);
  p.b = operand_for(b);
  p.c = out.data_ptr();
  Tensor bias_c;
  if (bias.defined()) {
    bias_c = bias.detach().contiguous();
    p.bias = bias_c.data_ptr();
  }
  run_batches(op, p, plan_batch(out_shape, a, b), a.device());
  return out;
}

}  // namespace kiln::detail
