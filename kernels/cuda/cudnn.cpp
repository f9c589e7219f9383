// cuDNN handles and the run-time check that the cuDNN found at load time is the one kiln was
// built against (see cudnn.h). KILN_CUDA=ON builds only.
#include "kiln/kernels/cuda/cudnn.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

#include "kiln/core/cuda/runtime.h"

namespace kiln::cuda {
namespace {

// Handles whose threads have exited, per device, for the next thread that needs one.
struct HandlePool {
  std::mutex mutex;
  std::vector<std::pair<int, cudnnHandle_t>> idle;
};
HandlePool& handle_pool() {
  static HandlePool* pool = new HandlePool;  // leaked: thread exits during teardown still find it
  return *pool;
}

// This thread's handles, (device, handle); they go back to the pool when the thread exits.
struct ThreadHandles {
  std::vector<std::pair<int, cudnnHandle_t>> held;
  ThreadHandles() = default;
  ThreadHandles(const ThreadHandles&) = delete;
  ThreadHandles& operator=(const ThreadHandles&) = delete;
  ~ThreadHandles() {
    HandlePool& pool = handle_pool();
    std::lock_guard<std::mutex> lock(pool.mutex);
    pool.idle.insert(pool.idle.end(), held.begin(), held.end());
  }
};

cudnnHandle_t pooled_or_new_handle(int device) {
  HandlePool& pool = handle_pool();
  {
    std::lock_guard<std::mutex> lock(pool.mutex);
    const auto it = std::find_if(pool.idle.begin(), pool.idle.end(), [&](const auto& e) { return e.first == device; });
    if (it != pool.idle.end()) {
      const cudnnHandle_t handle = it->second;
      pool.idle.erase(it);
      return handle;
    }
  }
  cudnnHandle_t handle = nullptr;
  KILN_LIB_CHECK(CudnnResult, cudnnCreate(&handle));  // on the current device: the caller's
  return handle;
}

}  // namespace

cudnnHandle_t cudnn_handle(int device, void* stream) {
  thread_local ThreadHandles mine;
  cudnnHandle_t handle = nullptr;
  for (const auto& [d, h] : mine.held) {
    if (d == device) handle = h;
  }
  if (handle == nullptr) {
    handle = pooled_or_new_handle(device);
    mine.held.emplace_back(device, handle);
  }
  // Every call: the caller's current stream may have changed since the last one (a
  // StreamGuard), and cudnnSetStream only stores the stream.
  KILN_LIB_CHECK(CudnnResult, cudnnSetStream(handle, static_cast<cudaStream_t>(stream)));
  return handle;
}

bool cudnn_available() {
  static const bool available = [] {
    if (!is_available()) return false;  // no GPU: nothing to run cuDNN on
    // cuDNN 9 keeps its ABI within the major version; the sub-library checks catch a
    // partial install (libcudnn.so without libcudnn_cnn.so, or mixed versions).
    const std::size_t version = cudnnGetVersion();
    const bool ok = version / 10000 == CUDNN_MAJOR && cudnnOpsVersionCheck() == CUDNN_STATUS_SUCCESS &&
                    cudnnCnnVersionCheck() == CUDNN_STATUS_SUCCESS;
    if (!ok) {
      std::fprintf(stderr,
                   "kiln: the cuDNN loaded at run time (version %zu) does not match the cuDNN %d kiln was built "
                   "with, or its sub-libraries are missing; conv2d uses kiln's native convolution\n",
                   version, CUDNN_VERSION);
    }
    return ok;
  }();
  return available;
}

}  // namespace kiln::cuda
