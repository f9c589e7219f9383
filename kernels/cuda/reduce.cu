// cuda implementation of the reductions over a contiguous (outer, K, inner) block, with
// the reducers of kernels/reduce_math.h. Four kernels, chosen by shape:
//   rows (inner == 1), K <= kWarpRowMax   a warp per row (rows under 32 share a warp),
//                                         __shfl_down_sync tree;
//   rows, longer                          a block per row (warps, then shared memory);
//   few long rows                         two passes: blocks reduce chunks of a row into
//                                         a workspace, then a thread per row merges them;
//   columns (inner > 1)                   (32, kColumnY) blocks: x across adjacent outputs
//                                         (coalesced), y along K, merged in shared memory;
//                                         K is split over grid.z when outputs are few.
#include <algorithm>
#include <cstdint>

#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/reduce_impl.h"

namespace kiln::cuda {
namespace {

using reduce_math::ArgAcc;
using reduce_math::MomentAcc;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kBlock = 256;               // threads of the row and chunk kernels
constexpr int kRowsPerBlock = kBlock / kWarp;
constexpr std::int64_t kWarpRowMax = 512;
constexpr int kColumnY = 16;              // column blocks are (32, kColumnY)
constexpr std::int64_t kChunk = 16 * kBlock;  // least elements per block in a two-pass row
constexpr int kMaxSplits = 64;

// ---- moving accumulators between lanes (a shuffle moves at most 8 bytes) ----

template <class V>
__device__ __forceinline__ V shfl_down(V v, int delta, int width = kWarp) {
  if constexpr (sizeof(V) < 4) {
    return static_cast<V>(__shfl_down_sync(kFullMask, static_cast<int>(v), delta, width));
  } else {
    return __shfl_down_sync(kFullMask, v, delta, width);
  }
}
template <class C>
__device__ __forceinline__ ArgAcc<C> shfl_down(ArgAcc<C> a, int delta, int width = kWarp) {
  return {shfl_down(a.value, delta, width), shfl_down(a.index, delta, width)};
}
template <class C>
__device__ __forceinline__ MomentAcc<C> shfl_down(MomentAcc<C> a, int delta, int width = kWarp) {
  return {shfl_down(a.shift, delta, width), shfl_down(a.mean, delta, width), shfl_down(a.m2, delta, width),
          shfl_down(a.n, delta, width)};
}

// Lane 0 gets the warp's combined accumulator.
template <class R>
__device__ __forceinline__ typename R::acc_t warp_reduce(const R& r, typename R::acc_t a) {
  for (int d = kWarp / 2; d > 0; d /= 2) a = r.combine(a, shfl_down(a, d));
  return a;
}

// Thread 0 gets the block's combined accumulator (1-D blocks, a multiple of 32 threads).
// `smem` holds 32 accumulators; the trailing barrier lets a caller reuse it.
template <class R>
__device__ typename R::acc_t block_reduce(const R& r, typename R::acc_t a, typename R::acc_t identity,
                                          typename R::acc_t* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  a = warp_reduce(r, a);
  if (lane == 0) smem[warp] = a;
  __syncthreads();
  if (warp == 0) {
    a = lane < static_cast<int>(blockDim.x / kWarp) ? smem[lane] : identity;
    a = warp_reduce(r, a);
  }
  __syncthreads();
  return a;
}

template <class T>
__device__ __forceinline__ T first_of(const T* row, std::int64_t K) {
  return K > 0 ? row[0] : T{};
}

// Note [Vector loads]: thread t of n steps through xr[k0, k1) in 16-byte vectors (a
// scalar head until aligned, a scalar tail), unrolled so each thread keeps several loads
// in flight: a full reduction has few threads per byte and needs that to reach the copy
// bandwidth. Every reducer's combine is order-free, so the element order may change.
template <class T>
struct alignas(16) Vec16 {
  T v[16 / sizeof(T)];
};

template <class R, class T>
__device__ typename R::acc_t strided_range(const R& r, typename R::acc_t a, const T* xr, std::int64_t k0,
                                           std::int64_t k1, int t, int n) {
  constexpr int kVec = 16 / sizeof(T);
  const auto misalign = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(xr + k0) % 16);
  std::int64_t head = misalign == 0 ? 0 : (16 - misalign) / static_cast<std::int64_t>(sizeof(T));
  head = head < k1 - k0 ? head : k1 - k0;
  for (std::int64_t k = k0 + t; k < k0 + head; k += n) a = r.step(a, xr[k], k);
  const std::int64_t base = k0 + head, vectors = (k1 - base) / kVec;
KILN_UNROLL
  for (std::int64_t v = t; v < vectors; v += n) {
    const Vec16<T> w = load_vector<Vec16<T>>(xr + base + v * kVec);
    for (int j = 0; j < kVec; ++j) a = r.step(a, w.v[j], base + v * kVec + j);
  }
  for (std::int64_t k = base + vectors * kVec + t; k < k1; k += n) a = r.step(a, xr[k], k);
  return a;
}

// ---- kernels ----

// Short rows (K <= kWarpRowMax): `width` lanes per row (a power of two, 32 unless K is
// shorter), so a warp holds 32 / width rows. Rows advance by the grid; the loop bound is
// the same for every lane of a warp, as the shuffles need.
template <class R, class T>
__global__ void rows_warp_kernel(R r, const T* x, typename R::out_t* out, std::int64_t rows, std::int64_t K,
                                 int width) {
  const int lane = threadIdx.x % kWarp, sub = lane % width, groups = kWarp / width;
  const std::int64_t warp = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock * groups;
  for (std::int64_t base = warp * groups; base < rows; base += step) {
    const std::int64_t row = base + lane / width;
    const bool valid = row < rows;
    const T* xr = x + row * K;
    typename R::acc_t a = r.init(valid ? first_of(xr, K) : T{});
    if (valid) {
      for (std::int64_t k = sub; k < K; k += width) a = r.step(a, xr[k], k);
    }
    for (int d = width / 2; d > 0; d /= 2) a = r.combine(a, shfl_down(a, d, width));
    if (valid && sub == 0) out[row] = r.finish(a, K);
  }
}

// A block per row.
template <class R, class T>
__global__ void rows_block_kernel(R r, const T* x, typename R::out_t* out, std::int64_t rows, std::int64_t K) {
  __shared__ typename R::acc_t smem[kWarp];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * K;
    const typename R::acc_t identity = r.init(first_of(xr, K));
    typename R::acc_t a = strided_range(r, identity, xr, 0, K, threadIdx.x, blockDim.x);
    a = block_reduce(r, a, identity, smem);
    if (threadIdx.x == 0) out[row] = r.finish(a, K);
  }
}

// Pass one of a long row: block (c, row) reduces chunk c into parts[c * rows + row].
template <class R, class T>
__global__ void rows_chunk_kernel(R r, const T* x, typename R::acc_t* parts, std::int64_t rows, std::int64_t K,
                                  std::int64_t chunk) {
  __shared__ typename R::acc_t smem[kWarp];
  const std::int64_t row = blockIdx.y;
  const T* xr = x + row * K;
  const typename R::acc_t identity = r.init(xr[0]);
  const std::int64_t k0 = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t k1 = k0 + chunk < K ? k0 + chunk : K;
  typename R::acc_t a = strided_range(r, identity, xr, k0, k1, threadIdx.x, blockDim.x);
  a = block_reduce(r, a, identity, smem);
  if (threadIdx.x == 0) parts[static_cast<std::int64_t>(blockIdx.x) * rows + row] = a;
}

// Columns: thread (tx, ty) of block (bx, ., z) walks k = ty + j * kColumnY within split
// z for output column i = bx * 32 + tx of every block o.
template <class R, class T>
__global__ void columns_kernel(R r, const T* x, typename R::out_t* out, typename R::acc_t* parts,
                               std::int64_t outer, std::int64_t K, std::int64_t inner, std::int64_t split_len) {
  __shared__ typename R::acc_t smem[kColumnY][kWarp];
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kWarp + threadIdx.x;
  const std::int64_t k0 = static_cast<std::int64_t>(blockIdx.z) * split_len;
  const std::int64_t k1 = k0 + split_len < K ? k0 + split_len : K;
  for (std::int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    const T* xo = x + o * K * inner;
    typename R::acc_t a = r.init(i < inner && K > 0 ? xo[i] : T{});
    if (i < inner) {
      for (std::int64_t k = k0 + threadIdx.y; k < k1; k += kColumnY) a = r.step(a, xo[k * inner + i], k);
    }
    smem[threadIdx.y][threadIdx.x] = a;
    __syncthreads();
    if (threadIdx.y == 0 && i < inner) {
      for (int y = 1; y < kColumnY; ++y) a = r.combine(a, smem[y][threadIdx.x]);
      if (parts) {
        parts[static_cast<std::int64_t>(blockIdx.z) * outer * inner + o * inner + i] = a;
      } else {
        out[o * inner + i] = r.finish(a, K);
      }
    }
    __syncthreads();
  }
}

// Pass two: output j = o * inner + i merges parts[c * outputs + j] for c < count.
template <class R, class T>
struct FinishParts {
  R r;
  const T* x;
  const typename R::acc_t* parts;
  typename R::out_t* out;
  std::int64_t count, outputs, K, inner;
  __device__ void operator()(std::int64_t j) const {
    const std::int64_t o = j / inner, i = j % inner;
    typename R::acc_t a = r.init(x[o * K * inner + i]);
    for (std::int64_t c = 0; c < count; ++c) a = r.combine(a, parts[c * outputs + j]);
    out[j] = r.finish(a, K);
  }
};

// ---- launchers ----

unsigned grid_for(std::int64_t blocks) {
  return static_cast<unsigned>(std::min<std::int64_t>(std::max<std::int64_t>(blocks, 1), 1 << 30));
}

// Lanes per row of the warp kernel: the least power of two >= K, at most a warp.
int lanes_for(std::int64_t K) {
  int width = 1;
  while (width < kWarp && width < K) width *= 2;
  return width;
}

template <class Acc>
Tensor workspace(std::int64_t count, int device) {
  return empty({count * static_cast<std::int64_t>(sizeof(Acc))}, {.dtype = DType::uint8, .device = Device::cuda(device)});
}

template <class R, class T>
void reduce_rows(const R& r, const ReduceLayout& l, int sms, cudaStream_t stream, int device) {
  const T* x = static_cast<const T*>(l.x);
  auto* out = static_cast<typename R::out_t*>(l.out);
  const std::int64_t rows = l.outer, K = l.K;
  if (K <= kWarpRowMax) {
    const int width = lanes_for(K);
    const std::int64_t rows_per_block = static_cast<std::int64_t>(kRowsPerBlock) * (kWarp / width);
    KILN_LAUNCH(rows_warp_kernel<R, T>, dim3(grid_for((rows + rows_per_block - 1) / rows_per_block)), dim3(kBlock),
                0, stream)(r, x, out, rows, K, width);
  } else if (rows >= 2 * sms || K < 2 * kChunk) {
    KILN_LAUNCH(rows_block_kernel<R, T>, dim3(grid_for(rows)), dim3(kBlock), 0, stream)(r, x, out, rows, K);
  } else {
    // Few long rows: about 8 blocks per SM in all, each over at least kChunk elements.
    const std::int64_t want = std::max<std::int64_t>(1, 8 * sms / rows);
    const std::int64_t chunks = std::min<std::int64_t>(want, (K + kChunk - 1) / kChunk);
    const std::int64_t chunk = (K + chunks - 1) / chunks;
    using Acc = typename R::acc_t;
    const Tensor ws = workspace<Acc>(chunks * rows, device);
    auto* parts = static_cast<Acc*>(ws.data_ptr());
    KILN_LAUNCH(rows_chunk_kernel<R, T>, dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rows)),
                dim3(kBlock), 0, stream)(r, x, parts, rows, K, chunk);
    launch_elementwise(rows, stream, FinishParts<R, T>{r, x, parts, out, chunks, rows, K, 1});
  }
}

template <class R, class T>
void reduce_columns(const R& r, const ReduceLayout& l, int sms, cudaStream_t stream, int device) {
  const T* x = static_cast<const T*>(l.x);
  auto* out = static_cast<typename R::out_t*>(l.out);
  const std::int64_t col_blocks = (l.inner + kWarp - 1) / kWarp;
  const std::int64_t blocks = col_blocks * l.outer;
  // Split K when the outputs alone would leave SMs idle and K is long enough to share.
  std::int64_t splits = 1;
  if (blocks < 2 * sms && l.K >= 8 * kColumnY) {
    splits = std::min<std::int64_t>({kMaxSplits, (4 * sms + blocks - 1) / blocks, l.K / (4 * kColumnY)});
  }
  const std::int64_t split_len = (l.K + splits - 1) / std::max<std::int64_t>(splits, 1);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(std::min<std::int64_t>(l.outer, 65535)),
                  static_cast<unsigned>(splits));
  using Acc = typename R::acc_t;
  if (splits == 1) {
    KILN_LAUNCH(columns_kernel<R, T>, grid, dim3(kWarp, kColumnY), 0, stream)(
        r, x, out, static_cast<Acc*>(nullptr), l.outer, l.K, l.inner, std::max<std::int64_t>(l.K, 1));
    return;
  }
  const std::int64_t outputs = l.outer * l.inner;
  const Tensor ws = workspace<Acc>(splits * outputs, device);
  auto* parts = static_cast<Acc*>(ws.data_ptr());
  KILN_LAUNCH(columns_kernel<R, T>, grid, dim3(kWarp, kColumnY), 0, stream)(r, x, out, parts, l.outer, l.K,
                                                                              l.inner, split_len);
  launch_elementwise(outputs, stream, FinishParts<R, T>{r, x, parts, out, splits, outputs, l.K, l.inner});
}

template <class T>
struct ReduceGradFn {
  reduce_math::GradParams p;
  T* gx;
  const T* x;
  const T* y;
  const T* g;
  const T* mean;
  const std::int64_t* index;
  std::int64_t K, inner;
  __device__ void operator()(std::int64_t at) const {
    using C = math::compute_t<T>;
    const std::int64_t i = at % inner, rest = at / inner;
    const std::int64_t k = rest % K, row = (rest / K) * inner + i;
    gx[at] = convert<T>(reduce_math::grad_of<C>(p, x ? convert<C>(x[at]) : C(0), k, y ? convert<C>(y[row]) : C(0),
                                                convert<C>(g[row]), mean ? convert<C>(mean[row]) : C(0),
                                                index ? index[row] : -1));
  }
};

}  // namespace

void reduce(const ReduceParams& params, const ReduceLayout& layout, int device) {
  if (layout.outer * layout.inner == 0) return;
  DeviceGuard guard(device);
  auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  const int sms = properties(device).multiprocessor_count;
  visit_dtype(layout.dtype, [&]<class T>() {
    visit_reducer<T>(params, [&](const auto& r) {
      using R = std::decay_t<decltype(r)>;
      if (layout.inner == 1) {
        reduce_rows<R, T>(r, layout, sms, stream, device);
      } else {
        reduce_columns<R, T>(r, layout, sms, stream, device);
      }
    });
  });
}

void reduce_backward(const reduce_math::GradParams& params, const ReduceGradLayout& l, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(l.dtype, [&]<class T>() {
    if constexpr (std::is_floating_point_v<math::compute_t<T>>) {
      launch_elementwise(l.outer * l.K * l.inner, stream,
                         ReduceGradFn<T>{params, static_cast<T*>(l.gx), static_cast<const T*>(l.x),
                                         static_cast<const T*>(l.y), static_cast<const T*>(l.g),
                                         static_cast<const T*>(l.mean), l.index, l.K, l.inner});
    } else {
      KILN_THROW(InternalError, "reduce_backward: non-floating dtype ", l.dtype);
    }
  });
}

}  // namespace kiln::cuda
