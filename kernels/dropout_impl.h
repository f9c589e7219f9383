// Internal: dropout's element rule (shared by cpu and cuda) and its per-device entry
// points (kernels/cpu/dropout.cpp, kernels/cuda/dropout.cu).
//
// Note [Dropout mask]
// Element i of a tensor of n elements (row-major) drawn at (seed, offset) is kept when
// its uniform u_i = uniform_from_bits(philox_word(seed, offset, i)) (core/philox.h, the
// convention of core's random fills) satisfies u_i >= rate. u_i is (w >> 8) * 2^-24, so
// the test is the integer one (w >> 8) >= ceil(rate * 2^24): exact, the same on every
// device. Kept elements are multiplied by scale = 1 / (1 - rate) rounded to the compute
// type, dropped ones by 0 (so NaN stays NaN, as x * mask does). The backward applies the
// same rule to the output gradient: the mask is recomputed, never stored.
#pragma once

#include <cmath>
#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/dtype.h"
#include "kiln/core/philox.h"
#include "kiln/kernels/math.h"

namespace kiln {

struct DropoutPlan {
  std::int64_t numel = 0;
  DType dtype = DType::float32;
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;  // in Philox blocks (Generator::reserve)
  std::uint32_t threshold = 0;  // keep when (word >> 8) >= threshold
  double scale = 1.0;
};

inline std::uint32_t dropout_threshold(double rate) {
  return static_cast<std::uint32_t>(std::ceil(rate * 16777216.0));  // 2^24; exact in double
}

// out = x * (keep ? scale : 0) for one element, given its Philox word.
template <class T>
KILN_HOST_DEVICE KILN_FORCEINLINE T dropout_element(T x, std::uint32_t word, std::uint32_t threshold,
                                                    math::compute_t<T> scale) {
  using C = math::compute_t<T>;
  return convert<T>(convert<C>(x) * ((word >> 8) >= threshold ? scale : C(0)));
}

namespace cpu {
// out (contiguous, plan.numel elements) = dropout of in (contiguous), both of plan.dtype.
void dropout(const DropoutPlan& plan, const void* in, void* out);
}  // namespace cpu
namespace cuda {
void dropout(const DropoutPlan& plan, const void* in, void* out, int device);
}  // namespace cuda

}  // namespace kiln
