// The one launch helper for elementwise work: a grid-stride loop over [0, n) calling a
// device functor f(i). Grids are computed here, never at call sites; n == 0 launches
// nothing. Include only from .cu files (nvcc, or the SIM build's host compiler).
//
//   struct Scale { float* x; float s; __device__ void operator()(std::int64_t i) const { x[i] *= s; } };
//   kiln::cuda::launch_elementwise(n, stream, Scale{ptr, 2.f});
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/cuda/check.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/runtime.h"

namespace kiln::cuda {

inline constexpr int kElementwiseBlock = 256;
// Enough resident blocks to fill every SM several times; past that a grid-stride loop
// reuses threads instead of paying for more block launches.
inline constexpr int kElementwiseBlocksPerSm = 8;

template <class F>
__global__ void elementwise_kernel(std::int64_t n, F f) {
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    f(i);
  }
}

// Queues f(i) for every i in [0, n) on `stream` (a cudaStream_t) of the current device.
template <class F>
void launch_elementwise(std::int64_t n, void* stream, const F& f) {
  if (n <= 0) return;
  const auto& props = properties(current_device());
  const std::int64_t wanted = (n + kElementwiseBlock - 1) / kElementwiseBlock;
  const auto blocks = static_cast<unsigned>(
      std::min<std::int64_t>(wanted, std::int64_t{props.multiprocessor_count} * kElementwiseBlocksPerSm));
  KILN_LAUNCH(elementwise_kernel<F>, dim3(blocks), dim3(kElementwiseBlock), 0,
              static_cast<cudaStream_t>(stream))(n, f);
  KILN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace kiln::cuda
