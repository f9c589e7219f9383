// Internal: Keras 3's sample-weight and mask handling for losses and metrics
// (keras/src/losses/loss.py: squeeze_or_expand_to_same_rank, apply_mask,
// reduce_weighted_values), on kiln tensors, recording autograd where the inputs do.
#pragma once

#include <string>
#include <utility>

#include "kiln/core/tensor.h"
#include "kiln/training/losses.h"

namespace kiln::losses::detail {

// Squeezes or expands the last axis of one of two tensors whose ranks differ by one, as
// Keras does: a trailing extent-1 axis of the higher-rank one is dropped, or (when the
// lower-rank one has rank 1 and expand_rank_1) the lower one gains a trailing axis.
std::pair<Tensor, Tensor> squeeze_or_expand_to_same_rank(Tensor x1, Tensor x2, bool expand_rank_1 = true);

// Values and sample weight brought to one rank as Keras does (squeeze/expand; then the
// weight gains trailing extent-1 axes so per-sample weights broadcast from the leading
// axes), the weight converted to the values' dtype and checked to broadcast to their
// shape. `op` names the caller in errors.
std::pair<Tensor, Tensor> align_weight(const Tensor& values, const Tensor& sample_weight, const std::string& op);

// Keras' apply_mask: the mask (bool) as weights — for sum_over_batch_size and mean scaled
// by total / (valid + epsilon) — times the sample weight when there is one.
Tensor apply_mask(const Tensor& sample_weight, const Tensor& mask, Reduction reduction, DType dtype);

// Keras' reduce_weighted_values: values * weight (if any), then the reduction (scalars and
// Reduction::none pass through). divide_no_nan semantics: 0 / 0 gives 0.
Tensor reduce_weighted(const Tensor& values, const Tensor& sample_weight, Reduction reduction,
                       const std::string& op);

}  // namespace kiln::losses::detail
