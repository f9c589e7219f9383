// Pinned (page-locked) host memory, cached: the staging buffers of async host<->device
// copies (the data loader's batches). cudaHostAlloc and cudaFreeHost are slow and
// cudaFreeHost synchronizes the device, so blocks are kept for reuse:
//   - sizes round up to a power of two >= 512 B, and a freed block serves the next
//     request of its size class;
//   - a block used by async copies on streams is marked with pinned_record_stream();
//     free() then records an event on each such stream, and the block is reused only
//     once they have completed (the copy has finished reading or writing it);
//   - when cudaHostAlloc fails, cached free blocks are released and the request retried,
//     then OutOfMemoryError is thrown.
// In builds without CUDA (KILN_CUDA=OFF) pinned_alloc raises DeviceError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kiln/core/cuda/caching_allocator.h"  // Stat

namespace kiln::cuda {

class Stream;

struct PinnedStats {
  Stat allocated_bytes;          // bytes in blocks handed out (rounded sizes)
  Stat reserved_bytes;           // bytes obtained from the backend (cudaHostAlloc) and kept
  Stat active_blocks;            // blocks handed out
  std::int64_t host_allocs = 0;  // successful cudaHostAlloc calls
  std::int64_t host_frees = 0;   // cudaFreeHost calls
  std::int64_t cache_hits = 0;   // allocations served from the cache
};

// The host operations PinnedAllocator needs, behind an interface so that its policy is
// unit-tested against a fake; the real one (cuda_host_backend) wraps the CUDA runtime.
class HostBackend {
 public:
  virtual ~HostBackend() = default;
  // Pinned host memory; nullptr when it cannot be had (no throw), CudaError otherwise.
  virtual void* host_alloc(std::size_t bytes) = 0;
  virtual void host_free(void* ptr) = 0;
  virtual int current_device() = 0;
  // Creates an event on `device` and records it on `stream` (a stream of that device).
  virtual void* record_event(void* stream, int device) = 0;
  virtual bool query_event(void* event) = 0;  // true once completed
  virtual void destroy_event(void* event) = 0;
};

class PinnedAllocator {
 public:
  static constexpr std::size_t kMinBlockSize = 512;

  explicit PinnedAllocator(HostBackend& backend);
  ~PinnedAllocator();  // releases cached blocks; live blocks are a bug (logged)
  PinnedAllocator(const PinnedAllocator&) = delete;
  PinnedAllocator& operator=(const PinnedAllocator&) = delete;

  // Returns nullptr for bytes == 0. Throws OutOfMemoryError when the backend is full.
  void* allocate(std::size_t bytes);
  void free(void* ptr);
  // Marks that `ptr` is used by work on `stream` of `device`; reuse waits for it.
  void record_stream(void* ptr, void* stream, int device);
  // The same for a stream of the backend's current device.
  void record_stream(void* ptr, void* stream);
  // Returns every cached free block to the backend (blocks waiting on events stay).
  void empty_cache();
  PinnedStats stats() const;

  // The size class of a request: the next power of two >= max(bytes, kMinBlockSize).
  static std::size_t block_size(std::size_t bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process-wide pinned allocator, over the CUDA runtime.
void* pinned_alloc(std::size_t bytes);
void pinned_free(void* ptr);
// `stream` is a cudaStream_t of the current device (nullptr: its default stream).
void pinned_record_stream(void* ptr, void* stream);
void pinned_record_stream(void* ptr, const Stream& stream);
void pinned_empty_cache();
PinnedStats pinned_stats();

// The real backend (cudaHostAlloc, cudaFreeHost, events); defined in cuda_backend.cpp,
// which only ON and SIM builds compile.
HostBackend& cuda_host_backend();

}  // namespace kiln::cuda
