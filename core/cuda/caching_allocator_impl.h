// Internal: to core/cuda, not installed for users. The state of the CUDA caching allocator
// (blocks, segments, pools and CachingAllocator::Impl), shared by caching_allocator.cpp
// (allocation, freeing, events, out of memory) and caching_allocator_inspect.cpp
// (check_invariants, memory_summary). Include it only from those two files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/core/cuda/caching_allocator.h"

namespace kiln::cuda {
namespace caching_detail {

enum class Pool : std::uint8_t { small, large };

struct Segment;

// A run of bytes inside a segment. Blocks of a segment form a doubly linked list in
// address order. A block is in exactly one state: allocated (in `active`), pending
// (freed, waiting for `pending_events` recorded events), or free (in its pool's set).
struct Block {
  char* ptr = nullptr;
  std::size_t size = 0;
  void* stream = nullptr;  // the stream it was allocated on (its segment's)
  Segment* segment = nullptr;
  Block* prev = nullptr;
  Block* next = nullptr;
  bool allocated = false;
  int pending_events = 0;
  std::vector<void*> stream_uses;  // other streams that used it (record_stream)
};

inline bool is_free(const Block* b) { return !b->allocated && b->pending_events == 0; }

struct Segment {
  char* base = nullptr;
  std::size_t size = 0;
  Pool pool = Pool::small;
  void* stream = nullptr;
  Block* head = nullptr;  // the block at `base`
};

// Free blocks ordered by (stream, size, address): lower_bound finds the best fit.
struct BlockOrder {
  bool operator()(const Block* a, const Block* b) const {
    if (a->stream != b->stream) return std::less<void*>()(a->stream, b->stream);
    if (a->size != b->size) return a->size < b->size;
    return std::less<char*>()(a->ptr, b->ptr);
  }
};
using FreeSet = std::set<Block*, BlockOrder>;

inline std::int64_t i64(std::size_t n) { return static_cast<std::int64_t>(n); }

}  // namespace caching_detail

struct CachingAllocator::Impl {
  using Block = caching_detail::Block;
  using Segment = caching_detail::Segment;
  using Pool = caching_detail::Pool;
  using FreeSet = caching_detail::FreeSet;

  Impl(int device, DeviceBackend& backend, const AllocatorConfig& config)
      : device(device), backend(backend), config(config) {}

  int device;
  DeviceBackend& backend;
  const AllocatorConfig config;
  mutable std::mutex mutex;
  FreeSet free_small, free_large;
  std::unordered_map<void*, Block*> active;
  std::map<char*, std::unique_ptr<Segment>> segments;  // by base address
  // Events recorded at free(), per stream in record order: (event, block).
  std::unordered_map<void*, std::deque<std::pair<void*, Block*>>> pending;
  std::vector<void*> spare_events;  // completed events kept for reuse
  AllocatorStats stats;

  FreeSet& free_set(Pool p) { return p == Pool::small ? free_small : free_large; }
  const FreeSet& free_set(Pool p) const { return p == Pool::small ? free_small : free_large; }
  Pool pool_for(std::size_t size) const {
    return size <= config.small_request_limit ? Pool::small : Pool::large;
  }

  // caching_allocator.cpp
  void* allocate(std::size_t bytes, void* stream);
  void free(void* ptr);
  void record_stream(void* ptr, void* stream);
  void empty_cache();
  void destroy() noexcept;
  // caching_allocator_inspect.cpp
  void check_invariants() const;
  std::string memory_summary() const;

 private:
  // caching_allocator.cpp
  Block* take_free_block(Pool pool, void* stream, std::size_t size);
  Block* new_segment(Pool pool, void* stream, std::size_t size);
  void split(Block* b, std::size_t size, Pool pool);
  void return_to_pool(Block* b);
  void process_events();
  void release_free_segments();
  std::size_t largest_free_block() const;
  [[noreturn]] void throw_out_of_memory(std::size_t bytes, std::size_t size) const;
  void* acquire_event();
  Block* find_active(void* ptr, const char* op);
  // caching_allocator_inspect.cpp
  struct Walk;
  void check_segment(const Segment& seg, Walk& walk) const;
};

}  // namespace kiln::cuda
