// Direct kernels for depthwise convolutions on kiln's native cuda path (included by
// conv.cu). Depthwise: groups == C_in, one input channel per group, C_out = C_in·M for a
// depth multiplier M; weight OHWI (C_out, KH, KW, 1). As grouped GEMMs these are C_in
// products of (rows, KH·KW)·(KH·KW, M) that leave the tiled GEMM nearly idle and need an
// im2col workspace, so they run directly:
//   forward          y[n, oh, ow, co] = Σ_taps x[n, ih, iw, co / M] · w[co, kh, kw]  (+ b[co])
//   backward-data    dx[n, ih, iw, c] = Σ_{m, taps that read (ih, iw)} dy[n, oh, ow, c·M + m] · w[c·M + m, kh, kw]
//   backward-filter  dw[co, kh, kw]   = Σ_{n, oh, ow} dy[n, oh, ow, co] · x[n, ih, iw, co / M]
// with ih = oh·stride - pad_top + kh·dilation (likewise iw). The first two take one thread
// per output element, channels fastest (coalesced in NHWC), and gather rather than scatter,
// so no atomics. The filter gradient sums each (tap, channel) over splits of the rows in a
// fixed order, then adds the splits in order: deterministic, like the bias gradient.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cuda/conv_taps.cuh"
#include "kiln/kernels/cuda/nhwc_index.cuh"
#include "kiln/kernels/math.h"

namespace kiln::cuda::depthwise {

// The filter gradient's grid.y is splits·taps (at most 65535): kernels of more taps than
// that (none in practice) take the GEMM path.
inline bool applies(const ConvGeometry& g) {
  return g.groups > 1 && g.groups == g.c_in && g.c_in_per_group() == 1 && g.k_h * g.k_w <= 65535;
}

// The geometry as kernel arguments (I: int when every index fits, else int64).
template <class I>
struct Dims {
  I h, w, c_in, c_out, k_h, k_w, m, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w;
};

template <class I>
Dims<I> dims_of(const ConvGeometry& g) {
  Dims<I> d;
  d.h = static_cast<I>(g.h), d.w = static_cast<I>(g.w), d.c_in = static_cast<I>(g.c_in);
  d.c_out = static_cast<I>(g.c_out), d.k_h = static_cast<I>(g.k_h), d.k_w = static_cast<I>(g.k_w);
  d.m = static_cast<I>(g.c_out_per_group());
  d.stride_h = static_cast<I>(g.stride_h), d.stride_w = static_cast<I>(g.stride_w);
  d.dil_h = static_cast<I>(g.dil_h), d.dil_w = static_cast<I>(g.dil_w);
  d.pad_top = static_cast<I>(g.pad_top), d.pad_left = static_cast<I>(g.pad_left);
  d.out_h = static_cast<I>(g.out_h), d.out_w = static_cast<I>(g.out_w);
  return d;
}

// 32-bit index math when the largest tensor (x or y) and the filter fit in an int.
inline bool fits_int(const ConvGeometry& g) {
  const std::int64_t largest =
      std::max({g.n * g.h * g.w * g.c_in, g.n * g.out_h * g.out_w * g.c_out, g.c_out * g.k_h * g.k_w});
  return largest < INT_MAX;
}

template <class T, class I>
struct Forward {
  T* y;
  const T* x;
  const T* w;
  const T* bias;  // (C_out) or null
  Dims<I> s;
  __device__ void operator()(std::int64_t item) const {
    using Acc = math::compute_t<T>;
    const Pixel p = unflatten<I>(item, s.out_h, s.out_w, s.c_out);
    const I n = static_cast<I>(p.n), oh = static_cast<I>(p.a), ow = static_cast<I>(p.b), co = static_cast<I>(p.c);
    const I c = co / s.m;
    Acc acc = 0;
    for (I kh = 0; kh < s.k_h; ++kh) {
      const I ih = oh * s.stride_h - s.pad_top + kh * s.dil_h;
      if (ih < 0 || ih >= s.h) continue;
      for (I kw = 0; kw < s.k_w; ++kw) {
        const I iw = ow * s.stride_w - s.pad_left + kw * s.dil_w;
        if (iw < 0 || iw >= s.w) continue;
        acc += convert<Acc>(x[((n * s.h + ih) * s.w + iw) * s.c_in + c]) *
               convert<Acc>(w[(co * s.k_h + kh) * s.k_w + kw]);
      }
    }
    if (bias) acc += convert<Acc>(bias[co]);
    y[item] = convert<T>(acc);
  }
};

template <class T, class I>
struct BackwardData {
  T* dx;
  const T* dy;
  const T* w;
  Dims<I> s;
  __device__ void operator()(std::int64_t item) const {
    using Acc = math::compute_t<T>;
    const Pixel p = unflatten<I>(item, s.h, s.w, s.c_in);
    const I n = static_cast<I>(p.n), ih = static_cast<I>(p.a), iw = static_cast<I>(p.b), c = static_cast<I>(p.c);
    Acc acc = 0;
    for_each_reading_tap(s, ih, iw, [&](I oh, I ow, I kh, I kw) {
      const I row = (n * s.out_h + oh) * s.out_w + ow;
      for (I mm = 0; mm < s.m; ++mm) {
        const I co = c * s.m + mm;
        acc += convert<Acc>(dy[row * s.c_out + co]) * convert<Acc>(w[(co * s.k_h + kh) * s.k_w + kw]);
      }
    });
    dx[item] = convert<T>(acc);
  }
};

// ---- filter gradient ----

constexpr int kColumns = 32, kLanes = 8;  // a block: 32 output channels x 8 row lanes
constexpr std::int64_t kRowsPerSplit = 1024;
constexpr std::int64_t kMaxSplits = 256;

// partial[(split·taps + tap)·C_out + co] = Σ over the split's rows of dy[row, co] · x[tap's
// input pixel of row, co / M]; grid (ceil(C_out / 32), splits·taps), block (32, 8).
template <class T, class I>
__global__ void filter_partials(const T* x, const T* dy, math::compute_t<T>* partial, Dims<I> s, I rows,
                                I rows_per_split) {
  using Acc = math::compute_t<T>;
  __shared__ Acc lanes[kLanes][kColumns];
  const I taps = s.k_h * s.k_w;
  const I co = static_cast<I>(blockIdx.x) * kColumns + static_cast<I>(threadIdx.x);
  const I tap = static_cast<I>(blockIdx.y) % taps, split = static_cast<I>(blockIdx.y) / taps;
  const I kh = tap / s.k_w, kw = tap % s.k_w;
  const I r0 = split * rows_per_split;
  const I r1 = std::min(rows, r0 + rows_per_split);
  Acc acc = 0;
  if (co < s.c_out) {
    const I c = co / s.m;
    for (I r = r0 + static_cast<I>(threadIdx.y); r < r1; r += kLanes) {
      const I ow = r % s.out_w, oh = (r / s.out_w) % s.out_h, n = r / (s.out_w * s.out_h);
      const I ih = oh * s.stride_h - s.pad_top + kh * s.dil_h, iw = ow * s.stride_w - s.pad_left + kw * s.dil_w;
      if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
      acc += convert<Acc>(dy[r * s.c_out + co]) * convert<Acc>(x[((n * s.h + ih) * s.w + iw) * s.c_in + c]);
    }
  }
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && co < s.c_out) {
    for (int l = 1; l < kLanes; ++l) acc += lanes[l][threadIdx.x];
    partial[(static_cast<std::int64_t>(split) * taps + tap) * s.c_out + co] = acc;
  }
}

// dw[co, tap] = Σ_split partial[split][tap][co], in split order.
template <class T>
struct FinishFilter {
  T* dw;
  const math::compute_t<T>* partial;
  std::int64_t splits, taps, c_out;
  __device__ void operator()(std::int64_t item) const {
    const std::int64_t co = item / taps, tap = item % taps;
    math::compute_t<T> acc = 0;
    for (std::int64_t sp = 0; sp < splits; ++sp) acc += partial[(sp * taps + tap) * c_out + co];
    dw[item] = convert<T>(acc);
  }
};

template <class T>
void forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream) {
  const std::int64_t count = g.n * g.out_h * g.out_w * g.c_out;
  if (fits_int(g)) {
    launch_elementwise(count, stream, Forward<T, int>{y, x, w, bias, dims_of<int>(g)});
  } else {
    launch_elementwise(count, stream, Forward<T, std::int64_t>{y, x, w, bias, dims_of<std::int64_t>(g)});
  }
}

template <class T>
void backward_data(const ConvGeometry& g, const T* dy, const T* w, T* dx, cudaStream_t stream) {
  const std::int64_t count = g.n * g.h * g.w * g.c_in;
  if (fits_int(g)) {
    launch_elementwise(count, stream, BackwardData<T, int>{dx, dy, w, dims_of<int>(g)});
  } else {
    launch_elementwise(count, stream, BackwardData<T, std::int64_t>{dx, dy, w, dims_of<std::int64_t>(g)});
  }
}

template <class T>
void backward_filter(const ConvGeometry& g, const T* x, const T* dy, T* dw, cudaStream_t stream, Device device) {
  using Acc = math::compute_t<T>;
  const std::int64_t rows = g.n * g.out_h * g.out_w, taps = g.k_h * g.k_w;
  const std::int64_t max_splits = std::min(kMaxSplits, 65535 / taps);
  const std::int64_t splits = std::clamp<std::int64_t>((rows + kRowsPerSplit - 1) / kRowsPerSplit, 1, max_splits);
  const std::int64_t per_split = (rows + splits - 1) / splits;
  const Tensor partial = empty({splits * taps * g.c_out}, {.dtype = dtype_of<Acc>(), .device = device});
  auto* part = static_cast<Acc*>(partial.data_ptr());
  const dim3 grid(static_cast<unsigned>((g.c_out + kColumns - 1) / kColumns), static_cast<unsigned>(splits * taps));
  if (fits_int(g)) {
    KILN_LAUNCH(filter_partials<T, int>, grid, dim3(kColumns, kLanes), 0, stream)(
        x, dy, part, dims_of<int>(g), static_cast<int>(rows), static_cast<int>(per_split));
  } else {
    KILN_LAUNCH(filter_partials<T, std::int64_t>, grid, dim3(kColumns, kLanes), 0, stream)(
        x, dy, part, dims_of<std::int64_t>(g), rows, per_split);
  }
  launch_elementwise(g.c_out * taps, stream, FinishFilter<T>{dw, part, splits, taps, g.c_out});
}

}  // namespace kiln::cuda::depthwise
