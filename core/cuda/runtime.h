// The CUDA runtime seam: devices, the device guard, Stream and Event, memory info.
// Works in all three builds: with KILN_CUDA=OFF device_count() is 0 and the rest raises
// DeviceError; a machine whose driver reports no device (or "insufficient driver") also
// has zero cuda devices. Handles are plain pointers here so that this header does not
// pull in the CUDA headers; they are cudaStream_t / cudaEvent_t underneath.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kiln/core/device.h"

namespace kiln::cuda {

// Number of usable cuda devices (0 without a GPU, without a driver, or in OFF builds).
int device_count();
bool is_available();
// True in SIM builds: cuda:N devices are kiln's SIMT emulator, not hardware.
bool is_simulated();
// Why there are no devices ("built with KILN_CUDA=OFF", "no CUDA-capable device", ...),
// or "" when there are some. Tests print it when they skip.
std::string unavailable_reason();

int current_device();
void set_device(int index);
void synchronize_device(int index);

struct DeviceProperties {
  std::string name;
  int major = 0, minor = 0;          // compute capability
  int multiprocessor_count = 0;
  int max_threads_per_block = 0;
  std::size_t shared_memory_per_block = 0;        // default limit, bytes
  std::size_t shared_memory_per_block_optin = 0;  // opt-in limit, bytes
  int warp_size = 0;
  std::size_t total_memory = 0;                   // bytes
};
const DeviceProperties& properties(int index);

struct MemoryInfo {
  std::size_t free = 0;
  std::size_t total = 0;
};
MemoryInfo memory_info(int index);

// Sets the current device for its scope and restores the previous one. Not copyable.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  explicit DeviceGuard(Device d) : DeviceGuard(d.index()) {}
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

class Event;

// A CUDA stream on one device. A value type: copies refer to the same stream, and the
// stream is destroyed when the last copy created by Stream::create goes away. The
// default stream of a device (the legacy null stream) is never destroyed.
class Stream {
 public:
  // The device's default (legacy null) stream.
  static Stream default_stream(int device);
  // A new non-blocking stream; higher priority runs first where the GPU supports it.
  static Stream create(int device, bool high_priority = false);

  int device() const { return device_; }
  void* native() const;              // cudaStream_t
  bool is_default() const { return native() == nullptr; }
  bool query() const;                // true when all work queued so far has finished
  void synchronize() const;          // host waits for this stream
  void wait(const Event& e) const;   // this stream waits for e, host does not block

  friend bool operator==(const Stream& a, const Stream& b) {
    return a.device_ == b.device_ && a.native() == b.native();
  }

 private:
  struct Owned;
  Stream(int device, std::shared_ptr<Owned> owned) : device_(device), owned_(std::move(owned)) {}
  int device_ = 0;
  std::shared_ptr<Owned> owned_;  // null for the default stream
};

// The stream kiln queues work on for `device` in this thread (default stream unless a
// StreamGuard says otherwise).
Stream current_stream(int device);

// Makes `s` the current stream of its device in this thread for its scope.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream previous_;
  DeviceGuard device_guard_;
};

// A CUDA event. Move-only RAII owner.
class Event {
 public:
  // timing=false creates the event with cudaEventDisableTiming (cheaper to record).
  explicit Event(int device, bool timing = false);
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(const Stream& s);
  bool query() const;         // true when the recorded work has finished
  void synchronize() const;   // host waits
  void* native() const { return event_; }
  int device() const { return device_; }
  // Milliseconds between two timing events recorded in order.
  static float elapsed_ms(const Event& start, const Event& end);

 private:
  int device_ = 0;
  void* event_ = nullptr;
};

}  // namespace kiln::cuda
