// cuDNN for KILN_CUDA=ON builds (SIM has no vendor libraries: include this only under
// `#if !KILN_CUDA_SIM`, and link kiln_cudnn for its headers). Results are checked through
// core's one path:
//   KILN_LIB_CHECK(kiln::cuda::CudnnResult, cudnnConvolutionForward(...));
// and the handle comes from cudnn_handle(): one per (device, host thread), bound to the
// stream the caller passes. The convolution itself is kernels/cuda/cudnn_conv.cpp, behind
// the entry points of kernels/conv_impl.h; what it exposes here is for tests and benchmarks.
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <optional>

#include "kiln/core/cuda/check.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cuda/conv_algo_cache.h"

namespace kiln::cuda {

struct CudnnResult {
  using result = cudnnStatus_t;
  static constexpr const char* library = "cuDNN";
  static bool ok(result r) { return r == CUDNN_STATUS_SUCCESS; }
  static const char* name(result r) { return cudnnGetErrorString(r); }
  // cuDNN 9 keeps a per-thread message for the last failure that says which parameter it
  // rejected and why; the status name alone rarely does.
  static const char* describe(result) {
    thread_local char message[1024];
    message[0] = '\0';
    cudnnGetLastErrorString(message, sizeof(message));
    return message[0] != '\0' ? message
                              : "no details from cuDNN (run with CUDNN_LOGERR_DBG=1 CUDNN_LOGDEST_DBG=stderr)";
  }
  static bool out_of_memory(result r) {
    return r == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
           r == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
  }
};

// Drops cuDNN's per-thread message of a failure the caller expected and handled (a probe of
// an algorithm that does not apply), so a later failure is not described by it.
inline void forget_cudnn_error() {
  char message[256];
  cudnnGetLastErrorString(message, sizeof(message));
}

// RAII owners of cuDNN descriptors (created in the constructor, destroyed in the destructor).
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { KILN_LIB_CHECK(CudnnResult, Create(&d_)); }
  ~CudnnDescriptor() { (void)Destroy(d_); }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  T get() const { return d_; }

 private:
  T d_ = nullptr;
};
using TensorDescriptor =
    CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor =
    CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                                              cudnnDestroyConvolutionDescriptor>;

// The handle of `device` for this host thread, bound to `stream` (a cudaStream_t) with
// cudnnSetStream on every call; the caller must have `device` current. Handles are created
// on first use and go back to a per-device pool when their thread exits (never destroyed:
// destroying them during static destruction would race the CUDA runtime's own teardown).
cudnnHandle_t cudnn_handle(int device, void* stream);

// What the cuDNN convolution path has done in this process, for tests and tools.
struct CudnnConvStats {
  std::int64_t plans = 0;              // problems set up (descriptors made)
  std::int64_t heuristic_choices = 0;  // directions chosen by cudnnGet*Algorithm_v7
  std::int64_t timed_choices = 0;      // directions chosen by timing (cudnnFind*AlgorithmEx)
  std::int64_t cached_choices = 0;     // directions found in the algorithm cache (memory or disk)
  std::int64_t native_fallbacks = 0;   // directions cuDNN offered no algorithm for (native path runs)
};
CudnnConvStats cudnn_conv_stats();

// Forgets every problem set up so far (descriptors and chosen algorithms): the next call of
// each problem consults the algorithm cache again, as a new process would. Combine with
// set_conv_algo_cache_file(file) to reload the file. Calls in flight keep their plans alive.
void reset_cudnn_conv_plans();

// The algorithm the cuDNN path runs for `direction` of `g` (its first batch chunk) on
// `device`, once a call has chosen it; nullopt before, or when the native path runs it.
// For benchmarks that call cuDNN directly with the same algorithm.
std::optional<ConvAlgoChoice> cudnn_conv_choice(const ConvGeometry& g, ConvDirection direction, int device = 0);

}  // namespace kiln::cuda
