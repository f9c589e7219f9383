// One checking path for every CUDA runtime, cuBLAS, cuDNN and NCCL result.
//   KILN_CUDA_CHECK(cudaMalloc(&p, n));
//   KILN_LIB_CHECK(CublasResult, cublasSgemm(...));   // a library adds a traits type
// A failure throws kiln::CudaError (or OutOfMemoryError for allocation failures) whose
// message names the library, the call as written, the error name and description, and
// the file and line.
#pragma once

#include "kiln/core/cuda/cuda_api.h"
#include "kiln/core/error.h"

namespace kiln::cuda {

// A library traits type provides: using result = ...; static bool ok(result);
// static const char* name(result); static const char* describe(result);
// static bool out_of_memory(result); static constexpr const char* library.
struct RuntimeResult {
  using result = cudaError_t;
  static constexpr const char* library = "CUDA";
  static bool ok(result r) { return r == cudaSuccess; }
  static const char* name(result r) { return cudaGetErrorName(r); }
  static const char* describe(result r) { return cudaGetErrorString(r); }
  static bool out_of_memory(result r) { return r == cudaErrorMemoryAllocation; }
  // A non-sticky error stays in the runtime's last-error slot; clear it so the next
  // cudaGetLastError() (the launch check) does not report it a second time.
  static void clear() { (void)cudaGetLastError(); }
};

namespace detail {
[[noreturn]] void raise_library_error(const char* library, const char* name,
                                      const char* description, bool out_of_memory,
                                      const char* call, const char* file, int line);
}  // namespace detail

template <class Traits>
inline void check_result(typename Traits::result r, const char* call, const char* file,
                         int line) {
  if (Traits::ok(r)) [[likely]] return;
  if constexpr (requires { Traits::clear(); }) Traits::clear();
  detail::raise_library_error(Traits::library, Traits::name(r), Traits::describe(r),
                              Traits::out_of_memory(r), call, file, line);
}

}  // namespace kiln::cuda

#define KILN_LIB_CHECK(Traits, expr) ::kiln::cuda::check_result<Traits>((expr), #expr, __FILE__, __LINE__)
#define KILN_CUDA_CHECK(expr) KILN_LIB_CHECK(::kiln::cuda::RuntimeResult, expr)
