// KILN_CUDA=OFF: core's cuda tensor operations exist but raise DeviceError, so a cpu-only
// build links and says clearly why cuda tensors are unavailable.
#include "kiln/core/cuda/tensor_cuda.h"

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/error.h"

namespace kiln::cuda {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  KILN_THROW(DeviceError, op, ": cuda tensors are unavailable (kiln was built with KILN_CUDA=OFF)");
}
}  // namespace

DataPtr allocate(int, std::size_t) { no_cuda("allocate"); }
void copy_bytes(void*, Device, const void*, Device, std::size_t) { no_cuda("copy"); }
void copy_strided(const StridedView&, const StridedView&, int) { no_cuda("copy"); }
void fill(const StridedView&, double, int) { no_cuda("fill"); }
void arange(const StridedView&, double, double, int) { no_cuda("arange"); }
CachingAllocator& device_allocator(int) { no_cuda("device_allocator"); }
void random(const StridedView&, RandomKind, double, double, std::uint64_t, std::uint64_t, int) {
  no_cuda("random");
}

}  // namespace kiln::cuda
