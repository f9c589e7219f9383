// Internal: the per-device entry points of softmax/log_softmax (kernels/cpu/softmax.cpp,
// kernels/cuda/softmax.cu). kernels/softmax.cpp moves the axis last and makes the input
// contiguous, so the kernels see `rows` rows of K contiguous elements.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"

namespace kiln {

// y = softmax(x) or log_softmax(x) of each row, computed stably (the row max is subtracted).
struct SoftmaxLayout {
  void* y = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;  // a floating type; float16/bfloat16 compute in float32
  std::int64_t rows = 0, K = 0;
  bool log = false;
};

// From the forward output y and its gradient g:
//   softmax      gx = y * (g - sum(g * y))
//   log_softmax  gx = g - exp(y) * sum(g)
struct SoftmaxGradLayout {
  void* gx = nullptr;
  const void* y = nullptr;
  const void* g = nullptr;
  DType dtype = DType::float32;
  std::int64_t rows = 0, K = 0;
  bool log = false;
};

namespace cpu {
void softmax_forward(const SoftmaxLayout& layout);
void softmax_backward(const SoftmaxGradLayout& layout);
}  // namespace cpu
namespace cuda {
void softmax_forward(const SoftmaxLayout& layout, int device);
void softmax_backward(const SoftmaxGradLayout& layout, int device);
}  // namespace cuda

}  // namespace kiln
