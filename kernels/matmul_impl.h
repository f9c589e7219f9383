// Internal: the strided-batched GEMM that kernels/matmul.cpp plans and the per-device
// entry points that run it (kernels/cpu/matmul.cpp: oneDNN; kernels/cuda/matmul.cu:
// cuBLAS or kiln's tiled SGEMM). All matrices are row-major in the logical sense:
//   C[b] (m, n) = A[b] (m, k) · B[b] (k, n) + bias (n)   for b in [0, batch)
// where an operand may be stored transposed (column-major) so that transposed views
// reach the backend without a copy. Sizes are >= 1; empty problems never get here.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/core/tensor.h"

namespace kiln {

struct GemmOperand {
  const void* data = nullptr;
  // Leading dimension in elements: element (i, j) of the logical (rows, cols) matrix is at
  // i * ld + j when row-major, at i + j * ld when `transposed` (stored column-major).
  std::int64_t ld = 0;
  bool transposed = false;
  // Elements between the matrices of consecutive batches; 0: one matrix for every batch.
  std::int64_t batch_stride = 0;
};

struct GemmProblem {
  DType dtype = DType::float32;  // of A, B, C and the bias
  std::int64_t batch = 1, m = 0, n = 0, k = 0;
  GemmOperand a;  // (m, k)
  GemmOperand b;  // (k, n)
  // (batch, m, n), dense row-major: ldc = n, batch stride m * n.
  void* c = nullptr;
  // (n), contiguous, added to every row of C; nullptr for none.
  const void* bias = nullptr;
};

namespace cpu {
// oneDNN matmul for float32 and bfloat16 (and float16 where this CPU's oneDNN has it;
// otherwise computed in float32 and rounded once); float64 by a blocked OpenMP loop.
void gemm(const GemmProblem& p);
}  // namespace cpu

namespace cuda {
enum class GemmPath { vendor, native };

struct GemmOptions {
  GemmPath path = GemmPath::native;  // vendor needs a KILN_CUDA=ON build (not SIM)
  bool allow_tf32 = false;           // float32 on tensor cores (vendor path only)
  // C = alpha * A·B + beta * C (+ bias). beta == 0 never reads C, so C may hold garbage.
  double alpha = 1.0;
  double beta = 0.0;
};

// Queues the GEMM on the current stream of `device`. Throws ValueError when a size does
// not fit the backend's 32-bit arguments.
void gemm(const GemmProblem& p, const GemmOptions& options, int device);
}  // namespace cuda

namespace detail {
// (batch..., m, n) = a (batch_a..., m, k) · b (batch_b..., k, n) + bias (n), with the batch
// axes broadcast (kernels/matmul_plan.cpp). The caller has checked dtypes, devices and
// shapes; a and b are at least 2-D. Transposed layouts of the last two axes go to the
// backend as they are; others are copied contiguous first. Records no autograd.
Tensor batched_gemm(const char* op, const Tensor& a, const Tensor& b, const Tensor& bias);
}  // namespace detail

}  // namespace kiln
