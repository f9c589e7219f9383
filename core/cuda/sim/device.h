// CUDA's device-side language for the SIM build: qualifiers, built-in variables, block
// barriers and warp collectives, with math and atomics in device_math.h and
// device_atomics.h. Included by core/cuda/kernel.h only, so that kernels stay plain CUDA.
//
// How CUDA constructs map onto the CPU:
//   __global__ __device__ __host__   nothing (kernels are ordinary C++ functions);
//                                    __noinline__ is left undefined: libstdc++ spells
//                                    __attribute__((__noinline__)) and would break
//   __shared__                       `static thread_local`: a block runs entirely on one
//                                    OS thread and blocks on a thread run one after
//                                    another, so each running block has its own copy.
//                                    Unlike dynamic shared memory it is not poisoned: it
//                                    starts zeroed and keeps the previous block's values
//   threadIdx blockIdx blockDim gridDim   thread_local variables the block scheduler sets
//                                    whenever it switches CUDA threads (blockDim and
//                                    gridDim are uint3 here, dim3 in CUDA: same members)
//   __syncthreads, warp collectives  suspend the calling fiber until every participant
//                                    arrives (Note [Block execution] in block.cpp)
// Shuffles and votes follow the PTX definitions (shfl.sync, vote.sync): a lane reading
// from a lane that does not take part (outside the mask, exited, or past the end of a
// partial warp) gets poison, all bits set (NaN for floats), where a GPU gives an
// undefined value. __activemask() waits until every lane of the warp has exited, waits
// somewhere, or calls it too, and returns the lanes that called it: the lanes that
// would be converged there on a GPU.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kiln/core/cuda/sim/runtime.h"
#include "kiln/core/cuda/sim/vector_functions.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static thread_local
#define __constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

#define KILN_SIM_TLS __attribute__((tls_model("initial-exec")))

// constinit: no dynamic initialisation, so reading one is a single %fs-relative load
// with no TLS wrapper call, and the compiler can keep it in a register inside loops.
extern thread_local constinit uint3 threadIdx KILN_SIM_TLS;
extern thread_local constinit uint3 blockIdx KILN_SIM_TLS;
extern thread_local constinit uint3 blockDim KILN_SIM_TLS;
extern thread_local constinit uint3 gridDim KILN_SIM_TLS;
inline constexpr int warpSize = 32;

namespace kiln::sim::detail {

extern thread_local constinit unsigned char* t_dynamic_shared KILN_SIM_TLS;

enum class WarpOp : std::uint8_t {
  shfl_idx, shfl_up, shfl_down, shfl_xor,  // param: source lane, delta, lane mask
  ballot, any, all, sync, activemask,
  reduce_add_u, reduce_min_u, reduce_max_u, reduce_min_i, reduce_max_i,
};

enum class BarrierOp : std::uint8_t { sync, count, all, any };

// Waits for the warp's participants and returns this lane's result (warp.cpp).
std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int param,
                              int width);
// Waits for every thread of the block; returns the count / and / or of the predicates.
int block_barrier(BarrierOp op, int predicate);
unsigned active_mask();
// Inside a kernel: records a misaligned-address fault naming kernel, block and thread,
// and ends the launch. Outside a kernel (host code calling device helpers): does nothing.
void misaligned_access(const void* address, std::size_t alignment, const char* what);

inline void check_alignment(const void* p, std::size_t alignment, const char* what) {
  if ((reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) != 0) [[unlikely]] {
    misaligned_access(p, alignment, what);
  }
}

template <class T>
T shuffle(WarpOp op, unsigned mask, T var, int param, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles move values of at most 8 bytes, as on the GPU");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = warp_collective(op, mask, bits, param, width);
  T out = var;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace kiln::sim::detail

inline void __syncthreads() {
  kiln::sim::detail::block_barrier(kiln::sim::detail::BarrierOp::sync, 0);
}
inline int __syncthreads_count(int predicate) {
  return kiln::sim::detail::block_barrier(kiln::sim::detail::BarrierOp::count, predicate);
}
inline int __syncthreads_and(int predicate) {
  return kiln::sim::detail::block_barrier(kiln::sim::detail::BarrierOp::all, predicate);
}
inline int __syncthreads_or(int predicate) {
  return kiln::sim::detail::block_barrier(kiln::sim::detail::BarrierOp::any, predicate);
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  kiln::sim::detail::warp_collective(kiln::sim::detail::WarpOp::sync, mask, 0, 0, warpSize);
}
inline unsigned __activemask() { return kiln::sim::detail::active_mask(); }
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::ballot, mask, predicate != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::any, mask, predicate != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::all, mask, predicate != 0, 0, warpSize));
}

template <class T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  return kiln::sim::detail::shuffle(kiln::sim::detail::WarpOp::shfl_idx, mask, var, srcLane, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {
  return kiln::sim::detail::shuffle(kiln::sim::detail::WarpOp::shfl_up, mask, var,
                                    static_cast<int>(delta), width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {
  return kiln::sim::detail::shuffle(kiln::sim::detail::WarpOp::shfl_down, mask, var,
                                    static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  return kiln::sim::detail::shuffle(kiln::sim::detail::WarpOp::shfl_xor, mask, var, laneMask,
                                    width);
}

// Warp reductions (sm_80+).
inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::reduce_add_u, mask, value, 0, warpSize));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::reduce_min_u, mask, value, 0, warpSize));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::reduce_max_u, mask, value, 0, warpSize));
}
inline int __reduce_add_sync(unsigned mask, int value) {
  return static_cast<int>(__reduce_add_sync(mask, static_cast<unsigned>(value)));
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return static_cast<int>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::reduce_min_i, mask, static_cast<std::uint32_t>(value), 0,
      warpSize));
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return static_cast<int>(kiln::sim::detail::warp_collective(
      kiln::sim::detail::WarpOp::reduce_max_i, mask, static_cast<std::uint32_t>(value), 0,
      warpSize));
}

#include "kiln/core/cuda/sim/device_atomics.h"
#include "kiln/core/cuda/sim/device_math.h"
