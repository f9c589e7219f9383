// The device operations the CUDA caching allocator needs, behind an interface, so that
// its policy runs against a fake backend in unit tests (no GPU) and against the real
// CUDA runtime (or the SIM emulator) in production.
#pragma once

#include <cstddef>

namespace kiln::cuda {

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  // Device memory. malloc returns nullptr when the device is out of memory (no throw);
  // any other failure throws CudaError.
  virtual void* malloc(std::size_t bytes) = 0;
  virtual void free(void* ptr) = 0;

  // Events order reuse across streams: record on the stream that used a block, and the
  // block is free for others once query() says the event completed.
  virtual void* create_event() = 0;
  virtual void record_event(void* event, void* stream) = 0;
  virtual bool query_event(void* event) = 0;  // true once completed
  virtual void destroy_event(void* event) = 0;

  // Waits for all work on the device (used before returning cached memory to the driver).
  virtual void synchronize() = 0;
  // Free and total device memory in bytes, for error messages.
  virtual std::size_t total_memory() = 0;
};

}  // namespace kiln::cuda
