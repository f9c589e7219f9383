// Internal: the per-device entry points of upsample2d (kernels/cpu/resize.cpp,
// kernels/cuda/resize.cu) and the interpolation arithmetic both devices share.
// kernels/resize.cpp checks the input and hands the kernels contiguous NHWC buffers.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/core/macros.h"

namespace kiln {

enum class Interpolation : std::uint8_t { nearest, bilinear };

// x (N, H, W, C) -> y (N, H * sh, W * sw, C) for integer factors sh, sw.
struct ResizeGeometry {
  std::int64_t N = 0, H = 0, W = 0, C = 0;
  std::int64_t sh = 1, sw = 1;
  KILN_HOST_DEVICE std::int64_t OH() const { return H * sh; }
  KILN_HOST_DEVICE std::int64_t OW() const { return W * sw; }
};

// Note [Bilinear taps]
// Output position o of an axis upsampled by an integer factor s reads input coordinate
// src = (o + 0.5) / s - 0.5 (half-pixel centres: tf.image.resize / Keras' UpSampling2D,
// PyTorch's align_corners=False), i.e. src = (2o + 1 - s) / 2s, kept as that exact
// fraction: f = floor(src), lo = max(f, 0), hi = min(f + 1, in - 1), and the weight of hi
// is the fraction's remainder over 2s. Coordinates clamped at either edge (lo == hi) and
// exact hits (remainder 0) read lo alone (hi = lo, w_hi = 0), so an infinity beside a
// sample of weight 0 does not turn it into NaN (0 * inf); value = (1 - w_hi) x[lo] + w_hi x[hi].
template <class C>
struct Taps {
  std::int64_t lo, hi;
  C w_hi;  // 0 exactly when only lo is read
};

template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE Taps<C> bilinear_taps(std::int64_t o, std::int64_t s, std::int64_t in) {
  const std::int64_t num = 2 * o + 1 - s, den = 2 * s;
  const std::int64_t f = num >= 0 ? num / den : -((-num + den - 1) / den);  // floor(num / den)
  const std::int64_t rem = num - f * den;                                    // in [0, den)
  const std::int64_t lo = f < 0 ? 0 : f, hi = f + 1 > in - 1 ? in - 1 : f + 1;
  if (rem == 0 || lo == hi) return {lo, lo, C(0)};
  return {lo, hi, static_cast<C>(rem) / static_cast<C>(den)};
}

// The weight input position i has in output o's taps (0 when o does not read i).
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C tap_weight(const Taps<C>& t, std::int64_t i) {
  if (t.lo == t.hi) return t.lo == i ? C(1) : C(0);
  return t.lo == i ? C(1) - t.w_hi : (t.hi == i ? t.w_hi : C(0));
}

// (1 - w) a + w b, exactly a when w == 0 (Note [Bilinear taps]).
template <class C>
KILN_HOST_DEVICE KILN_FORCEINLINE C lerp_taps(C a, C b, C w) {
  return w == C(0) ? a : (C(1) - w) * a + w * b;
}

// The outputs [lo, hi) along an axis (factor s, `out` outputs) whose bilinear taps may read
// input i: f(o) in {i - 1, i} lies inside [(i - 1) s, (i + 2) s).
struct OutputRange {
  std::int64_t lo, hi;
};
KILN_HOST_DEVICE KILN_FORCEINLINE OutputRange bilinear_readers(std::int64_t i, std::int64_t s, std::int64_t out) {
  const std::int64_t lo = (i - 1) * s, hi = (i + 2) * s;
  return {lo < 0 ? 0 : lo, hi > out ? out : hi};
}

struct ResizeLayout {
  Interpolation mode = Interpolation::nearest;
  ResizeGeometry g;
  DType dtype = DType::float32;  // floating; float16/bfloat16 compute in float32
  void* y = nullptr;             // (N, OH, OW, C) contiguous
  const void* x = nullptr;       // (N, H, W, C) contiguous
};

// gx (N, H, W, C): each input element gathers the outputs that read it, weighted by its
// tap weights (nearest: the sh x sw block it was copied to), in row-major output order:
// deterministic, no atomics.
struct ResizeGradLayout {
  Interpolation mode = Interpolation::nearest;
  ResizeGeometry g;
  DType dtype = DType::float32;
  void* gx = nullptr;        // (N, H, W, C) contiguous
  const void* gy = nullptr;  // (N, OH, OW, C) contiguous
};

namespace cpu {
void upsample2d_forward(const ResizeLayout& layout);
void upsample2d_backward(const ResizeGradLayout& layout);
}  // namespace cpu
namespace cuda {
void upsample2d_forward(const ResizeLayout& layout, int device);
void upsample2d_backward(const ResizeGradLayout& layout, int device);
}  // namespace cuda

}  // namespace kiln
