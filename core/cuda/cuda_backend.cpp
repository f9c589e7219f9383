// The real backends of the allocators over the CUDA runtime (or the SIM emulator, which
// implements the same calls): DeviceBackend for CachingAllocator, HostBackend for
// PinnedAllocator, and the process-wide device_allocator(index). ON and SIM builds only.
#include <array>
#include <cstdlib>
#include <atomic>
#include <memory>
#include <mutex>

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/check.h"
#include "kiln/core/cuda/cuda_api.h"
#include "kiln/core/cuda/pinned_allocator.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/device.h"

// KILN_CUDA_CHECK for a result already in hand, with the call spelled out.
#define KILN_CHECK_RESULT(result, call) \
  ::kiln::cuda::check_result<::kiln::cuda::RuntimeResult>((result), call, __FILE__, __LINE__)

namespace kiln::cuda {
namespace {

// Out of memory is an answer the allocators act on (flush and retry), not an error:
// it becomes nullptr, with the runtime's last-error slot cleared. Anything else throws.
template <class Alloc>
void* alloc_or_null(Alloc alloc, const char* call) {
  void* ptr = nullptr;
  const cudaError_t r = alloc(&ptr);
  if (r == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return nullptr;
  }
  KILN_CHECK_RESULT(r, call);
  return ptr;
}

bool query(void* event) {
  const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (r == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  KILN_CHECK_RESULT(r, "cudaEventQuery(event)");
  return true;
}

void* create_event_on_current_device() {
  cudaEvent_t e = nullptr;
  KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

class CudaDeviceBackend final : public DeviceBackend {
 public:
  explicit CudaDeviceBackend(int device) : device_(device) {}

  void* malloc(std::size_t bytes) override {
    DeviceGuard guard(device_);
    return alloc_or_null([bytes](void** p) { return cudaMalloc(p, bytes); },
                         "cudaMalloc(&ptr, bytes)");
  }
  void free(void* ptr) override {
    DeviceGuard guard(device_);
    KILN_CUDA_CHECK(cudaFree(ptr));
  }
  void* create_event() override {
    DeviceGuard guard(device_);
    return create_event_on_current_device();
  }
  void record_event(void* event, void* stream) override {
    DeviceGuard guard(device_);
    KILN_CUDA_CHECK(
        cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)));
  }
  bool query_event(void* event) override { return query(event); }
  void destroy_event(void* event) override {
    KILN_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
  }
  void synchronize() override {
    DeviceGuard guard(device_);
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
  }
  std::size_t total_memory() override { return memory_info(device_).total; }

 private:
  int device_;
};

class CudaHostBackend final : public HostBackend {
 public:
  void* host_alloc(std::size_t bytes) override {
    return alloc_or_null(
        [bytes](void** p) { return cudaHostAlloc(p, bytes, cudaHostAllocDefault); },
        "cudaHostAlloc(&ptr, bytes, cudaHostAllocDefault)");
  }
  void host_free(void* ptr) override { KILN_CUDA_CHECK(cudaFreeHost(ptr)); }
  int current_device() override { return cuda::current_device(); }
  void* record_event(void* stream, int device) override {
    DeviceGuard guard(device);
    void* e = create_event_on_current_device();
    const cudaError_t r =
        cudaEventRecord(static_cast<cudaEvent_t>(e), static_cast<cudaStream_t>(stream));
    if (r != cudaSuccess) (void)cudaEventDestroy(static_cast<cudaEvent_t>(e));
    KILN_CHECK_RESULT(r, "cudaEventRecord(event, stream)");
    return e;
  }
  bool query_event(void* event) override { return query(event); }
  void destroy_event(void* event) override {
    KILN_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
  }
};

// One allocator per device, made on first use and never destroyed: tensors held in
// static objects may be freed after any static destructor ran, and the CUDA runtime
// itself may be gone at exit (the driver reclaims device memory with the process).
struct DeviceAllocators {
  static constexpr int kMaxDevices = 64;
  std::array<std::atomic<CachingAllocator*>, kMaxDevices> allocators{};
  std::mutex mutex;
};

DeviceAllocators& all_allocators() {
  static auto* all = new DeviceAllocators;
  return *all;
}

}  // namespace

CachingAllocator& device_allocator(int index) {
  DeviceAllocators& all = all_allocators();
  if (index >= 0 && index < DeviceAllocators::kMaxDevices) {
    if (CachingAllocator* a = all.allocators[index].load(std::memory_order_acquire)) return *a;
  }
  check_device(Device::cuda(index), "device_allocator");
  KILN_CHECK(index < DeviceAllocators::kMaxDevices, DeviceError, "device_allocator: cuda:", index,
             " is past the ", DeviceAllocators::kMaxDevices, " devices kiln supports");
  std::lock_guard<std::mutex> lock(all.mutex);
  auto& slot = all.allocators[index];
  if (slot.load(std::memory_order_relaxed) == nullptr) {
    auto* backend = new CudaDeviceBackend(index);  // lives as long as its allocator: forever
    AllocatorConfig config;
    const char* no_caching = std::getenv("KILN_CUDA_NO_CACHING");
    config.cache = !(no_caching && *no_caching && *no_caching != '0');
    slot.store(new CachingAllocator(index, *backend, config), std::memory_order_release);
  }
  return *slot.load(std::memory_order_relaxed);
}

HostBackend& cuda_host_backend() {
  static auto* backend = new CudaHostBackend;  // never destroyed, like the allocators
  return *backend;
}

}  // namespace kiln::cuda
