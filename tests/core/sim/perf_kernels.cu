// Kernels of perf_kernels.h, written the way kiln's own kernels are.
#include "perf_kernels.h"

#include <algorithm>

#include "kiln/core/cuda/kernel.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

constexpr int kReduceThreads = 256;
constexpr int kReduceMaxBlocks = 1024;  // what fills an H100 8 times over
constexpr int kTile = 16;

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Each block: a grid-stride partial per thread, a shuffle sum per warp, then warp 0 adds
// the warps' sums from shared memory.
__global__ void block_sum(const float* in, int n, float* partial) {
  __shared__ float warp_sums[kReduceThreads / 32];
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    v += in[i];
  }
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kReduceThreads / 32 ? warp_sums[lane] : 0.0f;
    v = warp_sum(v);
    if (lane == 0) partial[blockIdx.x] = v;
  }
}

__global__ void sgemm_kernel(const float* a, const float* b, float* c, int m, int n, int k) {
  __shared__ float as[kTile][kTile];
  __shared__ float bs[kTile][kTile];
  const int row = blockIdx.y * kTile + threadIdx.y;
  const int col = blockIdx.x * kTile + threadIdx.x;
  float acc = 0.0f;
  for (int t = 0; t < k; t += kTile) {
    as[threadIdx.y][threadIdx.x] = a[row * k + t + threadIdx.x];
    bs[threadIdx.y][threadIdx.x] = b[(t + threadIdx.y) * n + col];
    __syncthreads();
    for (int j = 0; j < kTile; ++j) acc += as[threadIdx.y][j] * bs[j][threadIdx.x];
    __syncthreads();
  }
  if (row < m) c[row * n + col] = acc;
}

}  // namespace

float reduce_sum(const float* in, int n) {
  const int blocks = std::min(kReduceMaxBlocks, (n + 4 * kReduceThreads - 1) / (4 * kReduceThreads));
  DeviceArray<float> partial(blocks), total(1);
  KILN_LAUNCH(block_sum, blocks, kReduceThreads, 0, nullptr)(in, n, partial.get());
  KILN_LAUNCH(block_sum, 1, kReduceThreads, 0, nullptr)(partial.get(), blocks, total.get());
  return total.to_host()[0];
}

void sgemm_tiled(const float* a, const float* b, float* c, int m, int n, int k) {
  KILN_LAUNCH(sgemm_kernel, dim3(n / kTile, m / kTile), dim3(kTile, kTile), 0, nullptr)(
      a, b, c, m, n, k);
}

}  // namespace kiln::sim::test
