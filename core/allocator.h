// DataPtr (the RAII owner of one allocation) and the allocators behind Storage:
//   cpu      64-byte aligned host memory (cache lines, AVX-512 loads)
//   cuda:N   the caching allocator of device N, on the device's current stream
#pragma once

#include <cstddef>

#include "kiln/core/device.h"

namespace kiln {

// Move-only owner of one allocation; the deleter returns it to where it came from.
class DataPtr {
 public:
  using Deleter = void (*)(void* context, void* ptr);

  DataPtr() = default;
  DataPtr(void* ptr, Deleter deleter, void* context, Device device)
      : ptr_(ptr), deleter_(deleter), context_(context), device_(device) {}
  ~DataPtr() { reset(); }
  DataPtr(DataPtr&& other) noexcept { *this = std::move(other); }
  DataPtr& operator=(DataPtr&& other) noexcept;
  DataPtr(const DataPtr&) = delete;
  DataPtr& operator=(const DataPtr&) = delete;

  void* get() const { return ptr_; }
  Device device() const { return device_; }
  explicit operator bool() const { return ptr_ != nullptr; }
  void reset() noexcept;

 private:
  void* ptr_ = nullptr;
  Deleter deleter_ = nullptr;
  void* context_ = nullptr;
  Device device_;
};

inline constexpr std::size_t kCpuAlignment = 64;

// Allocates `nbytes` on `device` (cpu: 64-byte aligned; cuda: caching allocator on the
// current stream). nbytes == 0 gives an empty DataPtr. Throws OutOfMemoryError.
DataPtr allocate(Device device, std::size_t nbytes);

}  // namespace kiln
