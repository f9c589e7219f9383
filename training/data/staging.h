// Delivering host batches to the loader's device (see Note [Loader prefetching] in
// loader.h). Internal to DataLoader.
//   cpu target:                      the host batch as it is (contiguous).
//   cuda target, copy_stream=true:   each tensor is copied into pinned host memory and
//                                    from there to the device on a copy stream that this
//                                    Stager owns (the prefetching thread's).
//   cuda target, copy_stream=false:  Tensor::to on the calling thread's current stream
//                                    (prefetch = 0: no thread, no extra stream).
#pragma once

#include <optional>

#include "kiln/core/cuda/runtime.h"
#include "kiln/training/data/loader.h"

namespace kiln::data {

class Stager {
 public:
  Stager(Device device, bool copy_stream);
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;

  // The batch on the device; returns once its copies have completed.
  Batch deliver(Batch host);

 private:
  Tensor to_device(const Tensor& host);
  Device device_;
  std::optional<cuda::Stream> stream_;
};

// On the consumer's thread, before a batch delivered on a copy stream is used: marks its
// device memory as used by the consumer's current stream, so the caching allocator does
// not hand it to a later batch while work queued on that stream may still read it.
void hand_over(Batch& batch, Device device);

// An uninitialized contiguous host tensor in pinned memory (cuda::pinned_alloc).
Tensor pinned_empty(const Shape& shape, DType dtype);

}  // namespace kiln::data
