#include "kiln/core/allocator.h"

#include <cstdlib>
#include <new>

#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/core/error.h"

namespace kiln {

DataPtr& DataPtr::operator=(DataPtr&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = other.ptr_;
    deleter_ = other.deleter_;
    context_ = other.context_;
    device_ = other.device_;
    other.ptr_ = nullptr;
  }
  return *this;
}

void DataPtr::reset() noexcept {
  if (ptr_ && deleter_) deleter_(context_, ptr_);
  ptr_ = nullptr;
}

namespace {

void cpu_free(void*, void* ptr) { std::free(ptr); }

DataPtr cpu_allocate(std::size_t nbytes) {
  // aligned_alloc needs a size that is a multiple of the alignment.
  const std::size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  void* p = std::aligned_alloc(kCpuAlignment, rounded);
  KILN_CHECK(p != nullptr, OutOfMemoryError, "cpu allocator: out of memory allocating ",
             nbytes, " bytes");
  return DataPtr(p, cpu_free, nullptr, Device::cpu());
}

}  // namespace

DataPtr allocate(Device device, std::size_t nbytes) {
  if (nbytes == 0) return DataPtr(nullptr, nullptr, nullptr, device);
  if (device.is_cpu()) return cpu_allocate(nbytes);
  return cuda::allocate(device.index(), nbytes);
}

}  // namespace kiln
