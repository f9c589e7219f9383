// softmax and log_softmax over one axis, on cpu and cuda (float16/bfloat16 in float32).
// cuda keeps short rows in registers (a warp per row) and gives long rows a block.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

Tensor softmax(const Tensor& x, std::int64_t axis = -1);
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1);

}  // namespace kiln
