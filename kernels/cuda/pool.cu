// cuda 2-D pooling in NHWC through core's elementwise launch helper. Forward: one thread
// per output element (n, oh, ow, c), c fastest so a warp reads consecutive channels of
// each window pixel. Backward: one thread per input element, gathering the windows that
// contain it (see PoolGradLayout): no atomics, the same summation order as the cpu.
#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/cuda/nhwc_index.cuh"
#include "kiln/kernels/math.h"
#include "kiln/kernels/pool_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cuda {
namespace {

template <class T, PoolKind kKind, class Index>
struct PoolForward {
  PoolGeometry g;
  T* y;
  const T* x;
  std::int32_t* argmax;  // max only; may be null
  __device__ void operator()(std::int64_t i) const {
    using C = math::compute_t<T>;
    const Pixel p = unflatten<Index>(i, g.OH, g.OW, g.C);
    const Span hs = window_span(p.a, g.sh, g.pad_top, g.ph, g.H);
    const Span ws = window_span(p.b, g.sw, g.pad_left, g.pw, g.W);
    const T* xn = x + p.n * g.H * g.W * g.C + p.c;
    if constexpr (kKind == PoolKind::max) {
      C best = convert<C>(xn[(hs.lo * g.W + ws.lo) * g.C]);
      std::int64_t best_pos = hs.lo * g.W + ws.lo;
      for (std::int64_t ih = hs.lo; ih < hs.hi; ++ih) {
        for (std::int64_t iw = ws.lo; iw < ws.hi; ++iw) {
          const C v = convert<C>(xn[(ih * g.W + iw) * g.C]);
          // Strictly greater keeps the first maximum; a NaN replaces anything but a NaN.
          if (v > best || (math::isnan(v) && !math::isnan(best))) {
            best = v;
            best_pos = ih * g.W + iw;
          }
        }
      }
      y[i] = convert<T>(best);
      if (argmax) argmax[i] = static_cast<std::int32_t>(best_pos);
    } else {
      C acc = 0;
      for (std::int64_t ih = hs.lo; ih < hs.hi; ++ih) {
        for (std::int64_t iw = ws.lo; iw < ws.hi; ++iw) acc += convert<C>(xn[(ih * g.W + iw) * g.C]);
      }
      y[i] = convert<T>(acc * (C(1) / static_cast<C>((hs.hi - hs.lo) * (ws.hi - ws.lo))));
    }
  }
};

template <class T, PoolKind kKind, class Index>
struct PoolBackward {
  PoolGeometry g;
  T* gx;
  const T* gy;
  const std::int32_t* argmax;  // max only
  __device__ void operator()(std::int64_t i) const {
    using C = math::compute_t<T>;
    const Pixel p = unflatten<Index>(i, g.H, g.W, g.C);
    const Span hs = windows_containing(p.a, g.sh, g.pad_top, g.ph, g.OH);
    const Span ws = windows_containing(p.b, g.sw, g.pad_left, g.pw, g.OW);
    const std::int64_t pos = p.a * g.W + p.b;
    const std::int64_t base = p.n * g.OH * g.OW * g.C + p.c;
    C acc = 0;
    for (std::int64_t oh = hs.lo; oh < hs.hi; ++oh) {
      const Span rows = window_span(oh, g.sh, g.pad_top, g.ph, g.H);
      for (std::int64_t ow = ws.lo; ow < ws.hi; ++ow) {
        const std::int64_t o = base + (oh * g.OW + ow) * g.C;
        if constexpr (kKind == PoolKind::max) {
          if (argmax[o] == pos) acc += convert<C>(gy[o]);
        } else {
          const Span cols = window_span(ow, g.sw, g.pad_left, g.pw, g.W);
          acc += convert<C>(gy[o]) * (C(1) / static_cast<C>((rows.hi - rows.lo) * (cols.hi - cols.lo)));
        }
      }
    }
    gx[i] = convert<T>(acc);
  }
};

}  // namespace

void pool2d_forward(const PoolLayout& l, int device) {
  const PoolGeometry& g = l.g;
  const std::int64_t n = g.N * g.OH * g.OW * g.C;
  if (n == 0) return;
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_floating(l.dtype, "pool2d", "cuda", [&]<class T>() {
    auto* y = static_cast<T*>(l.y);
    const auto* x = static_cast<const T*>(l.x);
    detail::with_index_type(n, [&]<class Index>() {
      if (l.kind == PoolKind::max) {
        launch_elementwise(n, stream, PoolForward<T, PoolKind::max, Index>{g, y, x, l.argmax});
      } else {
        launch_elementwise(n, stream, PoolForward<T, PoolKind::avg, Index>{g, y, x, nullptr});
      }
    });
  });
}

void pool2d_backward(const PoolGradLayout& l, int device) {
  KILN_ASSERT(l.kind != PoolKind::max || l.argmax, "pool2d backward: max pooling without argmax");
  const PoolGeometry& g = l.g;
  const std::int64_t n = g.N * g.H * g.W * g.C;
  if (n == 0) return;
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_floating(l.dtype, "pool2d backward", "cuda", [&]<class T>() {
    auto* gx = static_cast<T*>(l.gx);
    const auto* gy = static_cast<const T*>(l.gy);
    detail::with_index_type(n, [&]<class Index>() {
      if (l.kind == PoolKind::max) {
        launch_elementwise(n, stream, PoolBackward<T, PoolKind::max, Index>{g, gx, gy, l.argmax});
      } else {
        launch_elementwise(n, stream, PoolBackward<T, PoolKind::avg, Index>{g, gx, gy, nullptr});
      }
    });
  });
}

}  // namespace kiln::cuda
