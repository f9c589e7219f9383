// Host side of core's cuda tensor operations: allocation through the caching allocator
// and byte transfers. The elementwise kernels are in copy.cu and fill.cu.
#include "kiln/core/cuda/tensor_cuda.h"

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/check.h"
#include "kiln/core/cuda/runtime.h"

namespace kiln::cuda {
namespace {

void free_block(void* allocator, void* ptr) {
  static_cast<CachingAllocator*>(allocator)->free(ptr);
}

}  // namespace

DataPtr allocate(int device, std::size_t nbytes) {
  check_device(Device::cuda(device), "allocate");
  CachingAllocator& alloc = device_allocator(device);
  void* p = alloc.allocate(nbytes, current_stream(device).native());
  return DataPtr(p, free_block, &alloc, Device::cuda(device));
}

// Note [Transfer ordering]: work is queued on the current stream of the cuda side. When the
// host is one side, the stream is synchronised before returning so the host may read the
// bytes (device->host) or reuse its buffer (host->device, pageable memory). Between two
// devices, the source's stream is synchronised first, then the peer copy is queued on the
// destination's stream, which orders it before later work there; the source's stream then
// waits for it, so later writes to the source (or reuse of its block) cannot overtake it.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t nbytes) {
  if (nbytes == 0) return;
  KILN_ASSERT(dst_device.is_cuda() || src_device.is_cuda(), "copy_bytes between two cpu buffers");
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device != src_device) {
    current_stream(src_device.index()).synchronize();
    const Stream s = current_stream(dst_device.index());
    DeviceGuard guard(dst_device.index());
    KILN_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index(), src, src_device.index(), nbytes,
                                        static_cast<cudaStream_t>(s.native())));
    Event copied(dst_device.index());
    copied.record(s);
    current_stream(src_device.index()).wait(copied);
    return;
  }
  const int device = dst_device.is_cuda() ? dst_device.index() : src_device.index();
  const Stream s = current_stream(device);
  DeviceGuard guard(device);
  const cudaMemcpyKind kind = dst_device.is_cpu()   ? cudaMemcpyDeviceToHost
                              : src_device.is_cpu() ? cudaMemcpyHostToDevice
                                                    : cudaMemcpyDeviceToDevice;
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, static_cast<cudaStream_t>(s.native())));
  if (kind != cudaMemcpyDeviceToDevice) s.synchronize();
}

}  // namespace kiln::cuda
