// The cached pinned host allocator (policy in pinned_allocator.h) and the process-wide
// instance over the CUDA runtime.
#include "kiln/core/cuda/pinned_allocator.h"

#include <atomic>
#include <bit>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/error.h"

namespace kiln::cuda {
namespace {

struct HostBlock {
  std::size_t size = 0;
  bool allocated = false;
  int pending_events = 0;
  std::vector<std::pair<void*, int>> stream_uses;  // (stream, device)
};

// "2.00 MiB (2097152 bytes)": readable and exact.
std::string describe_bytes(std::int64_t bytes) {
  return format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

}  // namespace

struct PinnedAllocator::Impl {
  explicit Impl(HostBackend& backend) : backend(backend) {}

  HostBackend& backend;
  mutable std::mutex mutex;
  std::unordered_map<void*, HostBlock> blocks;           // every block we hold
  std::map<std::size_t, std::vector<void*>> free_lists;  // size class -> free blocks
  std::vector<std::pair<void*, void*>> pending;          // (event, block)
  PinnedStats stats;

  void process_events() {
    std::size_t kept = 0;
    for (auto& [event, ptr] : pending) {
      if (!backend.query_event(event)) {
        pending[kept++] = {event, ptr};
        continue;
      }
      backend.destroy_event(event);
      HostBlock& b = blocks.at(ptr);
      if (--b.pending_events == 0) free_lists[b.size].push_back(ptr);
    }
    pending.resize(kept);
  }

  void release_free_blocks() {
    for (auto& [size, list] : free_lists) {
      for (void* ptr : list) {
        backend.host_free(ptr);
        blocks.erase(ptr);
        ++stats.host_frees;
        stats.reserved_bytes.add(-static_cast<std::int64_t>(size));
      }
      list.clear();
    }
  }

  void* take_cached(std::size_t size) {
    auto it = free_lists.find(size);
    if (it == free_lists.end() || it->second.empty()) return nullptr;
    void* ptr = it->second.back();
    it->second.pop_back();
    ++stats.cache_hits;
    return ptr;
  }

  void* allocate_new(std::size_t size) {
    void* ptr = backend.host_alloc(size);
    if (ptr == nullptr) {
      release_free_blocks();
      ptr = backend.host_alloc(size);
    }
    KILN_CHECK(ptr != nullptr, OutOfMemoryError, "pinned host memory exhausted: tried to allocate ",
               describe_bytes(static_cast<std::int64_t>(size)), "; the pinned allocator holds ",
               describe_bytes(stats.allocated_bytes.current), " allocated and ",
               describe_bytes(stats.reserved_bytes.current),
               " reserved (its free blocks were already released). Hint: pinned memory is "
               "page-locked host RAM; free pinned buffers sooner, prefetch fewer or smaller "
               "batches, or check the host's free RAM and locked-memory limit.");
    blocks.emplace(ptr, HostBlock{size, false, 0, {}});
    ++stats.host_allocs;
    stats.reserved_bytes.add(static_cast<std::int64_t>(size));
    return ptr;
  }

  HostBlock& find_allocated(void* ptr, const char* op) {
    auto it = blocks.find(ptr);
    KILN_CHECK(it != blocks.end() && it->second.allocated, ValueError, op, ": pointer ", ptr,
               " was not allocated by the pinned allocator or was already freed");
    return it->second;
  }
};

PinnedAllocator::PinnedAllocator(HostBackend& backend) : impl_(std::make_unique<Impl>(backend)) {}

PinnedAllocator::~PinnedAllocator() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  try {
    for (auto& [event, ptr] : impl_->pending) impl_->backend.destroy_event(event);
    impl_->release_free_blocks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: releasing the pinned allocator failed: %s\n", e.what());
  }
  if (impl_->stats.active_blocks.current > 0) {
    std::fprintf(stderr, "kiln: the pinned allocator was destroyed with %lld live blocks\n",
                 static_cast<long long>(impl_->stats.active_blocks.current));
  }
}

std::size_t PinnedAllocator::block_size(std::size_t bytes) {
  if (bytes <= kMinBlockSize) return kMinBlockSize;
  if (bytes > (std::numeric_limits<std::size_t>::max() >> 1) + 1) return 0;  // no class
  return std::bit_ceil(bytes);
}

void* PinnedAllocator::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t size = block_size(bytes);
  KILN_CHECK(size != 0, OutOfMemoryError, "pinned_alloc: ", bytes,
             " bytes is larger than any pinned block can be");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->process_events();
  void* ptr = impl_->take_cached(size);
  if (ptr == nullptr) ptr = impl_->allocate_new(size);
  impl_->blocks.at(ptr).allocated = true;
  impl_->stats.allocated_bytes.add(static_cast<std::int64_t>(size));
  impl_->stats.active_blocks.add(1);
  return ptr;
}

void PinnedAllocator::free(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  HostBlock& b = impl_->find_allocated(ptr, "pinned_free");
  b.allocated = false;
  impl_->stats.allocated_bytes.add(-static_cast<std::int64_t>(b.size));
  impl_->stats.active_blocks.add(-1);
  for (auto [stream, device] : b.stream_uses) {
    impl_->pending.emplace_back(impl_->backend.record_event(stream, device), ptr);
    ++b.pending_events;
  }
  b.stream_uses.clear();
  if (b.pending_events == 0) impl_->free_lists[b.size].push_back(ptr);
}

void PinnedAllocator::record_stream(void* ptr, void* stream) {
  record_stream(ptr, stream, impl_->backend.current_device());
}

void PinnedAllocator::record_stream(void* ptr, void* stream, int device) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  HostBlock& b = impl_->find_allocated(ptr, "pinned_record_stream");
  const std::pair<void*, int> use{stream, device};
  for (const auto& u : b.stream_uses) {
    if (u == use) return;
  }
  b.stream_uses.push_back(use);
}

void PinnedAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->process_events();
  impl_->release_free_blocks();
}

PinnedStats PinnedAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

// The process-wide instance. It is created on first pinned_alloc and never destroyed:
// blocks may outlive static destructors, and the CUDA runtime may already be torn
// down at exit (the OS reclaims pinned memory with the process).
namespace {

std::atomic<PinnedAllocator*> g_pinned{nullptr};
std::mutex g_pinned_mutex;

HostBackend& real_host_backend() {
#if KILN_HAS_CUDA
  KILN_CHECK(is_available(), DeviceError,
             "pinned_alloc: pinned host memory needs a cuda device: ", unavailable_reason());
  return cuda_host_backend();
#else
  KILN_THROW(DeviceError,
             "pinned_alloc: kiln was built without CUDA (KILN_CUDA=OFF), so there "
             "is no pinned host memory; rebuild with KILN_CUDA=ON or SIM");
#endif
}

PinnedAllocator& global_pinned() {
  if (PinnedAllocator* a = g_pinned.load(std::memory_order_acquire)) return *a;
  std::lock_guard<std::mutex> lock(g_pinned_mutex);
  if (g_pinned.load(std::memory_order_relaxed) == nullptr) {
    g_pinned.store(new PinnedAllocator(real_host_backend()), std::memory_order_release);
  }
  return *g_pinned.load(std::memory_order_relaxed);
}

// The instance if pinned_alloc ever made one; freeing or recording a pointer before
// that is an unknown pointer, not a reason to start CUDA.
PinnedAllocator* existing_pinned(void* ptr, const char* op) {
  PinnedAllocator* a = g_pinned.load(std::memory_order_acquire);
  KILN_CHECK(a != nullptr, ValueError, op, ": pointer ", ptr,
             " was not allocated by the pinned allocator");
  return a;
}

}  // namespace

void* pinned_alloc(std::size_t bytes) { return global_pinned().allocate(bytes); }

void pinned_free(void* ptr) {
  if (ptr == nullptr) return;
  existing_pinned(ptr, "pinned_free")->free(ptr);
}

void pinned_record_stream(void* ptr, void* stream) {
  existing_pinned(ptr, "pinned_record_stream")->record_stream(ptr, stream);
}

void pinned_record_stream(void* ptr, const Stream& stream) {
  existing_pinned(ptr, "pinned_record_stream")
      ->record_stream(ptr, stream.native(), stream.device());
}

void pinned_empty_cache() {
  if (PinnedAllocator* a = g_pinned.load(std::memory_order_acquire)) a->empty_cache();
}

PinnedStats pinned_stats() {
  PinnedAllocator* a = g_pinned.load(std::memory_order_acquire);
  return a != nullptr ? a->stats() : PinnedStats{};
}

}  // namespace kiln::cuda
