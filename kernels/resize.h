// Spatial resizing and padding in NHWC, with backward: Keras' UpSampling2D and ZeroPadding2D.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kiln/core/tensor.h"

namespace kiln {

// x (N, H, W, C) -> (N, H * size_h, W * size_w, C). interpolation "nearest" or "bilinear"
// (Keras/TF half-pixel centres, as tf.image.resize with antialias off; taps of weight 0 are
// not read, so an inf beside an exact sample does not make it NaN). Floating dtypes; empty
// inputs give empty outputs; sizes must be positive (ValueError).
Tensor upsample2d(const Tensor& x, std::array<std::int64_t, 2> size = {2, 2},
                  const std::string& interpolation = "nearest");

// x (N, H, W, C) -> (N, H + top + bottom, W + left + right, C), zeros around; any dtype
// (kiln::pad over the image axes). Negative pads: ValueError.
Tensor zero_pad2d(const Tensor& x, std::array<std::int64_t, 4> pads /* top, bottom, left, right */);

}  // namespace kiln
