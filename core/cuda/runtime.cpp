// The CUDA runtime seam over the real runtime (ON) or the SIMT emulator (SIM).
#include "kiln/core/cuda/runtime.h"

#include <mutex>
#include <vector>

#include "kiln/core/cuda/check.h"

namespace kiln::cuda {
namespace {

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }

struct DeviceCount {
  int count = 0;
  std::string reason;
};

// Asked once: a machine without a GPU reports cudaErrorNoDevice or
// cudaErrorInsufficientDriver here, which means zero devices, not a failure.
const DeviceCount& probe_devices() {
  static const DeviceCount probed = [] {
    DeviceCount d;
    const cudaError_t err = cudaGetDeviceCount(&d.count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      d.count = 0;
      d.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    } else if (d.count == 0) {
      d.reason = "the CUDA runtime reports no device";
    }
    return d;
  }();
  return probed;
}

void check_index(int index, const char* op) { check_device(Device::cuda(index), op); }

}  // namespace

int device_count() { return probe_devices().count; }
bool is_available() { return device_count() > 0; }
bool is_simulated() { return KILN_CUDA_SIM != 0; }
std::string unavailable_reason() { return probe_devices().reason; }

int current_device() {
  int d = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int index) {
  check_index(index, "set_device");
  KILN_CUDA_CHECK(cudaSetDevice(index));
}

void synchronize_device(int index) {
  DeviceGuard guard(index);
  KILN_CUDA_CHECK(cudaDeviceSynchronize());
}

const DeviceProperties& properties(int index) {
  check_index(index, "properties");
  static std::mutex mutex;
  static std::vector<DeviceProperties> cache(device_count());
  static std::vector<bool> filled(device_count(), false);
  std::lock_guard lock(mutex);
  if (!filled[index]) {
    cudaDeviceProp p{};
    KILN_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
    DeviceProperties& out = cache[index];
    out.name = p.name;
    out.major = p.major;
    out.minor = p.minor;
    out.multiprocessor_count = p.multiProcessorCount;
    out.max_threads_per_block = p.maxThreadsPerBlock;
    out.shared_memory_per_block = p.sharedMemPerBlock;
    out.shared_memory_per_block_optin = p.sharedMemPerBlockOptin;
    out.warp_size = p.warpSize;
    out.total_memory = p.totalGlobalMem;
    filled[index] = true;
  }
  return cache[index];
}

MemoryInfo memory_info(int index) {
  DeviceGuard guard(index);
  MemoryInfo info;
  KILN_CUDA_CHECK(cudaMemGetInfo(&info.free, &info.total));
  return info;
}

DeviceGuard::DeviceGuard(int index) {
  check_index(index, "DeviceGuard");
  previous_ = current_device();
  if (previous_ != index) KILN_CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::~DeviceGuard() {
  // A destructor must not throw; a failure to restore is left for the next checked call.
  if (previous_ >= 0) (void)cudaSetDevice(previous_);
}

// Note [Stream ownership]: a Stream made by Stream::create owns its cudaStream_t through
// a shared Owned; copies share it and the last one destroys it. The default stream has no
// Owned and is never destroyed.
struct Stream::Owned {
  int device;
  cudaStream_t stream = nullptr;
  ~Owned() {
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) return;
    (void)cudaSetDevice(device);
    (void)cudaStreamDestroy(stream);
    (void)cudaSetDevice(previous);
  }
};

Stream Stream::default_stream(int device) {
  check_index(device, "Stream::default_stream");
  return Stream(device, nullptr);
}

Stream Stream::create(int device, bool high_priority) {
  DeviceGuard guard(device);
  int least = 0, greatest = 0;
  KILN_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  auto owned = std::make_shared<Owned>();
  owned->device = device;
  KILN_CUDA_CHECK(cudaStreamCreateWithPriority(&owned->stream, cudaStreamNonBlocking,
                                               high_priority ? greatest : least));
  return Stream(device, std::move(owned));
}

void* Stream::native() const { return owned_ ? owned_->stream : nullptr; }

bool Stream::query() const {
  DeviceGuard guard(device_);
  const cudaError_t err = cudaStreamQuery(as_stream(native()));
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  KILN_CUDA_CHECK(err);
  return true;
}

void Stream::synchronize() const {
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaStreamSynchronize(as_stream(native())));
}

void Stream::wait(const Event& e) const {
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaStreamWaitEvent(as_stream(native()), as_event(e.native()), 0));
}

namespace {
// Per thread, per device: the stream kiln queues work on (null = the default stream).
thread_local std::vector<Stream> t_current_streams;
}  // namespace

Stream current_stream(int device) {
  if (device >= 0 && device < static_cast<int>(t_current_streams.size())) {
    return t_current_streams[device];
  }
  return Stream::default_stream(device);
}

StreamGuard::StreamGuard(const Stream& s)
    : previous_(current_stream(s.device())), device_guard_(s.device()) {
  if (static_cast<int>(t_current_streams.size()) <= s.device()) {
    for (int d = static_cast<int>(t_current_streams.size()); d <= s.device(); ++d) {
      t_current_streams.push_back(Stream::default_stream(d));
    }
  }
  t_current_streams[s.device()] = s;
}

StreamGuard::~StreamGuard() { t_current_streams[previous_.device()] = previous_; }

Event::Event(int device, bool timing) : device_(device) {
  DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  event_ = e;
}

Event::~Event() {
  if (event_) (void)cudaEventDestroy(as_event(event_));
}

Event::Event(Event&& other) noexcept : device_(other.device_), event_(other.event_) {
  other.event_ = nullptr;
}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (event_) (void)cudaEventDestroy(as_event(event_));
    device_ = other.device_;
    event_ = other.event_;
    other.event_ = nullptr;
  }
  return *this;
}

void Event::record(const Stream& s) {
  KILN_CHECK(s.device() == device_, DeviceError, "Event::record: event of cuda:", device_,
             " cannot be recorded on a stream of cuda:", s.device());
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaEventRecord(as_event(event_), as_stream(s.native())));
}

bool Event::query() const {
  const cudaError_t err = cudaEventQuery(as_event(event_));
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  KILN_CUDA_CHECK(err);
  return true;
}

void Event::synchronize() const { KILN_CUDA_CHECK(cudaEventSynchronize(as_event(event_))); }

float Event::elapsed_ms(const Event& start, const Event& end) {
  float ms = 0.f;
  KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, as_event(start.event_), as_event(end.event_)));
  return ms;
}

}  // namespace kiln::cuda
