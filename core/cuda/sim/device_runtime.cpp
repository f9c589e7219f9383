// Devices, streams, events and kernel attributes of the emulated runtime.
// Streams run their work at enqueue time (Note [Synchronous streams] in runtime.h), so a
// stream is a device tag and an event a host-clock timestamp.
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "kiln/core/cuda/sim/state.h"

namespace kiln::sim::detail {
namespace {

// CUDA's stream priorities on an H100: 0 (least) to -5 (greatest).
constexpr int kLeastPriority = 0;
constexpr int kGreatestPriority = -5;

struct HandleState {
  std::mutex mutex;
  std::unordered_set<CUstream_st*> streams;
  std::unordered_set<CUevent_st*> events;
  std::unordered_map<const void*, std::size_t> max_dynamic_shared;  // per kernel
};

HandleState& handles() {
  static auto* h = new HandleState();  // never destroyed: handles may be freed by statics
  return *h;
}

thread_local int t_current_device = 0;

bool is_default_stream(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread;
}

bool live_event(cudaEvent_t e) {
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  return h.events.count(e) != 0;
}

cudaError_t bad_event(const char* call) {
  return fail(cudaErrorInvalidResourceHandle, std::string(call) + ": not a live event");
}

}  // namespace

int current_device() { return t_current_device; }

cudaError_t check_device(int device) {
  const Settings& s = settings();
  if (!s.init_error.empty()) return fail(cudaErrorInitializationError, s.init_error);
  if (s.devices == 0) return fail(cudaErrorNoDevice, "KILN_SIM_DEVICES=0");
  if (device < 0 || device >= s.devices) {
    return fail(cudaErrorInvalidDevice, "device " + std::to_string(device) + " of " +
                                            std::to_string(s.devices) + " (KILN_SIM_DEVICES)");
  }
  const cudaError_t sticky = sticky_error(device);
  return sticky != cudaSuccess ? fail(sticky, "") : cudaSuccess;
}

cudaError_t stream_device(cudaStream_t stream, int* device) {
  if (is_default_stream(stream)) {
    *device = current_device();
    return cudaSuccess;
  }
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  if (h.streams.count(stream) == 0) {
    return fail(cudaErrorInvalidResourceHandle, "not a live stream (destroyed, or never created)");
  }
  *device = stream->device;
  return cudaSuccess;
}

std::size_t max_dynamic_shared_bytes(const void* kernel) {
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  auto it = h.max_dynamic_shared.find(kernel);
  return it == h.max_dynamic_shared.end() ? kSharedBytesDefault : it->second;
}

}  // namespace kiln::sim::detail

using namespace kiln::sim::detail;

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: count is null");
  *count = 0;
  const Settings& s = settings();
  if (!s.init_error.empty()) return fail(cudaErrorInitializationError, s.init_error);
  if (s.devices == 0) return fail(cudaErrorNoDevice, "KILN_SIM_DEVICES=0");
  *count = s.devices;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  const Settings& s = settings();
  if (!s.init_error.empty()) return fail(cudaErrorInitializationError, s.init_error);
  if (device < 0 || device >= s.devices) {
    return fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) + ") with " +
                                            std::to_string(s.devices) + " devices");
  }
  t_current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDevice: device is null");
  *device = t_current_device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: prop is null");
  const Settings& s = settings();
  if (!s.init_error.empty()) return fail(cudaErrorInitializationError, s.init_error);
  if (device < 0 || device >= s.devices) {
    return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties(" + std::to_string(device) + ")");
  }
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "kiln SIM (emulated H100)");
  prop->totalGlobalMem = kiln::sim::memory_limit();
  prop->sharedMemPerBlock = kSharedBytesDefault;
  prop->regsPerBlock = 65536;
  prop->warpSize = kWarpSize;
  prop->memPitch = 2147483647;
  prop->maxThreadsPerBlock = kMaxThreadsPerBlock;
  for (int i = 0; i < 3; ++i) {
    prop->maxThreadsDim[i] = static_cast<int>(kMaxBlockDim[i]);
    prop->maxGridSize[i] = static_cast<int>(kMaxGridDim[i]);
  }
  prop->clockRate = 1980000;  // kHz
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->canMapHostMemory = 1;
  prop->concurrentKernels = 1;
  prop->pciBusID = device + 1;
  prop->asyncEngineCount = 3;
  prop->unifiedAddressing = 1;
  prop->memoryClockRate = 2619000;  // kHz
  prop->memoryBusWidth = 5120;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerMultiprocessor = 65536;
  prop->managedMemory = 1;
  prop->sharedMemPerBlockOptin = kSharedBytesOptin;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return check_device(current_device()); }

cudaError_t cudaDeviceGetStreamPriorityRange(int* leastPriority, int* greatestPriority) {
  if (leastPriority != nullptr) *leastPriority = kLeastPriority;
  if (greatestPriority != nullptr) *greatestPriority = kGreatestPriority;
  return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int* canAccessPeer, int device, int peerDevice) {
  if (canAccessPeer == nullptr) return fail(cudaErrorInvalidValue, "canAccessPeer is null");
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  if (const cudaError_t err = check_device(peerDevice); err != cudaSuccess) return err;
  *canAccessPeer = device != peerDevice ? 1 : 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peerDevice, unsigned int flags) {
  if (flags != 0) return fail(cudaErrorInvalidValue, "cudaDeviceEnablePeerAccess: flags must be 0");
  if (peerDevice == current_device()) {
    return fail(cudaErrorInvalidDevice, "cudaDeviceEnablePeerAccess: a device is not its own peer");
  }
  return check_device(peerDevice);
}

cudaError_t cudaRuntimeGetVersion(int* runtimeVersion) {
  if (runtimeVersion == nullptr) return fail(cudaErrorInvalidValue, "runtimeVersion is null");
  *runtimeVersion = 12040;  // the API level the emulator follows: CUDA 12.4
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* driverVersion) { return cudaRuntimeGetVersion(driverVersion); }

cudaError_t cudaStreamCreate(cudaStream_t* pStream) {
  return cudaStreamCreateWithPriority(pStream, cudaStreamDefault, kLeastPriority);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags) {
  return cudaStreamCreateWithPriority(pStream, flags, kLeastPriority);
}

cudaError_t cudaStreamCreateWithPriority(cudaStream_t* pStream, unsigned int flags,
                                         int priority) {
  if (pStream == nullptr) return fail(cudaErrorInvalidValue, "cudaStreamCreate: pStream is null");
  if (flags > cudaStreamNonBlocking) {
    return fail(cudaErrorInvalidValue, "cudaStreamCreate: unknown flags " + std::to_string(flags));
  }
  const int device = current_device();
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  // CUDA clamps priorities into the device's range.
  const int clamped = std::min(kLeastPriority, std::max(kGreatestPriority, priority));
  auto* s = new CUstream_st{device, flags, clamped};
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  h.streams.insert(s);
  *pStream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (is_default_stream(stream)) {
    return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: the default stream");
  }
  HandleState& h = handles();
  {
    std::lock_guard lock(h.mutex);
    if (h.streams.erase(stream) == 0) {
      return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a live stream");
    }
  }
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  int device = 0;
  if (const cudaError_t err = stream_device(stream, &device); err != cudaSuccess) return err;
  return check_device(device);
}

cudaError_t cudaStreamQuery(cudaStream_t stream) { return cudaStreamSynchronize(stream); }

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  int device = 0;
  if (const cudaError_t err = stream_device(stream, &device); err != cudaSuccess) return err;
  if (!live_event(event)) return bad_event("cudaStreamWaitEvent");
  (void)flags;
  return check_device(device);
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (event == nullptr) return fail(cudaErrorInvalidValue, "cudaEventCreate: event is null");
  if (flags > (cudaEventBlockingSync | cudaEventDisableTiming)) {
    return fail(cudaErrorInvalidValue, "cudaEventCreate: unknown flags " + std::to_string(flags));
  }
  const int device = current_device();
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  auto* e = new CUevent_st{device, flags, false, {}};
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  h.events.insert(e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  int device = 0;
  if (const cudaError_t err = stream_device(stream, &device); err != cudaSuccess) return err;
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  if (h.events.count(event) == 0) return bad_event("cudaEventRecord");
  if (event->device != device) {
    return fail(cudaErrorInvalidResourceHandle,
                "cudaEventRecord: event of device " + std::to_string(event->device) +
                    " recorded on a stream of device " + std::to_string(device));
  }
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();
  const cudaError_t sticky = sticky_error(device);
  return sticky != cudaSuccess ? fail(sticky, "") : cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (!live_event(event)) return bad_event("cudaEventQuery");
  return check_device(event->device);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) { return cudaEventQuery(event); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: ms is null");
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  if (h.events.count(start) == 0 || h.events.count(end) == 0) {
    return bad_event("cudaEventElapsedTime");
  }
  if (((start->flags | end->flags) & cudaEventDisableTiming) != 0) {
    return fail(cudaErrorInvalidResourceHandle,
                "cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
  }
  if (!start->recorded || !end->recorded) {
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was not recorded");
  }
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  HandleState& h = handles();
  {
    std::lock_guard lock(h.mutex);
    if (h.events.erase(event) == 0) return bad_event("cudaEventDestroy");
  }
  delete event;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: null");
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
    return value >= -1 && value <= 100
               ? cudaSuccess
               : fail(cudaErrorInvalidValue, "carveout must be -1 or 0..100");
  }
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: unsupported attribute " +
                                           std::to_string(static_cast<int>(attr)));
  }
  if (value < 0 || static_cast<std::size_t>(value) > kSharedBytesOptin) {
    return fail(cudaErrorInvalidValue,
                "cudaFuncSetAttribute: max dynamic shared memory " + std::to_string(value) +
                    " bytes is over the opt-in limit of " + std::to_string(kSharedBytesOptin));
  }
  HandleState& h = handles();
  std::lock_guard lock(h.mutex);
  h.max_dynamic_shared[func] = static_cast<std::size_t>(value);
  return cudaSuccess;
}
