#include "kiln/core/allocator.h"

#include <cstdlib>
#include <new>

#ifdef __GLIBC__
#include <malloc.h>  // mallopt
#endif

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

// Note [Keeping freed host memory]
// A training step frees and reallocates the same activation-sized buffers (100 KB to tens
// of MB) every step. glibc serves blocks above its mmap threshold with mmap and gives them
// back with munmap, and trims the heap top on free, so each step page-faults its buffers
// in again: on the MNIST convnet that was over a third of the run's time in the kernel.
// kiln raises both thresholds once, so freed buffers stay in the heap for the next step
// (PyTorch's and TensorFlow's CPU allocators keep their memory the same way, by caching).
// Blocks above 256 MiB still go to mmap and back. KILN_CPU_MALLOC_DEFAULTS=1 keeps glibc's
// defaults.
void keep_freed_host_memory() {
#ifdef __GLIBC__
  const char* env = std::getenv("KILN_CPU_MALLOC_DEFAULTS");
  if (env != nullptr && env[0] == '1') return;
  constexpr int kMmapThreshold = 256 << 20;
  constexpr int kTrimThreshold = 512 << 20;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

DataPtr cpu_allocate(std::size_t nbytes) {
  static const bool tuned = (keep_freed_host_memory(), true);
  (void)tuned;
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
