// cuda upsample2d in NHWC through core's elementwise launch helper: one thread per output
// element (forward) or per input element (backward, a gather: see ResizeGradLayout), c
// fastest so a warp touches consecutive channels. Same formulas and summation order as
// the cpu (kernels/resize_impl.h).
#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/cuda/nhwc_index.cuh"
#include "kiln/kernels/math.h"
#include "kiln/kernels/resize_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cuda {
namespace {

template <class T, Interpolation kMode, class Index>
struct UpsampleForward {
  ResizeGeometry g;
  T* y;
  const T* x;
  __device__ void operator()(std::int64_t i) const {
    using C = math::compute_t<T>;
    const Pixel p = unflatten<Index>(i, g.OH(), g.OW(), g.C);
    const T* xn = x + p.n * g.H * g.W * g.C + p.c;
    if constexpr (kMode == Interpolation::nearest) {
      y[i] = xn[((p.a / g.sh) * g.W + p.b / g.sw) * g.C];
    } else {
      const Taps<C> th = bilinear_taps<C>(p.a, g.sh, g.H), tw = bilinear_taps<C>(p.b, g.sw, g.W);
      const T* top = xn + th.lo * g.W * g.C;
      const C upper = lerp_taps(convert<C>(top[tw.lo * g.C]), convert<C>(top[tw.hi * g.C]), tw.w_hi);
      C lower = upper;  // the lower row only when it has weight (Note [Bilinear taps])
      if (th.w_hi != C(0)) {
        const T* bottom = xn + th.hi * g.W * g.C;
        lower = lerp_taps(convert<C>(bottom[tw.lo * g.C]), convert<C>(bottom[tw.hi * g.C]), tw.w_hi);
      }
      y[i] = convert<T>(lerp_taps(upper, lower, th.w_hi));
    }
  }
};

template <class T, Interpolation kMode, class Index>
struct UpsampleBackward {
  ResizeGeometry g;
  T* gx;
  const T* gy;
  __device__ void operator()(std::int64_t i) const {
    using C = math::compute_t<T>;
    const Pixel p = unflatten<Index>(i, g.H, g.W, g.C);
    const std::int64_t OW = g.OW();
    const T* gn = gy + p.n * g.OH() * OW * g.C + p.c;
    C acc = 0;
    if constexpr (kMode == Interpolation::nearest) {
      for (std::int64_t oh = p.a * g.sh; oh < (p.a + 1) * g.sh; ++oh) {
        for (std::int64_t ow = p.b * g.sw; ow < (p.b + 1) * g.sw; ++ow) acc += convert<C>(gn[(oh * OW + ow) * g.C]);
      }
    } else {
      const OutputRange rh = bilinear_readers(p.a, g.sh, g.OH()), rw = bilinear_readers(p.b, g.sw, OW);
      for (std::int64_t oh = rh.lo; oh < rh.hi; ++oh) {
        const C wh = tap_weight(bilinear_taps<C>(oh, g.sh, g.H), p.a);
        if (wh == C(0)) continue;
        for (std::int64_t ow = rw.lo; ow < rw.hi; ++ow) {
          const C ww = tap_weight(bilinear_taps<C>(ow, g.sw, g.W), p.b);
          if (ww == C(0)) continue;
          acc += (wh * ww) * convert<C>(gn[(oh * OW + ow) * g.C]);
        }
      }
    }
    gx[i] = convert<T>(acc);
  }
};

}  // namespace

void upsample2d_forward(const ResizeLayout& l, int device) {
  const ResizeGeometry& g = l.g;
  const std::int64_t n = g.N * g.OH() * g.OW() * g.C;
  if (n == 0) return;
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_floating(l.dtype, "upsample2d", "cuda", [&]<class T>() {
    auto* y = static_cast<T*>(l.y);
    const auto* x = static_cast<const T*>(l.x);
    detail::with_index_type(n, [&]<class Index>() {
      if (l.mode == Interpolation::nearest) {
        launch_elementwise(n, stream, UpsampleForward<T, Interpolation::nearest, Index>{g, y, x});
      } else {
        launch_elementwise(n, stream, UpsampleForward<T, Interpolation::bilinear, Index>{g, y, x});
      }
    });
  });
}

void upsample2d_backward(const ResizeGradLayout& l, int device) {
  const ResizeGeometry& g = l.g;
  const std::int64_t n = g.N * g.H * g.W * g.C;
  if (n == 0) return;
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_floating(l.dtype, "upsample2d backward", "cuda", [&]<class T>() {
    auto* gx = static_cast<T*>(l.gx);
    const auto* gy = static_cast<const T*>(l.gy);
    detail::with_index_type(n, [&]<class Index>() {
      if (l.mode == Interpolation::nearest) {
        launch_elementwise(n, stream, UpsampleBackward<T, Interpolation::nearest, Index>{g, gx, gy});
      } else {
        launch_elementwise(n, stream, UpsampleBackward<T, Interpolation::bilinear, Index>{g, gx, gy});
      }
    });
  });
}

}  // namespace kiln::cuda
