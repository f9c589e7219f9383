// cuda softmax/log_softmax over contiguous rows of K elements, computed in float for
// 16-bit floats. Rows of up to kWarpRowMax elements live in registers, a warp per row
// (rows under 32 elements share a warp; max and sum by butterfly shuffles; one read, one
// write). Longer rows get a block each:
// one pass keeps a running (max, sum of exp(x - max)) per thread (Note [Online softmax]),
// merged across the block; a second pass writes. The backward is the same two shapes
// around one row dot product.
#include <limits>

#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/convert.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/softmax_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kWarpBlock = 128;  // threads of a warp-per-row block: 4 rows
constexpr int kRowsPerBlock = kWarpBlock / kWarp;
constexpr int kRowBlock = 512;   // threads of a block-per-row block
constexpr std::int64_t kWarpRowMax = 1024;

template <class C>
__device__ __forceinline__ C nan_max(C a, C b) {
  return (math::isnan(a) || b > a) ? (math::isnan(a) ? a : b) : a;
}

// Butterflies within segments of `width` lanes: every lane gets its segment's result.
template <class C>
__device__ __forceinline__ C warp_all_max(C v, int width = kWarp) {
  for (int d = width / 2; d > 0; d /= 2) v = nan_max(v, __shfl_xor_sync(kFullMask, v, d, width));
  return v;
}
template <class C>
__device__ __forceinline__ C warp_all_sum(C v, int width = kWarp) {
  for (int d = width / 2; d > 0; d /= 2) v += __shfl_xor_sync(kFullMask, v, d, width);
  return v;
}

// Note [Online softmax]: (m, s) = (max, sum of exp(x - m)) of a set; two sets merge as
// m = max(m1, m2), s = s1 exp(m1 - m) + s2 exp(m2 - m). A set whose max is -inf
// contributes nothing (and must not compute exp(-inf - -inf)); NaN poisons the row.
template <class C>
struct MaxSum {
  C m, s;
};
template <class C>
__device__ __forceinline__ MaxSum<C> merge(MaxSum<C> a, MaxSum<C> b) {
  if (math::isnan(a.m) || math::isnan(b.m)) return {a.m + b.m, a.m + b.m};
  const C m = a.m > b.m ? a.m : b.m;
  if (m == -std::numeric_limits<C>::infinity()) return {m, C(0)};
  const C sa = a.m == -std::numeric_limits<C>::infinity() ? C(0) : a.s * math::exp(a.m - m);
  const C sb = b.m == -std::numeric_limits<C>::infinity() ? C(0) : b.s * math::exp(b.m - m);
  return {m, sa + sb};
}

// Adds one element to a thread's running (m, s): one exp, two when the max grows. A NaN
// element makes s NaN, which the merges keep.
template <class C>
__device__ __forceinline__ MaxSum<C> add_one(MaxSum<C> a, C x) {
  if (x > a.m) {
    a.s = a.s * math::exp(a.m - x) + C(1);  // a.m == -inf: a.s is 0 and exp gives 0
    a.m = x;
  } else if (x != -std::numeric_limits<C>::infinity()) {
    a.s += math::exp(x - a.m);
  }
  return a;
}

// Every thread of the (1-D) block gets the merged (m, s) / sum; smem holds 32 entries.
template <class C>
__device__ MaxSum<C> block_all_merge(MaxSum<C> v, MaxSum<C>* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  for (int d = kWarp / 2; d > 0; d /= 2) {
    v = merge(v, MaxSum<C>{__shfl_xor_sync(kFullMask, v.m, d), __shfl_xor_sync(kFullMask, v.s, d)});
  }
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = smem[0];
  for (int w = 1; w < warps; ++w) v = merge(v, smem[w]);
  __syncthreads();
  return v;
}
template <class C>
__device__ C block_all_sum(C v, C* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_all_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = C(0);
  for (int w = 0; w < warps; ++w) v += smem[w];
  __syncthreads();
  return v;
}

// `width` lanes per row (32, or the least power of two >= K for rows under 32, so a warp
// holds 32 / width rows), kPer elements per lane in registers: K <= width * kPer. The
// loop bound is the same for every lane of a warp, as the shuffles need.
template <class T, int kPer>
__global__ void softmax_warp_kernel(T* y, const T* x, std::int64_t rows, std::int64_t K, bool log, int width) {
  using C = math::compute_t<T>;
  const int lane = threadIdx.x % kWarp, sub = lane % width, groups = kWarp / width;
  const std::int64_t warp = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock * groups;
  for (std::int64_t base = warp * groups; base < rows; base += step) {
    const std::int64_t row = base + lane / width;
    const std::int64_t n = row < rows ? K : 0;  // elements this lane's row has
    const T* xr = x + row * K;
    C v[kPer];
    C m = -std::numeric_limits<C>::infinity();
    for (int j = 0; j < kPer; ++j) {
      const std::int64_t k = sub + j * width;
      v[j] = k < n ? convert<C>(xr[k]) : -std::numeric_limits<C>::infinity();
      m = nan_max(m, v[j]);
    }
    m = warp_all_max(m, width);
    C s = 0;
    for (int j = 0; j < kPer; ++j) {
      if (sub + j * width < n) s += math::exp(v[j] - m);
    }
    s = warp_all_sum(s, width);
    const C log_s = math::log(s), inv = C(1) / s;
    T* yr = y + row * K;
    for (int j = 0; j < kPer; ++j) {
      const std::int64_t k = sub + j * width;
      if (k < n) yr[k] = convert<T>(log ? (v[j] - m) - log_s : math::exp(v[j] - m) * inv);
    }
  }
}

// A block per row: an online (max, sum) pass, then the write pass.
template <class T>
__global__ void softmax_block_kernel(T* y, const T* x, std::int64_t rows, std::int64_t K, bool log) {
  using C = math::compute_t<T>;
  __shared__ MaxSum<C> smem[kWarp];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * K;
    MaxSum<C> ms{-std::numeric_limits<C>::infinity(), C(0)};
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) ms = add_one(ms, convert<C>(xr[k]));
    ms = block_all_merge(ms, smem);
    const C log_s = math::log(ms.s), inv = C(1) / ms.s;
    T* yr = y + row * K;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const C d = convert<C>(xr[k]) - ms.m;
      yr[k] = convert<T>(log ? d - log_s : math::exp(d) * inv);
    }
  }
}

// softmax: gx = y (g - sum(g y)); log_softmax: gx = g - exp(y) sum(g). Lanes as in
// softmax_warp_kernel.
template <class T, int kPer>
__global__ void softmax_backward_warp_kernel(T* gx, const T* y, const T* g, std::int64_t rows, std::int64_t K,
                                             bool log, int width) {
  using C = math::compute_t<T>;
  const int lane = threadIdx.x % kWarp, sub = lane % width, groups = kWarp / width;
  const std::int64_t warp = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock * groups;
  for (std::int64_t base = warp * groups; base < rows; base += step) {
    const std::int64_t row = base + lane / width;
    const std::int64_t n = row < rows ? K : 0;
    C yv[kPer], gv[kPer];
    C dot = 0;
    for (int j = 0; j < kPer; ++j) {
      const std::int64_t k = sub + j * width;
      yv[j] = k < n ? convert<C>(y[row * K + k]) : C(0);
      gv[j] = k < n ? convert<C>(g[row * K + k]) : C(0);
      dot += log ? gv[j] : gv[j] * yv[j];
    }
    dot = warp_all_sum(dot, width);
    for (int j = 0; j < kPer; ++j) {
      const std::int64_t k = sub + j * width;
      if (k < n) gx[row * K + k] = convert<T>(log ? gv[j] - math::exp(yv[j]) * dot : yv[j] * (gv[j] - dot));
    }
  }
}

template <class T>
__global__ void softmax_backward_block_kernel(T* gx, const T* y, const T* g, std::int64_t rows, std::int64_t K,
                                              bool log) {
  using C = math::compute_t<T>;
  __shared__ C smem[kWarp];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* yr = y + row * K;
    const T* gr = g + row * K;
    C dot = 0;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      dot += log ? convert<C>(gr[k]) : convert<C>(gr[k]) * convert<C>(yr[k]);
    }
    dot = block_all_sum(dot, smem);
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const C yv = convert<C>(yr[k]), gv = convert<C>(gr[k]);
      gx[row * K + k] = convert<T>(log ? gv - math::exp(yv) * dot : yv * (gv - dot));
    }
  }
}

unsigned grid_for(std::int64_t blocks) {
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 30) ? (1 << 30) : blocks));
}

// Lanes per row: the least power of two >= K, at most a warp.
int lanes_for(std::int64_t K) {
  int width = 1;
  while (width < kWarp && width < K) width *= 2;
  return width;
}

// Blocks of the warp kernels for `rows` rows of K elements.
unsigned warp_grid(std::int64_t rows, std::int64_t K) {
  const std::int64_t rows_per_block = static_cast<std::int64_t>(kRowsPerBlock) * (kWarp / lanes_for(K));
  return grid_for((rows + rows_per_block - 1) / rows_per_block);
}

// Calls f.template operator()<kPer>() with the least kPer in {1, 2, 4, ..., 32} that
// holds K elements per warp.
template <class F>
void visit_per_lane(std::int64_t K, F&& f) {
  if (K <= 32) return f.template operator()<1>();
  if (K <= 64) return f.template operator()<2>();
  if (K <= 128) return f.template operator()<4>();
  if (K <= 256) return f.template operator()<8>();
  if (K <= 512) return f.template operator()<16>();
  return f.template operator()<32>();
}

}  // namespace

void softmax_forward(const SoftmaxLayout& l, int device) {
  if (l.rows * l.K == 0) return;
  DeviceGuard guard(device);
  auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  visit_floating(l.dtype, "softmax", "cuda", [&]<class T>() {
    auto* y = static_cast<T*>(l.y);
    const auto* x = static_cast<const T*>(l.x);
    if (l.K <= kWarpRowMax) {
      visit_per_lane(l.K, [&]<int kPer>() {
        KILN_LAUNCH(softmax_warp_kernel<T, kPer>, dim3(warp_grid(l.rows, l.K)), dim3(kWarpBlock), 0, stream)(
            y, x, l.rows, l.K, l.log, lanes_for(l.K));
      });
    } else {
      KILN_LAUNCH(softmax_block_kernel<T>, dim3(grid_for(l.rows)), dim3(kRowBlock), 0, stream)(y, x, l.rows, l.K,
                                                                                              l.log);
    }
  });
}

void softmax_backward(const SoftmaxGradLayout& l, int device) {
  if (l.rows * l.K == 0) return;
  DeviceGuard guard(device);
  auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  visit_floating(l.dtype, "softmax", "cuda", [&]<class T>() {
    auto* gx = static_cast<T*>(l.gx);
    const auto* y = static_cast<const T*>(l.y);
    const auto* g = static_cast<const T*>(l.g);
    if (l.K <= kWarpRowMax) {
      visit_per_lane(l.K, [&]<int kPer>() {
        KILN_LAUNCH(softmax_backward_warp_kernel<T, kPer>, dim3(warp_grid(l.rows, l.K)), dim3(kWarpBlock), 0,
                    stream)(gx, y, g, l.rows, l.K, l.log, lanes_for(l.K));
      });
    } else {
      KILN_LAUNCH(softmax_backward_block_kernel<T>, dim3(grid_for(l.rows)), dim3(kRowBlock), 0, stream)(
          gx, y, g, l.rows, l.K, l.log);
    }
  });
}

}  // namespace kiln::cuda
