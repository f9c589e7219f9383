// The cpu GEMMs oneDNN's matmul does not provide: float64 (a cache-blocked loop) and
// 16-bit GEMMs on CPUs without oneDNN kernels for them (computed in float32).
#include "kiln/kernels/cpu/matmul_fallback.h"

#include <algorithm>
#include <vector>

#include "kiln/core/convert.h"
#include "kiln/core/dtype.h"

namespace kiln::cpu {
namespace {

// Below this many multiply-adds a GEMM runs on one thread.
constexpr std::int64_t kParallelWork = 1 << 16;

// Copies the (batches, rows, cols) matrices of `op` into dense row-major `out`, converted.
template <class In, class Out>
void pack(const GemmOperand& op, std::int64_t batches, std::int64_t rows, std::int64_t cols, Out* out) {
  const auto* src = static_cast<const In*>(op.data);
  const std::int64_t s_rows = op.transposed ? 1 : op.ld, s_cols = op.transposed ? op.ld : 1;
#pragma omp parallel for collapse(2) if (batches * rows * cols > kParallelWork) schedule(static)
  for (std::int64_t b = 0; b < batches; ++b) {
    for (std::int64_t i = 0; i < rows; ++i) {
      const In* row = src + b * op.batch_stride + i * s_rows;
      Out* dst = out + (b * rows + i) * cols;
      for (std::int64_t j = 0; j < cols; ++j) dst[j] = convert<Out>(row[j * s_cols]);
    }
  }
}

std::int64_t batches_of(const GemmOperand& op, std::int64_t batch) {
  return op.batch_stride == 0 ? 1 : batch;
}

// The same operand, now dense row-major at `data`.
GemmOperand dense(const GemmOperand& op, const void* data, std::int64_t rows, std::int64_t cols) {
  GemmOperand out;
  out.data = data;
  out.ld = cols;
  out.batch_stride = op.batch_stride == 0 ? 0 : rows * cols;
  return out;
}

// Block sizes: a (kRowBlock x kKBlock) panel of A against a (kKBlock x kColBlock) panel of
// B (128 KiB of doubles) updates a kRowBlock x kColBlock block of C that stays in L2.
constexpr std::int64_t kRowBlock = 32, kKBlock = 64, kColBlock = 256;

// C rows [i0, i1) of batch b: C = A · B (+ bias), B dense row-major.
void f64_row_block(const GemmProblem& p, const double* b_dense, std::int64_t b_stride,
                   std::int64_t batch, std::int64_t i0, std::int64_t i1) {
  const auto* a = static_cast<const double*>(p.a.data) + batch * p.a.batch_stride;
  const double* bm = b_dense + batch * b_stride;
  auto* c = static_cast<double*>(p.c) + batch * p.m * p.n;
  const auto* bias = static_cast<const double*>(p.bias);
  const std::int64_t s_rows = p.a.transposed ? 1 : p.a.ld, s_k = p.a.transposed ? p.a.ld : 1;
  for (std::int64_t i = i0; i < i1; ++i) {
    for (std::int64_t j = 0; j < p.n; ++j) c[i * p.n + j] = bias ? bias[j] : 0.0;
  }
  for (std::int64_t j0 = 0; j0 < p.n; j0 += kColBlock) {
    const std::int64_t j1 = std::min(p.n, j0 + kColBlock);
    for (std::int64_t k0 = 0; k0 < p.k; k0 += kKBlock) {
      const std::int64_t k1 = std::min(p.k, k0 + kKBlock);
      for (std::int64_t i = i0; i < i1; ++i) {
        double* c_row = c + i * p.n;
        for (std::int64_t kk = k0; kk < k1; ++kk) {
          const double aik = a[i * s_rows + kk * s_k];
          const double* b_row = bm + kk * p.n;
          for (std::int64_t j = j0; j < j1; ++j) c_row[j] += aik * b_row[j];
        }
      }
    }
  }
}

}  // namespace

void gemm_f64(const GemmProblem& p) {
  const std::int64_t b_batches = batches_of(p.b, p.batch);
  std::vector<double> b_dense(static_cast<std::size_t>(b_batches * p.k * p.n));
  pack<double, double>(p.b, b_batches, p.k, p.n, b_dense.data());
  const std::int64_t b_stride = p.b.batch_stride == 0 ? 0 : p.k * p.n;
  const std::int64_t row_blocks = (p.m + kRowBlock - 1) / kRowBlock;
  const bool parallel = p.batch * p.m * p.n * p.k > kParallelWork;
#pragma omp parallel for collapse(2) if (parallel) schedule(static)
  for (std::int64_t batch = 0; batch < p.batch; ++batch) {
    for (std::int64_t rb = 0; rb < row_blocks; ++rb) {
      const std::int64_t i0 = rb * kRowBlock;
      f64_row_block(p, b_dense.data(), b_stride, batch, i0, std::min(p.m, i0 + kRowBlock));
    }
  }
}

void gemm_via_float32(const GemmProblem& p) {
  visit_dtype(p.dtype, [&]<class T>() {
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      const std::int64_t a_batches = batches_of(p.a, p.batch), b_batches = batches_of(p.b, p.batch);
      std::vector<float> a(static_cast<std::size_t>(a_batches * p.m * p.k));
      std::vector<float> b(static_cast<std::size_t>(b_batches * p.k * p.n));
      std::vector<float> c(static_cast<std::size_t>(p.batch * p.m * p.n));
      std::vector<float> bias(p.bias ? static_cast<std::size_t>(p.n) : 0);
      pack<T, float>(p.a, a_batches, p.m, p.k, a.data());
      pack<T, float>(p.b, b_batches, p.k, p.n, b.data());
      const auto* bias_in = static_cast<const T*>(p.bias);
      for (std::size_t j = 0; j < bias.size(); ++j) bias[j] = static_cast<float>(bias_in[j]);
      GemmProblem wide = p;
      wide.dtype = DType::float32;
      wide.a = dense(p.a, a.data(), p.m, p.k);
      wide.b = dense(p.b, b.data(), p.k, p.n);
      wide.c = c.data();
      wide.bias = p.bias ? bias.data() : nullptr;
      gemm(wide);
      auto* out = static_cast<T*>(p.c);
      const auto count = static_cast<std::int64_t>(c.size());
#pragma omp parallel for if (count > kParallelWork) schedule(static)
      for (std::int64_t i = 0; i < count; ++i) out[i] = T(c[i]);
    } else {
      KILN_THROW(InternalError, "gemm_via_float32: ", p.dtype, " is not a 16-bit float");
    }
  });
}

}  // namespace kiln::cpu
