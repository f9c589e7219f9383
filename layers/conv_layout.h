// Conversion between Keras' convolution kernel layouts and kiln's (Note [Kernel layout] in
// layers/conv.h): for whole weights (loading and saving Keras weights), and as adapters that
// let a Keras initializer or constraint work on a kiln-layout kernel.
#pragma once

#include <cstdint>

#include "kiln/core/tensor.h"
#include "kiln/layers/initializers.h"
#include "kiln/layers/regularizers.h"

namespace kiln::layers {

// Keras (kh, kw, a, b) <-> kiln (b, kh, kw, a): Conv2D and pointwise kernels (a = in / groups,
// b = filters) and Conv2DTranspose kernels (a = filters, b = in). New contiguous tensors.
Tensor kernel_from_keras(const Tensor& keras_kernel);
Tensor kernel_to_keras(const Tensor& kiln_kernel);
// Depthwise kernels: Keras (kh, kw, in, dm) <-> kiln (in * dm, kh, kw, 1).
Tensor depthwise_kernel_from_keras(const Tensor& keras_kernel);
Tensor depthwise_kernel_to_keras(const Tensor& kiln_kernel, std::int64_t depth_multiplier);

// How a kiln kernel relates to the Keras one: the Conv2D permutation, or the depthwise one.
struct KernelLayout {
  bool depthwise = false;
  std::int64_t depth_multiplier = 1;  // depthwise only
};

// An initializer for a kiln-layout kernel that draws with `inner` in Keras' `keras_shape`
// (so fans and values are Keras') and permutes the result into kiln's layout.
initializers::InitializerPtr keras_layout_initializer(initializers::InitializerPtr inner, const Shape& keras_shape,
                                                      KernelLayout layout);
// A constraint for a kiln-layout kernel that applies `inner` to the kernel seen in Keras'
// layout (outside autograd); nullptr for no constraint.
constraints::ConstraintPtr keras_layout_constraint(constraints::ConstraintPtr inner, KernelLayout layout);

}  // namespace kiln::layers
