// Batch and layer normalization with fused scale/shift, and their backward.
// Statistics accumulate in float32 (float64 for float64) with a numerically careful variance
// (Welford or two-pass, never E[x²] - E[x]²).
#pragma once

#include <cstdint>

#include "kiln/core/tensor.h"

namespace kiln {

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.99;  // Keras: running = running * momentum + batch * (1 - momentum)
  double epsilon = 1e-3;   // Keras' default
};

// Normalizes over every axis but the last (channels, NHWC; or features for (N, C)).
// x (..., C); gamma, beta, running_mean, running_var (C). gamma/beta may be undefined
// (scale/center off). Training: batch statistics (the biased variance, both to normalize
// and to update the running variance, as Keras 3; PyTorch updates with the unbiased one),
// and running_mean /
// running_var are updated in place (no autograd). Inference: the running statistics.
// Parameters and running statistics have x's dtype, or float32 for float16 / bfloat16 x
// (mixed precision); gradients come back in each one's dtype. Edge cases in training: one
// row per channel (N * H * W == 1) has variance 0, so y = beta, as in Keras, and the
// running variance takes that 0; no rows leave the
// running statistics as they are; a NaN makes its channel's statistics, output and
// running statistics NaN, the other channels are untouched.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  const Tensor& running_mean, const Tensor& running_var,
                  const BatchNormOptions& options = {});

// Normalizes over the last axis. x (..., C); gamma, beta (C) or undefined, dtypes as for
// batch_norm. Keras' LayerNormalization default epsilon.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  double epsilon = 1e-3);

}  // namespace kiln
