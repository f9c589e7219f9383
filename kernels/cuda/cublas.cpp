// The cuBLAS handle cache (see cublas.h). Compiled in every build; empty unless the
// real CUDA toolkit is there (KILN_CUDA=ON).
#if KILN_HAS_CUDA && !KILN_CUDA_SIM
#include "kiln/kernels/cuda/cublas.h"

#include <map>
#include <mutex>
#include <utility>

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/runtime.h"

namespace kiln::cuda {
namespace {

// cuBLAS asks for 32 MiB of workspace on Hopper and 4 MiB before it (cuBLAS docs,
// cublasSetWorkspace); too little only narrows its choice of kernels.
std::size_t workspace_bytes(int device) {
  return properties(device).major >= 9 ? std::size_t{32} << 20 : std::size_t{4} << 20;
}

struct Handles {
  std::mutex mutex;
  std::map<std::pair<int, void*>, cublasHandle_t> by_stream;
};

// Handles and their workspaces live for the process: destroying them during static
// destruction would race the CUDA runtime's own teardown, and a stream address that is
// reused later gets a handle already bound to it.
Handles& handles() {
  static Handles* h = new Handles;
  return *h;
}

}  // namespace

cublasHandle_t cublas_handle(int device, void* stream) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mutex);
  auto [it, inserted] = h.by_stream.try_emplace({device, stream}, nullptr);
  if (!inserted) return it->second;
  cublasHandle_t handle = nullptr;
  try {
    KILN_LIB_CHECK(CublasResult, cublasCreate(&handle));
    KILN_LIB_CHECK(CublasResult, cublasSetStream(handle, static_cast<cudaStream_t>(stream)));
    // After cublasSetStream, which resets the workspace to cuBLAS's own pool.
    const std::size_t bytes = workspace_bytes(device);
    void* workspace = device_allocator(device).allocate(bytes, stream);
    KILN_LIB_CHECK(CublasResult, cublasSetWorkspace(handle, workspace, bytes));
  } catch (...) {
    if (handle != nullptr) cublasDestroy(handle);
    h.by_stream.erase(it);
    throw;
  }
  it->second = handle;
  return handle;
}

}  // namespace kiln::cuda
#endif
