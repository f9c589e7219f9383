// Pinned staging and copy-stream delivery of batches; see staging.h.
#include "kiln/training/data/staging.h"

#include <cstring>

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/pinned_allocator.h"

namespace kiln::data {
namespace {

void free_pinned(void*, void* ptr) { cuda::pinned_free(ptr); }

}  // namespace

Tensor pinned_empty(const Shape& shape, DType dtype) {
  validate_shape(shape, itemsize(dtype), "pinned_empty");
  const std::size_t nbytes = static_cast<std::size_t>(shape.numel()) * itemsize(dtype);
  DataPtr data(cuda::pinned_alloc(nbytes), &free_pinned, nullptr, Device::cpu());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(std::move(data), nbytes);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Stager::Stager(Device device, bool copy_stream) : device_(device) {
  if (device_.is_cuda() && copy_stream) stream_ = cuda::Stream::create(device_.index());
}

Tensor Stager::to_device(const Tensor& host) {
  if (!stream_) return host.to(device_);
  Tensor pinned = pinned_empty(host.shape(), host.dtype());
  if (host.nbytes() > 0) std::memcpy(pinned.data_ptr(), host.data_ptr(), host.nbytes());
  // Allocated and filled on the copy stream; Tensor::copy_ synchronizes that stream after
  // a host-to-device copy, so the batch is complete when this returns.
  cuda::StreamGuard guard(*stream_);
  Tensor out = empty(host.shape(), {.dtype = host.dtype(), .device = device_});
  out.copy_(pinned);
  if (pinned.nbytes() > 0) cuda::pinned_record_stream(pinned.storage()->data(), *stream_);
  return out;
}

Batch Stager::deliver(Batch host) {
  for (Tensor* t : host.tensors()) {
    *t = device_.is_cpu() ? t->contiguous() : to_device(t->contiguous());
  }
  return host;
}

void hand_over(Batch& batch, Device device) {
  if (!device.is_cuda()) return;
  const cuda::Stream consumer = cuda::current_stream(device.index());
  for (const Tensor* t : batch.tensors()) {
    if (t->storage()->data() != nullptr) {
      cuda::device_allocator(device.index()).record_stream(t->storage()->data(), consumer.native());
    }
  }
}

}  // namespace kiln::data
