// Internal: the per-device entry points of 2-D pooling (kernels/cpu/pool.cpp,
// kernels/cuda/pool.cu) and the window arithmetic both devices share. kernels/pool.cpp
// checks the input, resolves strides and padding into a PoolGeometry and hands the kernels
// contiguous NHWC buffers.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/core/macros.h"

namespace kiln {

enum class PoolKind : std::uint8_t { max, avg };

// x (N, H, W, C) -> y (N, OH, OW, C). Window (oh, ow) covers input rows
// [oh * sh - pad_top, + ph) and columns [ow * sw - pad_left, + pw), clipped to the image;
// padding positions take no part (max ignores them, avg does not count them). Every
// window holds at least one input element (pool.cpp guarantees it).
struct PoolGeometry {
  std::int64_t N = 0, H = 0, W = 0, C = 0;
  std::int64_t OH = 0, OW = 0;
  std::int64_t ph = 1, pw = 1;  // pool size
  std::int64_t sh = 1, sw = 1;  // strides
  std::int64_t pad_top = 0, pad_left = 0;
};

// The clipped input range [lo, hi) of window `o` along one axis (extent `in`).
struct Span {
  std::int64_t lo, hi;
};
KILN_HOST_DEVICE KILN_FORCEINLINE Span window_span(std::int64_t o, std::int64_t stride, std::int64_t pad,
                                                   std::int64_t pool, std::int64_t in) {
  const std::int64_t start = o * stride - pad;
  return {start < 0 ? 0 : start, start + pool > in ? in : start + pool};
}

// The windows [lo, hi) along one axis (out of `out`) that contain input position i: the o
// with o * stride - pad <= i < o * stride - pad + pool. Empty (lo >= hi) when a stride
// larger than the pool skips i.
KILN_HOST_DEVICE KILN_FORCEINLINE Span windows_containing(std::int64_t i, std::int64_t stride, std::int64_t pad,
                                                          std::int64_t pool, std::int64_t out) {
  const std::int64_t first = i + pad - pool + 1;  // o * stride >= first
  std::int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  std::int64_t hi = (i + pad) / stride + 1;  // o * stride <= i + pad; i + pad >= 0
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

// Max pooling keeps, per output element, the flat input position ih * W + iw of the first
// maximum in row-major window order (NaN counts as the maximum: the first NaN wins), so
// the backward routes each gradient to exactly that element. int32: pool.cpp checks
// H * W < 2^31.
struct PoolLayout {
  PoolKind kind = PoolKind::max;
  PoolGeometry g;
  DType dtype = DType::float32;  // floating; float16/bfloat16 compute in float32
  void* y = nullptr;             // (N, OH, OW, C) contiguous
  const void* x = nullptr;       // (N, H, W, C) contiguous
  std::int32_t* argmax = nullptr;  // (N, OH, OW, C), max only; null: not wanted (no backward)
};

// gx (N, H, W, C) = the sum, over every window holding an input element, of that window's
// gradient share: max, gy where argmax names the element; avg, gy / (input elements of the
// window). Computed as a gather (each input element sums its windows in row-major window
// order), so overlapping windows need no atomics and results are deterministic.
struct PoolGradLayout {
  PoolKind kind = PoolKind::max;
  PoolGeometry g;
  DType dtype = DType::float32;
  void* gx = nullptr;                   // (N, H, W, C) contiguous
  const void* gy = nullptr;             // (N, OH, OW, C) contiguous
  const std::int32_t* argmax = nullptr;  // (N, OH, OW, C), max only
};

namespace cpu {
void pool2d_forward(const PoolLayout& layout);
void pool2d_backward(const PoolGradLayout& layout);
}  // namespace cpu
namespace cuda {
void pool2d_forward(const PoolLayout& layout, int device);
void pool2d_backward(const PoolGradLayout& layout, int device);
}  // namespace cuda

}  // namespace kiln
