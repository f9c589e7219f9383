// Portability macros shared by host and device code.
// KILN_HOST_DEVICE marks element math that CPU and CUDA share (activation formulas,
// Philox, fp16/bf16 conversion): __host__ __device__ under nvcc, nothing elsewhere
// (plain C++ and the SIM build, where "device" code is host code).
#pragma once

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#define KILN_FORCEINLINE __forceinline__
#else
#define KILN_HOST_DEVICE
#define KILN_FORCEINLINE inline __attribute__((always_inline))
#endif
