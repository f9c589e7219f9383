// cpu 2-D pooling in NHWC. Forward: OpenMP over the N * OH output rows; each output pixel
// walks its window in row-major order with the channels innermost, kLanes channels at a
// time in accumulators of the compute type (`omp simd` vectorises the channel loops; the
// build's -O2 alone would not). Backward: a gather over the N * H input rows, each input
// pixel summing the windows that contain it (see PoolGradLayout).
#include <algorithm>

#include "kiln/core/convert.h"
#include "kiln/core/error.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/pool_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cpu {
namespace {

constexpr std::int64_t kParallelWork = 1 << 15;
constexpr int kLanes = 16;  // channels per accumulator block: four SSE registers of float

// Every per-pixel loop below runs over channels [k, k + n) with pointers already at channel
// k: once per kLanes channels with n == kLanes (inlined, a compile-time trip count: whole
// vectors, no remainder loop) and once for the tail n < kLanes.
template <class F>
KILN_FORCEINLINE void for_lanes(std::int64_t channels, F&& f) {
  std::int64_t k = 0;
  for (; k + kLanes <= channels; k += kLanes) f(k, kLanes);
  if (k < channels) f(k, static_cast<int>(channels - k));
}

// y of one output pixel: the window's first maximum (NaN first) and, when kArg, its flat
// position ih * W + iw. x points at (n, 0, 0, k).
template <class T, bool kArg>
KILN_FORCEINLINE void max_lanes(const T* x, const PoolGeometry& g, Span hs, Span ws, int n, T* y,
                                std::int32_t* arg) {
  using C = math::compute_t<T>;
  C best[kLanes];
  std::int32_t idx[kLanes];
  const T* first = x + (hs.lo * g.W + ws.lo) * g.C;
  const auto first_pos = static_cast<std::int32_t>(hs.lo * g.W + ws.lo);
  for (int k = 0; k < n; ++k) {
    best[k] = convert<C>(first[k]);
    idx[k] = first_pos;
  }
  for (std::int64_t ih = hs.lo; ih < hs.hi; ++ih) {
    for (std::int64_t iw = (ih == hs.lo ? ws.lo + 1 : ws.lo); iw < ws.hi; ++iw) {
      const T* xp = x + (ih * g.W + iw) * g.C;
      const auto pos = static_cast<std::int32_t>(ih * g.W + iw);
#pragma omp simd
      for (int k = 0; k < n; ++k) {
        const C v = convert<C>(xp[k]);
        // Strictly greater keeps the first maximum; a NaN replaces anything but a NaN.
        // Bitwise, not short-circuit: a branch here stops the vectoriser.
        const bool take = (v > best[k]) | ((v != v) & (best[k] == best[k]));
        best[k] = take ? v : best[k];
        if constexpr (kArg) idx[k] = take ? pos : idx[k];
      }
    }
  }
  for (int k = 0; k < n; ++k) y[k] = convert<T>(best[k]);
  if constexpr (kArg) {
    for (int k = 0; k < n; ++k) arg[k] = idx[k];
  }
}

// y of one output pixel: the mean of the window's input elements. x points at (n, 0, 0, k).
template <class T>
KILN_FORCEINLINE void avg_lanes(const T* x, const PoolGeometry& g, Span hs, Span ws, int n, T* y) {
  using C = math::compute_t<T>;
  C acc[kLanes] = {};
  for (std::int64_t ih = hs.lo; ih < hs.hi; ++ih) {
    for (std::int64_t iw = ws.lo; iw < ws.hi; ++iw) {
      const T* xp = x + (ih * g.W + iw) * g.C;
#pragma omp simd
      for (int k = 0; k < n; ++k) acc[k] += convert<C>(xp[k]);
    }
  }
  const C inv = C(1) / static_cast<C>((hs.hi - hs.lo) * (ws.hi - ws.lo));
  for (int k = 0; k < n; ++k) y[k] = convert<T>(acc[k] * inv);
}

template <class T, PoolKind kKind, bool kArg>
void forward(const PoolLayout& l) {
  const PoolGeometry& g = l.g;
  const auto* x = static_cast<const T*>(l.x);
  auto* y = static_cast<T*>(l.y);
  const std::int64_t rows = g.N * g.OH;
  const std::int64_t work = rows * g.OW * g.C * g.ph * g.pw;
#pragma omp parallel for if (work > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t n = r / g.OH, oh = r % g.OH;
    const Span hs = window_span(oh, g.sh, g.pad_top, g.ph, g.H);
    const T* xn = x + n * g.H * g.W * g.C;
    for (std::int64_t ow = 0; ow < g.OW; ++ow) {
      const Span ws = window_span(ow, g.sw, g.pad_left, g.pw, g.W);
      const std::int64_t out = (r * g.OW + ow) * g.C;
      for_lanes(g.C, [&](std::int64_t k, int count) {
        if constexpr (kKind == PoolKind::max) {
          max_lanes<T, kArg>(xn + k, g, hs, ws, count, y + out + k, kArg ? l.argmax + out + k : nullptr);
        } else {
          avg_lanes<T>(xn + k, g, hs, ws, count, y + out + k);
        }
      });
    }
  }
}

// gx of input pixel (n, ih, iw) with position pos = ih * W + iw: the sum over the windows
// hs x ws holding it, in row-major window order. gy and argmax point at (n, 0, 0, k).
template <class T, PoolKind kKind>
KILN_FORCEINLINE void gather_lanes(const T* gy, const std::int32_t* argmax, const PoolGeometry& g,
                                   std::int32_t pos, Span hs, Span ws, int n, T* gx) {
  using C = math::compute_t<T>;
  C acc[kLanes] = {};
  for (std::int64_t oh = hs.lo; oh < hs.hi; ++oh) {
    const Span rows = window_span(oh, g.sh, g.pad_top, g.ph, g.H);
    for (std::int64_t ow = ws.lo; ow < ws.hi; ++ow) {
      const std::int64_t o = (oh * g.OW + ow) * g.C;
      const T* gp = gy + o;
      if constexpr (kKind == PoolKind::max) {
        const std::int32_t* ap = argmax + o;
#pragma omp simd
        for (int k = 0; k < n; ++k) acc[k] += ap[k] == pos ? convert<C>(gp[k]) : C(0);
      } else {
        const Span cols = window_span(ow, g.sw, g.pad_left, g.pw, g.W);
        const C inv = C(1) / static_cast<C>((rows.hi - rows.lo) * (cols.hi - cols.lo));
#pragma omp simd
        for (int k = 0; k < n; ++k) acc[k] += convert<C>(gp[k]) * inv;
      }
    }
  }
  for (int k = 0; k < n; ++k) gx[k] = convert<T>(acc[k]);
}

template <class T, PoolKind kKind>
void backward(const PoolGradLayout& l) {
  const PoolGeometry& g = l.g;
  auto* gx = static_cast<T*>(l.gx);
  const std::int64_t rows = g.N * g.H;
  const std::int64_t work = rows * g.W * g.C * g.ph * g.pw;
#pragma omp parallel for if (work > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t n = r / g.H, ih = r % g.H;
    const Span hs = windows_containing(ih, g.sh, g.pad_top, g.ph, g.OH);
    const std::int64_t image = n * g.OH * g.OW * g.C;
    const T* gy = static_cast<const T*>(l.gy) + image;
    const std::int32_t* argmax = kKind == PoolKind::max ? l.argmax + image : nullptr;
    for (std::int64_t iw = 0; iw < g.W; ++iw) {
      const Span ws = windows_containing(iw, g.sw, g.pad_left, g.pw, g.OW);
      const auto pos = static_cast<std::int32_t>(ih * g.W + iw);
      T* out = gx + (r * g.W + iw) * g.C;
      for_lanes(g.C, [&](std::int64_t k, int count) {
        gather_lanes<T, kKind>(gy + k, argmax ? argmax + k : nullptr, g, pos, hs, ws, count, out + k);
      });
    }
  }
}

}  // namespace

void pool2d_forward(const PoolLayout& layout) {
  visit_floating(layout.dtype, "pool2d", "cpu", [&]<class T>() {
    if (layout.kind == PoolKind::avg) {
      forward<T, PoolKind::avg, false>(layout);
    } else if (layout.argmax) {
      forward<T, PoolKind::max, true>(layout);
    } else {
      forward<T, PoolKind::max, false>(layout);
    }
  });
}

void pool2d_backward(const PoolGradLayout& layout) {
  KILN_ASSERT(layout.kind != PoolKind::max || layout.argmax, "pool2d backward: max pooling without argmax");
  visit_floating(layout.dtype, "pool2d backward", "cpu", [&]<class T>() {
    if (layout.kind == PoolKind::max) {
      backward<T, PoolKind::max>(layout);
    } else {
      backward<T, PoolKind::avg>(layout);
    }
  });
}

}  // namespace kiln::cpu
