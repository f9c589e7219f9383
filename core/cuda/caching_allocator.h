// The CUDA caching allocator, one per device. Policy (see Note [Caching allocator policy]
// in caching_allocator.cpp for the reasons):
//   - sizes round up to 512-byte granules;
//   - requests <= 1 MiB are carved from 2 MiB segments (the small pool); larger ones come
//     from segments of their own size rounded to 2 MiB (the large pool), best-fit, split
//     when the remainder is worth keeping; free neighbours coalesce;
//   - a block belongs to the stream it was allocated on and is only ever reused on that
//     stream; if it was also used on other streams (record_stream), free() records an
//     event on each of them and the block is reused only once all those events completed;
//   - when the backend is out of memory, cached free segments are released and the
//     request retried; if it still fails, OutOfMemoryError gives requested, allocated,
//     reserved, largest free block and a hint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "kiln/core/cuda/device_backend.h"

namespace kiln::cuda {

struct Stat {
  std::int64_t current = 0;
  std::int64_t peak = 0;
  void add(std::int64_t n) {
    current += n;
    if (current > peak) peak = current;
  }
};

struct AllocatorStats {
  Stat allocated_bytes;              // bytes in blocks handed out (rounded sizes)
  Stat reserved_bytes;               // bytes in segments obtained from the backend
  Stat segments;                     // live segments
  Stat active_blocks;                // blocks handed out
  std::int64_t backend_mallocs = 0;  // successful backend mallocs (cudaMalloc): segments made
  std::int64_t backend_frees = 0;    // backend frees (cudaFree): segments returned
  std::int64_t cache_hits = 0;       // allocations served without backend malloc
  std::int64_t oom_retries = 0;      // flush-and-retry rounds after a failed malloc
};

// Tunables, named so tests and users can see them.
struct AllocatorConfig {
  std::size_t granule = 512;                     // every size rounds up to this
  std::size_t small_request_limit = 1 << 20;     // <= this uses the small pool
  std::size_t small_segment_size = 2 << 20;      // segment size of the small pool
  std::size_t large_segment_rounding = 2 << 20;  // large segments round up to this
  // A split leaves the remainder as a free block only when it is at least this big
  // (small pool: one granule; large pool: 1 MiB, smaller tails stay inside the block).
  std::size_t large_split_min = 1 << 20;
  // false: every free returns fully free segments to the backend at once (the
  // KILN_CUDA_NO_CACHING=1 switch), so compute-sanitizer sees each block as its own
  // allocation and catches out-of-bounds accesses that a cached segment would hide.
  bool cache = true;
};

class CachingAllocator {
 public:
  CachingAllocator(int device, DeviceBackend& backend, AllocatorConfig config = {});
  ~CachingAllocator();  // releases every cached segment; live blocks are a bug (logged)
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // `stream` is the cudaStream_t the block will be used on (nullptr = default stream).
  // Returns nullptr for bytes == 0. Throws OutOfMemoryError as described above.
  void* allocate(std::size_t bytes, void* stream);
  void free(void* ptr);
  // Marks that `ptr` is also used on `stream`: its reuse waits for that stream's work.
  void record_stream(void* ptr, void* stream);

  // Returns all cached, fully free segments to the backend.
  void empty_cache();

  AllocatorStats stats() const;
  void reset_peak_stats();
  // A human-readable table of the stats and segments (like torch.cuda.memory_summary).
  std::string memory_summary() const;

  // Walks every segment and block and checks the stats and the free lists against it;
  // throws InternalError describing the first disagreement. For tests.
  void check_invariants() const;

  int device() const { return device_; }
  const AllocatorConfig& config() const { return config_; }

 private:
  struct Impl;
  int device_;
  AllocatorConfig config_;
  std::unique_ptr<Impl> impl_;
};

// The process-wide allocator of cuda device `index`, over the real CUDA runtime (or SIM).
CachingAllocator& device_allocator(int index);

// "512 B", "2.00 MiB", "1.00 PiB": the readable half of the allocators' messages (they
// give the exact byte count beside it).
std::string format_bytes(std::int64_t bytes);

}  // namespace kiln::cuda
