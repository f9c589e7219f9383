// Internal: the per-device entry points of batch_norm and layer_norm (kernels/cpu/
// normalization.cpp, kernels/cuda/normalization.cu). kernels/normalization.cpp makes x
// and the output gradient contiguous, so the kernels see `rows` rows of C contiguous
// elements of `dtype` (x is (rows, C): NHWC flattened, or (N, C), or (..., K) for layer
// norm). Every per-channel or per-row array (statistics, gamma, beta, their gradients) is
// contiguous in the statistics type: float64 for float64 data, float32 otherwise.
//
// Note [Normalization formulas]
//   xhat = (x - mean) * invstd,  invstd = 1 / sqrt(var + epsilon),  y = xhat * gamma + beta
// with var the biased variance. y is computed as (x - mean) * (invstd * gamma) + beta,
// never x * scale + shift: at x ~ 1e4 the latter cancels two large terms in float32.
// Backward, M the elements each statistic covers (rows for batch norm, C for layer norm):
//   dbeta  = sum(dy),  dgamma = sum(dy * xhat)                     (over the rows)
//   batch norm, training:  dx = gamma * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M)
//   batch norm, inference: dx = gamma * invstd * dy                (running statistics)
//   layer norm: g = dy * gamma; dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) (per row)
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"

namespace kiln {

// The type statistics, gamma and beta travel in for data of `dtype`.
constexpr DType norm_stat_dtype(DType dtype) { return dtype == DType::float64 ? DType::float64 : DType::float32; }

// Per-channel statistics of x (rows, C). Training: mean and invstd of the batch (a
// numerically careful variance: two-pass on cpu, shifted Welford with Chan merges on
// cuda), and, when rows > 0, running_mean / running_var updated in place:
//   running = running * momentum + batch * (1 - momentum)
// with the biased batch variance, as Keras 3 (PyTorch would use the unbiased one).
// Inference: mean = running_mean, invstd from running_var; x is not read.
struct BatchNormStatsLayout {
  const void* x = nullptr;  // (rows, C) of dtype
  DType dtype = DType::float32;
  std::int64_t rows = 0, C = 0;
  void* mean = nullptr;          // (C) out
  void* invstd = nullptr;        // (C) out
  void* running_mean = nullptr;  // (C) in-out (training), in (inference)
  void* running_var = nullptr;   // (C)
  double momentum = 0.99, epsilon = 1e-3;
  bool training = true;
};

// y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]; gamma / beta null: 1 / 0.
struct BatchNormApplyLayout {
  void* y = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;
  std::int64_t rows = 0, C = 0;
  const void* mean = nullptr;
  const void* invstd = nullptr;
  const void* gamma = nullptr;
  const void* beta = nullptr;
};

// The two per-column sums both normalizations' backward need, over x and dy (rows, C):
//   sum_dy[c] = sum_r dy[r, c],  sum_dy_xhat[c] = sum_r dy[r, c] * xhat[r, c]
// with xhat from per-column statistics (batch norm: mean, invstd of C entries) or per-row
// ones (layer norm: `per_row`, rows entries).
struct NormGradSumsLayout {
  const void* dy = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;
  std::int64_t rows = 0, C = 0;
  const void* mean = nullptr;
  const void* invstd = nullptr;
  bool per_row = false;
  void* sum_dy = nullptr;       // (C) out
  void* sum_dy_xhat = nullptr;  // (C) out
};

// dx of batch norm (Note [Normalization formulas]); sum_dy / sum_dy_xhat are read in
// training only. gamma null: 1.
struct BatchNormGradLayout {
  void* dx = nullptr;
  const void* dy = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;
  std::int64_t rows = 0, C = 0;
  const void* mean = nullptr;
  const void* invstd = nullptr;
  const void* gamma = nullptr;
  const void* sum_dy = nullptr;
  const void* sum_dy_xhat = nullptr;
  bool training = true;
};

// Layer norm forward over rows of K: y, and each row's mean and invstd (saved for the
// backward). Two-pass statistics: the row's mean, then its squared deviations from it.
struct LayerNormLayout {
  void* y = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;
  std::int64_t rows = 0, K = 0;
  const void* gamma = nullptr;  // (K) or null
  const void* beta = nullptr;   // (K) or null
  void* mean = nullptr;         // (rows) out
  void* invstd = nullptr;       // (rows) out
  double epsilon = 1e-3;
};

// Layer norm dx (Note [Normalization formulas]); gamma null: 1.
struct LayerNormGradLayout {
  void* dx = nullptr;
  const void* dy = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;
  std::int64_t rows = 0, K = 0;
  const void* gamma = nullptr;
  const void* mean = nullptr;    // (rows)
  const void* invstd = nullptr;  // (rows)
};

namespace cpu {
void batch_norm_stats(const BatchNormStatsLayout& layout);
void batch_norm_apply(const BatchNormApplyLayout& layout);
void norm_grad_sums(const NormGradSumsLayout& layout);
void batch_norm_backward(const BatchNormGradLayout& layout);
void layer_norm_forward(const LayerNormLayout& layout);
void layer_norm_backward(const LayerNormGradLayout& layout);
}  // namespace cpu
namespace cuda {
void batch_norm_stats(const BatchNormStatsLayout& layout, int device);
void batch_norm_apply(const BatchNormApplyLayout& layout, int device);
void norm_grad_sums(const NormGradSumsLayout& layout, int device);
void batch_norm_backward(const BatchNormGradLayout& layout, int device);
void layer_norm_forward(const LayerNormLayout& layout, int device);
void layer_norm_backward(const LayerNormGradLayout& layout, int device);
}  // namespace cuda

}  // namespace kiln
