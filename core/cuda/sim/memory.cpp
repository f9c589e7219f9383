// Device and pinned host memory, copies and memsets.
//
// Note [Device memory]: a device allocation is a plain heap block of exactly the size
// asked for (so ASan flags an access one byte past it), aligned to 256 bytes as
// cudaMalloc's are, and filled with 0xFF bytes: NaN as float, -1 as integers, so an
// output a kernel forgot to write shows. Each device counts its bytes against
// KILN_SIM_MEMORY. A registry of live blocks lets copies and memsets check that their
// device side lies inside one allocation, the check a GPU makes with a fault.
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <sstream>
#include <unordered_set>

#include "kiln/core/cuda/sim/state.h"

namespace kiln::sim::detail {
namespace {

constexpr std::size_t kDeviceAlignment = 256;
constexpr unsigned char kPoisonByte = 0xFF;

struct Block {
  std::size_t bytes;
  int device;
};

struct MemoryState {
  std::mutex mutex;
  std::map<std::uintptr_t, Block> blocks;     // device allocations by start address
  std::unordered_set<void*> host_blocks;      // cudaHostAlloc / cudaMallocHost
  std::size_t in_use[kMaxDevices] = {};
};

MemoryState& memory() {
  static auto* m = new MemoryState();  // never destroyed: frees may come from late statics
  return *m;
}

std::string describe(const void* p, std::size_t n) {
  std::ostringstream os;
  os << n << " bytes at " << p;
  return os.str();
}

// The device owning all of [p, p + n), or -1 when that range is not inside one live
// device allocation.
int device_of_range(const void* p, std::size_t n) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  MemoryState& m = memory();
  std::lock_guard lock(m.mutex);
  auto it = m.blocks.upper_bound(a);
  if (it == m.blocks.begin()) return -1;
  --it;
  const std::uintptr_t offset = a - it->first;
  const bool inside = offset < it->second.bytes && n <= it->second.bytes - offset;
  return inside ? it->second.device : -1;
}

cudaError_t check_device_range(const void* p, std::size_t n, const char* call, const char* role) {
  if (device_of_range(p, n) >= 0) return cudaSuccess;
  return fail(cudaErrorInvalidValue, std::string(call) + ": " + role + " (" + describe(p, n) +
                                         ") is not inside one device allocation");
}

// Infers cudaMemcpyDefault and checks the device sides of an explicit kind.
cudaError_t check_copy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind,
                       const char* call) {
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return cudaSuccess;
  if (kind == cudaMemcpyHostToDevice) return check_device_range(dst, n, call, "destination");
  if (kind == cudaMemcpyDeviceToHost) return check_device_range(src, n, call, "source");
  if (kind == cudaMemcpyDeviceToDevice) {
    const cudaError_t err = check_device_range(dst, n, call, "destination");
    return err != cudaSuccess ? err : check_device_range(src, n, call, "source");
  }
  return fail(cudaErrorInvalidMemcpyDirection,
              std::string(call) + ": kind " + std::to_string(static_cast<int>(kind)));
}

cudaError_t copy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind, int device,
                 const char* call) {
  if (n == 0) return cudaSuccess;
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  if (dst == nullptr || src == nullptr) {
    return fail(cudaErrorInvalidValue, std::string(call) + ": null pointer");
  }
  if (const cudaError_t err = check_copy(dst, src, n, kind, call); err != cudaSuccess) return err;
  std::memmove(dst, src, n);
  return cudaSuccess;
}

cudaError_t set(void* p, int value, std::size_t n, int device, const char* call) {
  if (n == 0) return cudaSuccess;
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  if (const cudaError_t err = check_device_range(p, n, call, "destination"); err != cudaSuccess) {
    return err;
  }
  std::memset(p, value, n);
  return cudaSuccess;
}

}  // namespace
}  // namespace kiln::sim::detail

namespace kiln::sim {
std::size_t memory_in_use(int device) {
  if (device < 0 || device >= detail::kMaxDevices) return 0;
  detail::MemoryState& m = detail::memory();
  std::lock_guard lock(m.mutex);
  return m.in_use[device];
}
}  // namespace kiln::sim

using namespace kiln::sim::detail;

cudaError_t cudaMalloc(void** devPtr, std::size_t size) {
  if (devPtr == nullptr) return fail(cudaErrorInvalidValue, "cudaMalloc: devPtr is null");
  *devPtr = nullptr;
  const int device = current_device();
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  if (size == 0) return cudaSuccess;
  const std::size_t limit = kiln::sim::memory_limit();
  MemoryState& m = memory();
  {
    std::lock_guard lock(m.mutex);
    if (size > limit || m.in_use[device] > limit - size) {
      std::ostringstream os;
      os << "cudaMalloc of " << size << " bytes on device " << device << ": " << m.in_use[device]
         << " of " << limit << " bytes in use (KILN_SIM_MEMORY)";
      return fail(cudaErrorMemoryAllocation, os.str());
    }
    m.in_use[device] += size;
  }
  void* p = ::operator new(size, std::align_val_t(kDeviceAlignment), std::nothrow);
  if (p == nullptr) {
    std::lock_guard lock(m.mutex);
    m.in_use[device] -= size;
    return fail(cudaErrorMemoryAllocation, "cudaMalloc: the host is out of memory");
  }
  std::memset(p, kPoisonByte, size);
  {
    std::lock_guard lock(m.mutex);
    m.blocks[reinterpret_cast<std::uintptr_t>(p)] = Block{size, device};
  }
  *devPtr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* devPtr) {
  if (devPtr == nullptr) return cudaSuccess;
  MemoryState& m = memory();
  int device = 0;
  {
    std::lock_guard lock(m.mutex);
    auto it = m.blocks.find(reinterpret_cast<std::uintptr_t>(devPtr));
    if (it == m.blocks.end()) {
      std::ostringstream os;
      os << "cudaFree: " << devPtr << " is not the start of a live device allocation";
      return fail(cudaErrorInvalidValue, os.str());
    }
    device = it->second.device;
    m.in_use[device] -= it->second.bytes;
    m.blocks.erase(it);
  }
  ::operator delete(devPtr, std::align_val_t(kDeviceAlignment));
  const cudaError_t sticky = sticky_error(device);
  return sticky != cudaSuccess ? fail(sticky, "") : cudaSuccess;
}

cudaError_t cudaHostAlloc(void** pHost, std::size_t size, unsigned int flags) {
  if (pHost == nullptr) return fail(cudaErrorInvalidValue, "cudaHostAlloc: pHost is null");
  *pHost = nullptr;
  if (flags > (cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined)) {
    return fail(cudaErrorInvalidValue, "cudaHostAlloc: unknown flags " + std::to_string(flags));
  }
  if (size == 0) return cudaSuccess;
  void* p = ::operator new(size, std::align_val_t(kDeviceAlignment), std::nothrow);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation, "cudaHostAlloc: host out of memory");
  MemoryState& m = memory();
  std::lock_guard lock(m.mutex);
  m.host_blocks.insert(p);
  *pHost = p;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, std::size_t size) {
  return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

cudaError_t cudaFreeHost(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  MemoryState& m = memory();
  {
    std::lock_guard lock(m.mutex);
    if (m.host_blocks.erase(ptr) == 0) {
      std::ostringstream os;
      os << "cudaFreeHost: " << ptr << " was not allocated by cudaHostAlloc/cudaMallocHost";
      return fail(cudaErrorInvalidValue, os.str());
    }
  }
  ::operator delete(ptr, std::align_val_t(kDeviceAlignment));
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  const int device = current_device();
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  if (free == nullptr || total == nullptr) {
    return fail(cudaErrorInvalidValue, "cudaMemGetInfo: null output pointer");
  }
  const std::size_t limit = kiln::sim::memory_limit();
  const std::size_t used = kiln::sim::memory_in_use(device);
  *total = limit;
  *free = used < limit ? limit - used : 0;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  if (attributes == nullptr) {
    return fail(cudaErrorInvalidValue, "cudaPointerGetAttributes: attributes is null");
  }
  *attributes = cudaPointerAttributes{cudaMemoryTypeUnregistered, -1, nullptr, nullptr};
  const int device = device_of_range(ptr, 0);
  if (device >= 0) {
    *attributes = {cudaMemoryTypeDevice, device, const_cast<void*>(ptr), nullptr};
    return cudaSuccess;
  }
  MemoryState& m = memory();
  std::lock_guard lock(m.mutex);
  if (m.host_blocks.count(const_cast<void*>(ptr)) != 0) {
    *attributes = {cudaMemoryTypeHost, current_device(), const_cast<void*>(ptr),
                   const_cast<void*>(ptr)};
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind) {
  return copy(dst, src, count, kind, current_device(), "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  int device = 0;
  if (const cudaError_t err = stream_device(stream, &device); err != cudaSuccess) return err;
  return copy(dst, src, count, kind, device, "cudaMemcpyAsync");
}

cudaError_t cudaMemcpyPeer(void* dst, int dstDevice, const void* src, int srcDevice,
                           std::size_t count) {
  if (const cudaError_t err = check_device(srcDevice); err != cudaSuccess) return err;
  return copy(dst, src, count, cudaMemcpyDeviceToDevice, dstDevice, "cudaMemcpyPeer");
}

cudaError_t cudaMemcpyPeerAsync(void* dst, int dstDevice, const void* src, int srcDevice,
                                std::size_t count, cudaStream_t stream) {
  int device = 0;
  if (const cudaError_t err = stream_device(stream, &device); err != cudaSuccess) return err;
  if (const cudaError_t err = check_device(srcDevice); err != cudaSuccess) return err;
  return copy(dst, src, count, cudaMemcpyDeviceToDevice, dstDevice, "cudaMemcpyPeerAsync");
}

cudaError_t cudaMemset(void* devPtr, int value, std::size_t count) {
  return set(devPtr, value, count, current_device(), "cudaMemset");
}

cudaError_t cudaMemsetAsync(void* devPtr, int value, std::size_t count, cudaStream_t stream) {
  int device = 0;
  if (const cudaError_t err = stream_device(stream, &device); err != cudaSuccess) return err;
  return set(devPtr, value, count, device, "cudaMemsetAsync");
}
