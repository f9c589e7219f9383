// Matrix products. cpu: oneDNN. cuda: cuBLAS (TF32 when allowed), or kiln's tiled SGEMM
// (the native path: always under SIM, on a GPU with KILN_GEMM=native).
#pragma once

#include <optional>

#include "kiln/core/tensor.h"

namespace kiln {

// NumPy matmul semantics: 1-D operands are promoted (and the added axis removed after),
// batch axes broadcast; transposed views are used without copies where the backend can.
Tensor matmul(const Tensor& a, const Tensor& b);
// x · wᵀ + b with x (..., in), w (out, in), b (out): PyTorch's linear, bias fused.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

enum class GemmBackend { vendor, native };
// Which cuda GEMM runs: vendor (cuBLAS) by default on a real GPU, native under SIM or
// with KILN_GEMM=native. set_gemm_backend overrides both for the process.
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend backend);
// TF32 tensor-core math for float32 GEMMs on cuda (off by default: exact float32).
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace kiln
