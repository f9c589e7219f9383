// Unary elementwise ops and activations, on cpu and cuda, float32/float16/bfloat16/float64
// (float16/bfloat16 compute in float32). Each records its backward (kernels/unary.cpp).
// Formulas (shared by both devices) are in kernels/unary_math.h.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.2);  // Keras 3 default
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor selu(const Tensor& x);
Tensor gelu(const Tensor& x, bool approximate = false);  // erf form; tanh form if approximate
Tensor sigmoid(const Tensor& x);
Tensor hard_sigmoid(const Tensor& x);  // Keras 3: relu6(x + 3) / 6
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor softsign(const Tensor& x);
Tensor silu(const Tensor& x);
inline Tensor swish(const Tensor& x) { return silu(x); }

// Applies an activation by its Keras name ("relu", "sigmoid", "linear", ...); throws
// ValueError listing the valid names for an unknown one.
Tensor activation(const Tensor& x, std::string_view name);

}  // namespace kiln
