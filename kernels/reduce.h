// Reductions over any set of axes (empty = all axes), with keepdims, on cpu and cuda.
// float16/bfloat16 accumulate in float32; sums of integers accumulate in int64.
// Differentiable ones record their backward.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

using Axes = std::vector<std::int64_t>;

Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdims = false);  // grad to the first max
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdims = false);  // int64, first on ties
Tensor argmin(const Tensor& x, std::int64_t axis, bool keepdims = false);
// Variance with `ddof` delta degrees of freedom (0: population, as Keras and NumPy).
Tensor var(const Tensor& x, const Axes& axes = {}, bool keepdims = false, int ddof = 0);
Tensor std(const Tensor& x, const Axes& axes = {}, bool keepdims = false, int ddof = 0);
// p-norm (p = 2 by default; p = 1 and inf supported).
Tensor norm(const Tensor& x, double p = 2.0, const Axes& axes = {}, bool keepdims = false);

// Sums `x` down to `shape` (the inverse of broadcasting `shape` up to x's shape): the
// gradient of a broadcast. Records its backward (an expand).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace kiln
