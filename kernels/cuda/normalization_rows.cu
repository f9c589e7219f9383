// cuda layer normalization's row kernels over contiguous (rows, K) data, statistics in
// float (double for double); Note [Normalization formulas] in kernels/normalization_impl.h.
// Rows of up to kWarpRowMax elements live in registers, a warp per row (rows under 32
// share a warp): an exact two-pass mean and variance, butterfly sums, one read and one
// write. Longer rows get a block each (sum, sum of squared deviations, write: three reads
// of the row, the last two mostly from cache). The backward has the same two shapes around
// two row sums; dgamma / dbeta are norm_grad_sums of normalization.cu (per-row statistics).
#include <algorithm>
#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/normalization_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kWarpBlock = 128;  // threads of a warp-per-row block: 4 rows
constexpr int kRowsPerBlock = kWarpBlock / kWarp;
constexpr int kRowBlock = 512;   // threads of a block-per-row block
// 16 elements per lane at most: at 32 the kernels with gamma and beta need 255 registers
// and spill on sm_90.
constexpr std::int64_t kWarpRowMax = 512;

template <class S>
__device__ __forceinline__ S warp_all_sum(S v, int width = kWarp) {
  for (int d = width / 2; d > 0; d /= 2) v += __shfl_xor_sync(kFullMask, v, d, width);
  return v;
}

// Every thread of the (1-D) block gets the sum; smem holds kWarp values.
template <class S>
__device__ S block_all_sum(S v, S* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_all_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = S(0);
  for (int w = 0; w < warps; ++w) v += smem[w];
  __syncthreads();
  return v;
}

// `width` lanes per row (32, or the least power of two >= K, so a warp holds 32 / width
// rows), kPer elements per lane: K <= width * kPer. The loop bound is the same for every
// lane of a warp, as the shuffles need.
template <class T, class S, int kPer>
__global__ void ln_warp_kernel(T* y, const T* x, const S* gamma, const S* beta, S* mean_out, S* invstd_out,
                               std::int64_t rows, int K, S epsilon, int width) {
  const int lane = threadIdx.x % kWarp, sub = lane % width, groups = kWarp / width;
  const std::int64_t warp = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock * groups;
  for (std::int64_t base = warp * groups; base < rows; base += step) {
    const std::int64_t row = base + lane / width;
    const int n = row < rows ? K : 0;  // elements this lane's row has (32-bit: K <= kWarpRowMax)
    const T* xr = x + row * K;
    S v[kPer];
    S s = 0;
KILN_UNROLL
    for (int j = 0; j < kPer; ++j) {
      const int k = sub + j * width;
      v[j] = k < n ? convert<S>(xr[k]) : S(0);
      s += v[j];
    }
    const S mean = warp_all_sum(s, width) / static_cast<S>(K);
    S q = 0;
KILN_UNROLL
    for (int j = 0; j < kPer; ++j) {
      const S d = sub + j * width < n ? v[j] - mean : S(0);
      q += d * d;
    }
    const S invstd = S(1) / math::sqrt(warp_all_sum(q, width) / static_cast<S>(K) + epsilon);
    T* yr = y + row * K;
KILN_UNROLL
    for (int j = 0; j < kPer; ++j) {
      const int k = sub + j * width;
      if (k < n) yr[k] = convert<T>((v[j] - mean) * invstd * (gamma ? gamma[k] : S(1)) + (beta ? beta[k] : S(0)));
    }
    if (n > 0 && sub == 0) {
      mean_out[row] = mean;
      invstd_out[row] = invstd;
    }
  }
}

// A block per row: sum, sum of squared deviations, write (three reads of the row, the
// last two mostly from cache).
template <class T, class S>
__global__ void ln_block_kernel(T* y, const T* x, const S* gamma, const S* beta, S* mean_out, S* invstd_out,
                                std::int64_t rows, std::int64_t K, S epsilon) {
  __shared__ S smem[kWarp];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * K;
    S s = 0;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) s += convert<S>(xr[k]);
    const S mean = block_all_sum(s, smem) / static_cast<S>(K);
    S q = 0;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const S d = convert<S>(xr[k]) - mean;
      q += d * d;
    }
    const S invstd = S(1) / math::sqrt(block_all_sum(q, smem) / static_cast<S>(K) + epsilon);
    T* yr = y + row * K;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      yr[k] = convert<T>((convert<S>(xr[k]) - mean) * invstd * (gamma ? gamma[k] : S(1)) + (beta ? beta[k] : S(0)));
    }
    if (threadIdx.x == 0) {
      mean_out[row] = mean;
      invstd_out[row] = invstd;
    }
  }
}

// dx = invstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. Lanes as in
// ln_warp_kernel.
template <class T, class S, int kPer>
__global__ void ln_backward_warp_kernel(T* dx, const T* dy, const T* x, const S* gamma, const S* means,
                                        const S* invstds, std::int64_t rows, int K, int width) {
  const int lane = threadIdx.x % kWarp, sub = lane % width, groups = kWarp / width;
  const std::int64_t warp = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock * groups;
  for (std::int64_t base = warp * groups; base < rows; base += step) {
    const std::int64_t row = base + lane / width;
    const int n = row < rows ? K : 0;
    const S mean = n > 0 ? means[row] : S(0), invstd = n > 0 ? invstds[row] : S(0);
    const T* xr = x + row * K;
    const T* gr = dy + row * K;
    S g[kPer], xhat[kPer];
    S sg = 0, sgx = 0;
KILN_UNROLL
    for (int j = 0; j < kPer; ++j) {
      const int k = sub + j * width;
      g[j] = k < n ? convert<S>(gr[k]) * (gamma ? gamma[k] : S(1)) : S(0);
      xhat[j] = k < n ? (convert<S>(xr[k]) - mean) * invstd : S(0);
      sg += g[j];
      sgx += g[j] * xhat[j];
    }
    const S mg = warp_all_sum(sg, width) / static_cast<S>(K);
    const S mgx = warp_all_sum(sgx, width) / static_cast<S>(K);
    T* out = dx + row * K;
KILN_UNROLL
    for (int j = 0; j < kPer; ++j) {
      const int k = sub + j * width;
      if (k < n) out[k] = convert<T>(invstd * (g[j] - mg - xhat[j] * mgx));
    }
  }
}

template <class T, class S>
__global__ void ln_backward_block_kernel(T* dx, const T* dy, const T* x, const S* gamma, const S* means,
                                         const S* invstds, std::int64_t rows, std::int64_t K) {
  __shared__ S smem[kWarp];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const S mean = means[row], invstd = invstds[row];
    const T* xr = x + row * K;
    const T* gr = dy + row * K;
    S sg = 0, sgx = 0;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const S g = convert<S>(gr[k]) * (gamma ? gamma[k] : S(1));
      sg += g;
      sgx += g * (convert<S>(xr[k]) - mean) * invstd;
    }
    const S mg = block_all_sum(sg, smem) / static_cast<S>(K);
    const S mgx = block_all_sum(sgx, smem) / static_cast<S>(K);
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const S g = convert<S>(gr[k]) * (gamma ? gamma[k] : S(1));
      const S xhat = (convert<S>(xr[k]) - mean) * invstd;
      dx[row * K + k] = convert<T>(invstd * (g - mg - xhat * mgx));
    }
  }
}

// ---- launchers ----

unsigned grid_for(std::int64_t blocks) {
  return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, std::int64_t{1} << 30));
}

// Lanes per row of the layer-norm warp kernels: the least power of two >= K, at most a warp.
int lanes_for(std::int64_t K) {
  int width = 1;
  while (width < kWarp && width < K) width *= 2;
  return width;
}

unsigned warp_grid(std::int64_t rows, std::int64_t K) {
  const std::int64_t rows_per_block = static_cast<std::int64_t>(kRowsPerBlock) * (kWarp / lanes_for(K));
  return grid_for((rows + rows_per_block - 1) / rows_per_block);
}

// Calls f.template operator()<kPer>() with the least kPer in {1, 2, 4, 8, 16} that holds
// K <= kWarpRowMax elements per warp.
template <class F>
void visit_per_lane(std::int64_t K, F&& f) {
  if (K <= 32) return f.template operator()<1>();
  if (K <= 64) return f.template operator()<2>();
  if (K <= 128) return f.template operator()<4>();
  if (K <= 256) return f.template operator()<8>();
  return f.template operator()<16>();
}

cudaStream_t stream_of(int device) { return static_cast<cudaStream_t>(current_stream(device).native()); }

}  // namespace

void layer_norm_forward(const LayerNormLayout& l, int device) {
  if (l.rows * l.K == 0) return;
  DeviceGuard guard(device);
  const cudaStream_t stream = stream_of(device);
  visit_floating(l.dtype, "layer_norm", "cuda", [&]<class T>() {
    using S = math::compute_t<T>;
    auto* y = static_cast<T*>(l.y);
    const auto* x = static_cast<const T*>(l.x);
    const auto* gamma = static_cast<const S*>(l.gamma);
    const auto* beta = static_cast<const S*>(l.beta);
    auto* mean = static_cast<S*>(l.mean);
    auto* invstd = static_cast<S*>(l.invstd);
    const auto eps = static_cast<S>(l.epsilon);
    if (l.K <= kWarpRowMax) {
      visit_per_lane(l.K, [&]<int kPer>() {
        KILN_LAUNCH(ln_warp_kernel<T, S, kPer>, dim3(warp_grid(l.rows, l.K)), dim3(kWarpBlock), 0, stream)(
            y, x, gamma, beta, mean, invstd, l.rows, static_cast<int>(l.K), eps, lanes_for(l.K));
      });
    } else {
      KILN_LAUNCH(ln_block_kernel<T, S>, dim3(grid_for(l.rows)), dim3(kRowBlock), 0, stream)(
          y, x, gamma, beta, mean, invstd, l.rows, l.K, eps);
    }
  });
}

void layer_norm_backward(const LayerNormGradLayout& l, int device) {
  if (l.rows * l.K == 0) return;
  DeviceGuard guard(device);
  const cudaStream_t stream = stream_of(device);
  visit_floating(l.dtype, "layer_norm backward", "cuda", [&]<class T>() {
    using S = math::compute_t<T>;
    auto* dx = static_cast<T*>(l.dx);
    const auto* dy = static_cast<const T*>(l.dy);
    const auto* x = static_cast<const T*>(l.x);
    const auto* gamma = static_cast<const S*>(l.gamma);
    const auto* mean = static_cast<const S*>(l.mean);
    const auto* invstd = static_cast<const S*>(l.invstd);
    if (l.K <= kWarpRowMax) {
      visit_per_lane(l.K, [&]<int kPer>() {
        KILN_LAUNCH(ln_backward_warp_kernel<T, S, kPer>, dim3(warp_grid(l.rows, l.K)), dim3(kWarpBlock), 0,
                    stream)(dx, dy, x, gamma, mean, invstd, l.rows, static_cast<int>(l.K), lanes_for(l.K));
      });
    } else {
      KILN_LAUNCH(ln_backward_block_kernel<T, S>, dim3(grid_for(l.rows)), dim3(kRowBlock), 0, stream)(
          dx, dy, x, gamma, mean, invstd, l.rows, l.K);
    }
  });
}

}  // namespace kiln::cuda
