// cuBLAS for KILN_CUDA=ON builds (SIM has no vendor libraries: include this only under
// `#if !KILN_CUDA_SIM`). One handle per (device, stream), created on first use and kept
// for the process, with its workspace from the device's caching allocator; results are
// checked through core's one path:
//   KILN_LIB_CHECK(kiln::cuda::CublasResult, cublasGemmEx(...));
#pragma once

#include <cublas_v2.h>

#include "kiln/core/cuda/check.h"

namespace kiln::cuda {

struct CublasResult {
  using result = cublasStatus_t;
  static constexpr const char* library = "cuBLAS";
  static bool ok(result r) { return r == CUBLAS_STATUS_SUCCESS; }
  static const char* name(result r) { return cublasGetStatusName(r); }
  static const char* describe(result r) { return cublasGetStatusString(r); }
  static bool out_of_memory(result r) { return r == CUBLAS_STATUS_ALLOC_FAILED; }
};

// The handle bound to `stream` (a cudaStream_t) of `device`; the caller must have
// `device` current. Not for concurrent use by two host threads on one stream (kiln
// queues a stream's work from one thread at a time).
cublasHandle_t cublas_handle(int device, void* stream);

}  // namespace kiln::cuda
