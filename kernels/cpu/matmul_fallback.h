// Internal: the cpu GEMMs that oneDNN's matmul does not provide (kernels/cpu/matmul.cpp
// routes to them): float64, and 16-bit types on CPUs whose oneDNN lacks them.
#pragma once

#include "kiln/kernels/matmul_impl.h"

namespace kiln::cpu {
// A blocked loop over OpenMP threads, accumulating in double.
void gemm_f64(const GemmProblem& p);
// Widens A, B and the bias to float32 (exactly), runs the float32 GEMM and rounds C once.
void gemm_via_float32(const GemmProblem& p);
}  // namespace kiln::cpu
