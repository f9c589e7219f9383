// cpu upsample2d in NHWC: OpenMP over output rows (forward) or input rows (backward, a
// gather: see ResizeGradLayout), channels innermost, kLanes at a time in accumulators of
// the compute type, `omp simd` on the channel loops (the build's -O2 alone would not).
#include <algorithm>

#include "kiln/core/convert.h"
#include "kiln/core/error.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/resize_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cpu {
namespace {

constexpr std::int64_t kParallelWork = 1 << 15;
constexpr int kLanes = 16;  // channels per accumulator block: four SSE registers of float

template <class T>
void nearest_forward(const ResizeLayout& l) {
  const ResizeGeometry& g = l.g;
  const auto* x = static_cast<const T*>(l.x);
  auto* y = static_cast<T*>(l.y);
  const std::int64_t rows = g.N * g.OH(), OW = g.OW();
#pragma omp parallel for if (rows * OW * g.C > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t n = r / g.OH(), ih = (r % g.OH()) / g.sh;
    const T* xr = x + (n * g.H + ih) * g.W * g.C;
    T* yr = y + r * OW * g.C;
    for (std::int64_t ow = 0; ow < OW; ++ow) {
      const T* src = xr + (ow / g.sw) * g.C;
      std::copy(src, src + g.C, yr + ow * g.C);
    }
  }
}

template <class T>
void bilinear_forward(const ResizeLayout& l) {
  using C = math::compute_t<T>;
  const ResizeGeometry& g = l.g;
  const auto* x = static_cast<const T*>(l.x);
  auto* y = static_cast<T*>(l.y);
  const std::int64_t rows = g.N * g.OH(), OW = g.OW();
#pragma omp parallel for if (rows * OW * g.C * 4 > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t n = r / g.OH();
    const Taps<C> th = bilinear_taps<C>(r % g.OH(), g.sh, g.H);
    const T* top = x + (n * g.H + th.lo) * g.W * g.C;
    const T* bottom = x + (n * g.H + th.hi) * g.W * g.C;
    T* yr = y + r * OW * g.C;
    for (std::int64_t ow = 0; ow < OW; ++ow) {
      const Taps<C> tw = bilinear_taps<C>(ow, g.sw, g.W);
      const T *a = top + tw.lo * g.C, *b = top + tw.hi * g.C, *c = bottom + tw.lo * g.C, *d = bottom + tw.hi * g.C;
      T* out = yr + ow * g.C;
#pragma omp simd
      for (std::int64_t k = 0; k < g.C; ++k) {
        const C upper = lerp_taps(convert<C>(a[k]), convert<C>(b[k]), tw.w_hi);
        // The lower row only when it has weight (Note [Bilinear taps]).
        const C lower = th.w_hi == C(0) ? upper : lerp_taps(convert<C>(c[k]), convert<C>(d[k]), tw.w_hi);
        out[k] = convert<T>(lerp_taps(upper, lower, th.w_hi));
      }
    }
  }
}

// The gathers run over channels [k, k + n) with pointers already at channel k: once per
// kLanes channels with n == kLanes (inlined, a compile-time trip count: whole vectors, no
// remainder loop) and once for the tail n < kLanes.
template <class F>
KILN_FORCEINLINE void for_lanes(std::int64_t channels, F&& f) {
  std::int64_t k = 0;
  for (; k + kLanes <= channels; k += kLanes) f(k, kLanes);
  if (k < channels) f(k, static_cast<int>(channels - k));
}

// gx of input pixel (ih, iw): the sh x sw block it was copied to. gy points at (n, 0, 0, k).
template <class T>
KILN_FORCEINLINE void nearest_gather(const T* gy, const ResizeGeometry& g, std::int64_t ih, std::int64_t iw, int n,
                                     T* gx) {
  using C = math::compute_t<T>;
  C acc[kLanes] = {};
  for (std::int64_t oh = ih * g.sh; oh < (ih + 1) * g.sh; ++oh) {
    for (std::int64_t ow = iw * g.sw; ow < (iw + 1) * g.sw; ++ow) {
      const T* gp = gy + (oh * g.OW() + ow) * g.C;
#pragma omp simd
      for (int k = 0; k < n; ++k) acc[k] += convert<C>(gp[k]);
    }
  }
  for (int k = 0; k < n; ++k) gx[k] = convert<T>(acc[k]);
}

// gx of input pixel (ih, iw): the outputs whose taps read it, weighted, in row-major order.
template <class T>
KILN_FORCEINLINE void bilinear_gather(const T* gy, const ResizeGeometry& g, std::int64_t ih, std::int64_t iw,
                                      int n, T* gx) {
  using C = math::compute_t<T>;
  C acc[kLanes] = {};
  const OutputRange rh = bilinear_readers(ih, g.sh, g.OH()), rw = bilinear_readers(iw, g.sw, g.OW());
  for (std::int64_t oh = rh.lo; oh < rh.hi; ++oh) {
    const C wh = tap_weight(bilinear_taps<C>(oh, g.sh, g.H), ih);
    if (wh == C(0)) continue;
    for (std::int64_t ow = rw.lo; ow < rw.hi; ++ow) {
      const C ww = tap_weight(bilinear_taps<C>(ow, g.sw, g.W), iw);
      if (ww == C(0)) continue;
      const C w = wh * ww;
      const T* gp = gy + (oh * g.OW() + ow) * g.C;
#pragma omp simd
      for (int k = 0; k < n; ++k) acc[k] += w * convert<C>(gp[k]);
    }
  }
  for (int k = 0; k < n; ++k) gx[k] = convert<T>(acc[k]);
}

template <class T, Interpolation kMode>
void backward(const ResizeGradLayout& l) {
  const ResizeGeometry& g = l.g;
  auto* gx = static_cast<T*>(l.gx);
  const std::int64_t rows = g.N * g.H;
  const std::int64_t reads = kMode == Interpolation::nearest ? g.sh * g.sw : 9 * g.sh * g.sw;
#pragma omp parallel for if (rows * g.W * g.C * reads > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t n = r / g.H, ih = r % g.H;
    const T* gy = static_cast<const T*>(l.gy) + n * g.OH() * g.OW() * g.C;
    for (std::int64_t iw = 0; iw < g.W; ++iw) {
      T* out = gx + (r * g.W + iw) * g.C;
      for_lanes(g.C, [&](std::int64_t k, int count) {
        if constexpr (kMode == Interpolation::nearest) {
          nearest_gather<T>(gy + k, g, ih, iw, count, out + k);
        } else {
          bilinear_gather<T>(gy + k, g, ih, iw, count, out + k);
        }
      });
    }
  }
}

}  // namespace

void upsample2d_forward(const ResizeLayout& layout) {
  visit_floating(layout.dtype, "upsample2d", "cpu", [&]<class T>() {
    if (layout.mode == Interpolation::nearest) {
      nearest_forward<T>(layout);
    } else {
      bilinear_forward<T>(layout);
    }
  });
}

void upsample2d_backward(const ResizeGradLayout& layout) {
  visit_floating(layout.dtype, "upsample2d backward", "cpu", [&]<class T>() {
    if (layout.mode == Interpolation::nearest) {
      backward<T, Interpolation::nearest>(layout);
    } else {
      backward<T, Interpolation::bilinear>(layout);
    }
  });
}

}  // namespace kiln::cpu
