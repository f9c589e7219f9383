// Dropout from the Philox generator: the same (seed, offset) gives the same mask on cpu and
// cuda. Kept elements scale by 1 / (1 - rate) (inverted dropout, as Keras).
#pragma once

#include "kiln/core/random.h"
#include "kiln/core/tensor.h"

namespace kiln {

// Identity when !training or rate == 0. rate in [0, 1).
Tensor dropout(const Tensor& x, double rate, bool training = true, Generator* gen = nullptr);

}  // namespace kiln
