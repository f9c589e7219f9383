// cuda batch normalization, and the per-column gradient sums layer norm shares, over
// contiguous (rows, C) data; statistics in float (double for double). Note [Normalization
// formulas] in kernels/normalization_impl.h. Layer norm's row kernels: normalization_rows.cu.
//   statistics   channel tiles (Note [Channel tiles]) of per-thread Welford accumulators
//                (Note [Shifted Welford]), Chan-merged across the block and then, a warp
//                per channel, across the row splits; its lane 0 also updates the running
//                statistics.
//   grad sums    the same tiles summing dy and dy * xhat (per-channel or per-row stats).
//   normalize, dx   elementwise (core's launch helper), 16-byte packets of channels when
//                C and the pointers allow.
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kiln/core/convert.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/cuda/loops.cuh"
#include "kiln/kernels/math.h"
#include "kiln/kernels/normalization_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kTileThreads = 256;        // threads of a channel-tile block
constexpr std::int64_t kRowsPerThread = 8;  // least rows a tile thread walks in its split
constexpr int kBlocksPerSm = 8;          // channel-tile blocks wanted per SM
constexpr int kFinishBlock = 256;        // finish kernels: 8 channels per block, a warp each

// ---- accumulators ----

// Welford's (mean, sum of squared deviations, count) of a set; Chan et al.'s merge. The
// count is kept in S: exact to 2^24 in float, and only its ratios enter the merge.
template <class S>
struct Welford {
  S mean, m2, n;
};
template <class S>
__device__ __forceinline__ Welford<S> welford_add(Welford<S> a, S x) {
  a.n += S(1);
  const S d = x - a.mean;
  a.mean += d / a.n;
  a.m2 += d * (x - a.mean);
  return a;
}
template <class S>
__device__ __forceinline__ Welford<S> welford_merge(Welford<S> a, Welford<S> b) {
  if (b.n == S(0)) return a;
  if (a.n == S(0)) return b;
  const S n = a.n + b.n, d = b.mean - a.mean, fb = b.n / n;
  a.mean += d * fb;
  a.m2 += b.m2 + d * d * a.n * fb;
  a.n = n;
  return a;
}

// Note [Shifted Welford]
// Each channel's values enter as x - x[0, c]: every partial of a channel shares the
// shift, so merges are unchanged, and for data like 1e4 + noise the running mean is of
// the noise (ulp ~1e-7) rather than of 1e4 (ulp ~1e-3), whose roundings, one per element,
// would otherwise add up. The mean gets the shift back once, at the end.

// sum(dy) and sum(dy * (x - mean)) (per row: times invstd) of a set.
template <class S>
struct GradSums {
  S dy, dy_xhat;
};

struct WelfordMerge {
  template <class S>
  __device__ Welford<S> operator()(Welford<S> a, Welford<S> b) const { return welford_merge(a, b); }
};
struct SumsMerge {
  template <class S>
  __device__ GradSums<S> operator()(GradSums<S> a, GradSums<S> b) const {
    return {a.dy + b.dy, a.dy_xhat + b.dy_xhat};
  }
};

// ---- channel tiles ----

// Note [Channel tiles]
// x (rows, C), channels innermost. A (lanes, depth) block covers `lanes` adjacent channels
// (the least power of two >= C, at most a warp; depth = kTileThreads / lanes) and one split
// of the rows: thread (tx, ty) of block (bx, s) walks rows ty, ty + depth, ... of split s
// for channel bx * lanes + tx, so a warp reads 32 adjacent elements (coalesced) even when
// C < 32. The depth threads of a channel merge in shared memory; thread ty == 0 writes the
// (split, channel) partial, and a warp per channel merges the splits. Splits are as many
// as fill the SMs kBlocksPerSm times, each at least kRowsPerThread rows per thread.
struct Tiles {
  int lanes = 1, depth = kTileThreads;
  std::int64_t tiles = 0, splits = 1, split_len = 0;
};

Tiles tiles_for(std::int64_t rows, std::int64_t C, int sms) {
  Tiles t;
  while (t.lanes < kWarp && t.lanes < C) t.lanes *= 2;
  t.depth = kTileThreads / t.lanes;
  t.tiles = (C + t.lanes - 1) / t.lanes;
  const std::int64_t want = (std::int64_t{kBlocksPerSm} * sms + t.tiles - 1) / t.tiles;
  const std::int64_t most = (rows + t.depth * kRowsPerThread - 1) / (t.depth * kRowsPerThread);
  t.splits = std::clamp<std::int64_t>(std::min(want, most), 1, 65535);
  t.split_len = (rows + t.splits - 1) / t.splits;
  if (t.split_len > 0) t.splits = (rows + t.split_len - 1) / t.split_len;  // no empty split
  return t;
}

// Merges the depth accumulators of each channel; thread ty == 0 gets its channel's.
// depth is a power of two; smem holds kTileThreads accumulators.
template <class Acc, class Merge>
__device__ Acc merge_depth(Acc a, Acc* smem, Merge merge) {
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  smem[t] = a;
  __syncthreads();
  for (int half = blockDim.y / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.y) < half) {
      a = merge(a, smem[t + half * blockDim.x]);
      smem[t] = a;
    }
    __syncthreads();
  }
  return a;
}

template <class T, class S>
__global__ void welford_tiles_kernel(const T* x, Welford<S>* parts, std::int64_t rows, std::int64_t C,
                                     std::int64_t split_len) {
  __shared__ Welford<S> smem[kTileThreads];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * split_len;
  const std::int64_t r1 = r0 + split_len < rows ? r0 + split_len : rows;
  Welford<S> a{S(0), S(0), S(0)};
  if (c < C) {
    const S shift = convert<S>(x[c]);  // Note [Shifted Welford]
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      a = welford_add(a, convert<S>(x[r * C + c]) - shift);
    }
  }
  a = merge_depth(a, smem, WelfordMerge{});
  if (threadIdx.y == 0 && c < C) parts[static_cast<std::int64_t>(blockIdx.y) * C + c] = a;
}

template <class T, class S, bool PerRow>
__global__ void grad_sums_tiles_kernel(const T* dy, const T* x, const S* mean, const S* invstd,
                                       GradSums<S>* parts, std::int64_t rows, std::int64_t C,
                                       std::int64_t split_len) {
  __shared__ GradSums<S> smem[kTileThreads];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * split_len;
  const std::int64_t r1 = r0 + split_len < rows ? r0 + split_len : rows;
  GradSums<S> a{S(0), S(0)};
  if (c < C) {
    const S m = PerRow ? S(0) : mean[c];
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      const S g = convert<S>(dy[r * C + c]), v = convert<S>(x[r * C + c]);
      a.dy += g;
      a.dy_xhat += PerRow ? g * (v - mean[r]) * invstd[r] : g * (v - m);
    }
  }
  a = merge_depth(a, smem, SumsMerge{});
  if (threadIdx.y == 0 && c < C) parts[static_cast<std::int64_t>(blockIdx.y) * C + c] = a;
}

// ---- merging the splits: a warp per channel ----

template <class S>
__device__ __forceinline__ Welford<S> shfl_down(Welford<S> a, int d) {
  return {__shfl_down_sync(kFullMask, a.mean, d), __shfl_down_sync(kFullMask, a.m2, d),
          __shfl_down_sync(kFullMask, a.n, d)};
}
template <class S>
__device__ __forceinline__ GradSums<S> shfl_down(GradSums<S> a, int d) {
  return {__shfl_down_sync(kFullMask, a.dy, d), __shfl_down_sync(kFullMask, a.dy_xhat, d)};
}

// Lane 0 gets the merge of channel c's `splits` partials: lane l takes splits l, l + 32,
// ..., then a shuffle tree (a chain of up to 65535 merges would take as long as the tiles).
template <class Acc, class Merge>
__device__ Acc merge_splits(const Acc* parts, std::int64_t splits, std::int64_t C, std::int64_t c, Acc a,
                            Merge merge) {
  for (std::int64_t s = threadIdx.x % kWarp; s < splits; s += kWarp) a = merge(a, parts[s * C + c]);
  for (int d = kWarp / 2; d > 0; d /= 2) a = merge(a, shfl_down(a, d));
  return a;
}

// The warp of channel c (uniform across the warp, so a warp leaves whole).
__device__ __forceinline__ std::int64_t warp_channel() {
  return static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
}

// Writes mean / invstd and updates the running statistics; x's row 0 holds the shifts.
template <class T, class S>
__global__ void finish_stats_kernel(const T* x, const Welford<S>* parts, std::int64_t splits, std::int64_t C,
                                    std::int64_t rows, S* mean, S* invstd, S* running_mean, S* running_var, S keep,
                                    S take, S epsilon) {
  const std::int64_t c = warp_channel();
  if (c >= C) return;
  const Welford<S> a = merge_splits(parts, splits, C, c, Welford<S>{S(0), S(0), S(0)}, WelfordMerge{});
  if (threadIdx.x % kWarp != 0) return;
  const S n = static_cast<S>(rows), var = a.m2 / n;
  const S mu = convert<S>(x[c]) + a.mean;
  mean[c] = mu;
  invstd[c] = S(1) / math::sqrt(var + epsilon);
  running_mean[c] = running_mean[c] * keep + mu * take;
  running_var[c] = running_var[c] * keep + var * take;  // biased, as Keras 3
}

// invstd: per channel, or null when the sums already hold xhat (per-row statistics).
template <class S>
__global__ void finish_sums_kernel(const GradSums<S>* parts, std::int64_t splits, std::int64_t C, const S* invstd,
                                   S* sum_dy, S* sum_dy_xhat) {
  const std::int64_t c = warp_channel();
  if (c >= C) return;
  const GradSums<S> a = merge_splits(parts, splits, C, c, GradSums<S>{S(0), S(0)}, SumsMerge{});
  if (threadIdx.x % kWarp != 0) return;
  sum_dy[c] = a.dy;
  sum_dy_xhat[c] = invstd ? a.dy_xhat * invstd[c] : a.dy_xhat;
}

// Inference (the running statistics), or a training batch of no rows (mean 0, var 0,
// running statistics untouched).
template <class S>
struct FixedStats {
  const S* running_mean;
  const S* running_var;
  S* mean;
  S* invstd;
  S epsilon;
  __device__ void operator()(std::int64_t c) const {
    mean[c] = running_mean ? running_mean[c] : S(0);
    invstd[c] = S(1) / math::sqrt((running_var ? running_var[c] : S(0)) + epsilon);
  }
};

// ---- elementwise passes: work item i covers the N channels [i * N, i * N + N) ----

template <class T, class S, int N, class Index>
struct ApplyFn {
  T* y;
  const T* x;
  const S* mean;
  const S* invstd;
  const S* gamma;
  const S* beta;
  Index C;
  __device__ void operator()(std::int64_t i) const {
    const Index j = static_cast<Index>(i) * N, c0 = j % C;
    const auto in = load_vector<Packet<T, N>>(x + j);
    Packet<T, N> out;
KILN_UNROLL
    for (int k = 0; k < N; ++k) {
      const Index c = c0 + k;
      const S scale = invstd[c] * (gamma ? gamma[c] : S(1));
      out.v[k] = convert<T>((convert<S>(in.v[k]) - mean[c]) * scale + (beta ? beta[c] : S(0)));
    }
    store_vector(y + j, out);
  }
};

template <class T, class S, int N, class Index>
struct BackwardFn {
  T* dx;
  const T* dy;
  const T* x;
  const S* mean;
  const S* invstd;
  const S* gamma;
  const S* sum_dy;
  const S* sum_dy_xhat;
  S inv_rows;  // 1 / M
  bool training;
  Index C;
  __device__ void operator()(std::int64_t i) const {
    const Index j = static_cast<Index>(i) * N, c0 = j % C;
    const auto g = load_vector<Packet<T, N>>(dy + j);
    const auto v = load_vector<Packet<T, N>>(x + j);
    Packet<T, N> out;
KILN_UNROLL
    for (int k = 0; k < N; ++k) {
      const Index c = c0 + k;
      const S is = invstd[c], scale = is * (gamma ? gamma[c] : S(1));
      S d = convert<S>(g.v[k]);
      if (training) d -= sum_dy[c] * inv_rows + (convert<S>(v.v[k]) - mean[c]) * is * sum_dy_xhat[c] * inv_rows;
      out.v[k] = convert<T>(scale * d);
    }
    store_vector(dx + j, out);
  }
};

// Calls launch.template operator()<N, Index>() with N = 16-byte packets of T when C and
// every pointer allow, else 1; Index 32-bit when the elements allow.
template <class T, class Launch>
void with_packets(std::int64_t numel, std::int64_t C, std::initializer_list<const void*> ptrs, Launch&& launch) {
  constexpr int kVec = kVectorWidth<T>;
  bool vec = C % kVec == 0;
  for (const void* p : ptrs) vec = vec && packet_aligned<kVec>(static_cast<const T*>(p));
  const bool small = numel <= std::int64_t{0xffffffff};
  if (vec && small) return launch.template operator()<kVec, std::uint32_t>();
  if (vec) return launch.template operator()<kVec, std::int64_t>();
  if (small) return launch.template operator()<1, std::uint32_t>();
  return launch.template operator()<1, std::int64_t>();
}

// ---- launchers ----

// Blocks of the finish kernels: a warp per channel (C / 8 blocks fit grid.x's 2^31 - 1).
unsigned finish_grid(std::int64_t C) {
  const std::int64_t per_block = kFinishBlock / kWarp;
  return static_cast<unsigned>((C + per_block - 1) / per_block);
}

template <class Acc>
Tensor workspace(std::int64_t count, int device) {
  return empty({count * static_cast<std::int64_t>(sizeof(Acc))}, {.dtype = DType::uint8, .device = Device::cuda(device)});
}

cudaStream_t stream_of(int device) { return static_cast<cudaStream_t>(current_stream(device).native()); }

}  // namespace

void batch_norm_stats(const BatchNormStatsLayout& l, int device) {
  if (l.C == 0) return;
  DeviceGuard guard(device);
  const cudaStream_t stream = stream_of(device);
  visit_floating(l.dtype, "batch_norm", "cuda", [&]<class T>() {
    using S = math::compute_t<T>;
    auto* mean = static_cast<S*>(l.mean);
    auto* invstd = static_cast<S*>(l.invstd);
    auto* rm = static_cast<S*>(l.running_mean);
    auto* rv = static_cast<S*>(l.running_var);
    const auto eps = static_cast<S>(l.epsilon);
    if (!l.training || l.rows == 0) {
      launch_elementwise(l.C, stream,
                         FixedStats<S>{l.training ? nullptr : rm, l.training ? nullptr : rv, mean, invstd, eps});
      return;
    }
    const Tiles t = tiles_for(l.rows, l.C, properties(device).multiprocessor_count);
    const Tensor ws = workspace<Welford<S>>(t.splits * l.C, device);
    auto* parts = static_cast<Welford<S>*>(ws.data_ptr());
    KILN_LAUNCH(welford_tiles_kernel<T, S>, dim3(static_cast<unsigned>(t.tiles), static_cast<unsigned>(t.splits)),
                dim3(t.lanes, t.depth), 0, stream)(static_cast<const T*>(l.x), parts, l.rows, l.C, t.split_len);
    KILN_LAUNCH(finish_stats_kernel<T, S>, dim3(finish_grid(l.C)), dim3(kFinishBlock), 0, stream)(
        static_cast<const T*>(l.x), parts, t.splits, l.C, l.rows, mean, invstd, rm, rv, static_cast<S>(l.momentum),
        static_cast<S>(1.0 - l.momentum), eps);
  });
}

void batch_norm_apply(const BatchNormApplyLayout& l, int device) {
  const std::int64_t numel = l.rows * l.C;
  if (numel == 0) return;
  DeviceGuard guard(device);
  void* stream = stream_of(device);
  visit_floating(l.dtype, "batch_norm", "cuda", [&]<class T>() {
    using S = math::compute_t<T>;
    with_packets<T>(numel, l.C, {l.x, l.y}, [&]<int N, class Index>() {
      launch_elementwise(numel / N, stream,
                         ApplyFn<T, S, N, Index>{static_cast<T*>(l.y), static_cast<const T*>(l.x),
                                                 static_cast<const S*>(l.mean), static_cast<const S*>(l.invstd),
                                                 static_cast<const S*>(l.gamma), static_cast<const S*>(l.beta),
                                                 static_cast<Index>(l.C)});
    });
  });
}

void norm_grad_sums(const NormGradSumsLayout& l, int device) {
  if (l.C == 0) return;
  DeviceGuard guard(device);
  const cudaStream_t stream = stream_of(device);
  visit_floating(l.dtype, "normalization backward", "cuda", [&]<class T>() {
    using S = math::compute_t<T>;
    const Tiles t = tiles_for(l.rows, l.C, properties(device).multiprocessor_count);
    const Tensor ws = workspace<GradSums<S>>(t.splits * l.C, device);
    auto* parts = static_cast<GradSums<S>*>(ws.data_ptr());
    const auto* dy = static_cast<const T*>(l.dy);
    const auto* x = static_cast<const T*>(l.x);
    const auto* mean = static_cast<const S*>(l.mean);
    const auto* invstd = static_cast<const S*>(l.invstd);
    const dim3 grid(static_cast<unsigned>(t.tiles), static_cast<unsigned>(t.splits)), block(t.lanes, t.depth);
    if (l.per_row) {
      KILN_LAUNCH(grad_sums_tiles_kernel<T, S, true>, grid, block, 0, stream)(dy, x, mean, invstd, parts, l.rows,
                                                                              l.C, t.split_len);
    } else {
      KILN_LAUNCH(grad_sums_tiles_kernel<T, S, false>, grid, block, 0, stream)(dy, x, mean, invstd, parts, l.rows,
                                                                               l.C, t.split_len);
    }
    KILN_LAUNCH(finish_sums_kernel<S>, dim3(finish_grid(l.C)), dim3(kFinishBlock), 0, stream)(
        parts, t.splits, l.C, l.per_row ? nullptr : invstd, static_cast<S*>(l.sum_dy), static_cast<S*>(l.sum_dy_xhat));
  });
}

void batch_norm_backward(const BatchNormGradLayout& l, int device) {
  const std::int64_t numel = l.rows * l.C;
  if (numel == 0) return;
  DeviceGuard guard(device);
  void* stream = stream_of(device);
  visit_floating(l.dtype, "batch_norm backward", "cuda", [&]<class T>() {
    using S = math::compute_t<T>;
    with_packets<T>(numel, l.C, {l.x, l.dy, l.dx}, [&]<int N, class Index>() {
      launch_elementwise(numel / N, stream,
                         BackwardFn<T, S, N, Index>{
                             static_cast<T*>(l.dx), static_cast<const T*>(l.dy), static_cast<const T*>(l.x),
                             static_cast<const S*>(l.mean), static_cast<const S*>(l.invstd),
                             static_cast<const S*>(l.gamma), static_cast<const S*>(l.sum_dy),
                             static_cast<const S*>(l.sum_dy_xhat), S(1) / static_cast<S>(l.rows), l.training,
                             static_cast<Index>(l.C)});
    });
  });
}

}  // namespace kiln::cuda
