// The CUDA side of core's tensor operations (allocation, transfers, strided copy with
// dtype conversion, fills, random). Implemented in tensor_cuda.cpp + copy.cu + fill.cu
// for ON and SIM builds; in OFF builds each raises DeviceError (tensor_cuda_off.cpp).
// Every function queues work on the device's current stream (cuda::current_stream).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kiln/core/allocator.h"
#include "kiln/core/strided.h"

namespace kiln::cuda {

DataPtr allocate(int device, std::size_t nbytes);

// Copies raw bytes where at least one side is a cuda device. Returns once the bytes are
// in place as far as later work on the destination is concerned: host destinations
// and sources are synchronised with the stream, cuda-to-cuda copies are stream-ordered.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t nbytes);

// dst[i] = convert(src[i]) elementwise over the same shape (src strides may be 0 for
// broadcast). Both views live on cuda:device.
void copy_strided(const StridedView& dst, const StridedView& src, int device);

// dst[i] = value.
void fill(const StridedView& dst, double value, int device);
// dst[i] = start + i * step (i is the row-major index).
void arange(const StridedView& dst, double start, double step, int device);

enum class RandomKind { uniform, normal };
// uniform: a + (b - a) * U[0,1); normal: a + b * N(0,1); Philox (seed, offset), see
// core/philox.h for the stream convention that makes cpu and cuda agree.
void random(const StridedView& dst, RandomKind kind, double a, double b, std::uint64_t seed,
            std::uint64_t offset, int device);

}  // namespace kiln::cuda
