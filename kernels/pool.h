// 2-D pooling in NHWC, with backward. Max pooling routes the gradient to the first maximum
// of each window in row-major window order (deterministic ties); NaN propagates (a window
// holding NaN yields NaN and routes to it). Average pooling divides by the number of
// input (not padding) elements in the window, as Keras.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kiln/core/tensor.h"

namespace kiln {

struct Pool2dOptions {
  std::array<std::int64_t, 2> pool_size{2, 2};
  // Keras: strides default to pool_size. {-1, -1} means "pool_size".
  std::array<std::int64_t, 2> strides{-1, -1};
  std::string padding = "valid";  // or "same" (Keras' split, extra at bottom/right)
};

// x (N, H, W, C) -> (N, OH, OW, C); floating dtypes (float16/bfloat16 compute in float32).
// valid: OH = (H - pool) / stride + 1 (the pool must fit: ShapeError otherwise); same:
// OH = ceil(H / stride). H and W must be > 0 (ShapeError); N or C of 0 give an empty output.
// Non-positive pool sizes or strides, or another padding string: ValueError.
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options = {});
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options = {});
// x (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims: kiln::mean / kiln::max over
// (H, W), whose max gradient also goes to the first maximum (NaN first).
Tensor global_avg_pool2d(const Tensor& x, bool keepdims = false);
Tensor global_max_pool2d(const Tensor& x, bool keepdims = false);

}  // namespace kiln
