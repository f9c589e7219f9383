// The CUDA caching allocator: segments from the backend, carved into blocks, cached and
// reused per stream. The policy is stated in caching_allocator.h; the reasons below.
//
// Note [Caching allocator policy]
// cudaMalloc and cudaFree are slow (tens of microseconds to milliseconds) and cudaFree
// synchronizes the whole device, so a training step that allocated through them would
// stall on every temporary. Instead memory is obtained in segments and kept:
//   - Sizes round up to 512 B granules so that blocks freed by one shape fit the next
//     shape of about the same size, and every block keeps the alignment of its segment's
//     base (cudaMalloc gives at least 256 bytes), well past what vector loads and
//     tensor-core kernels need.
//   - Small requests (<= 1 MiB) share 2 MiB segments: thousands of tiny tensors
//     (biases, scalars, reductions) would otherwise each cost a cudaMalloc and its
//     padding. Large requests get segments of their own, rounded to 2 MiB, so a big
//     free block is never pinned in place by a tiny live neighbour, and they may be
//     split only when the tail is at least 1 MiB (smaller tails would just fragment).
//     The two pools never lend blocks to each other.
//   - Best fit (smallest block that fits, then the lowest address) keeps big blocks
//     whole for big requests; freed neighbours coalesce so the pool does not decay into
//     slivers. A segment returns to the backend only when it is one free block.
//   - A block belongs to the stream it was allocated on. Work on one stream runs in
//     order, so a block freed on stream S while a kernel on S still reads it may be
//     handed to the next request on S at once: that request's kernels queue behind the
//     reader. Handing it to another stream would race, so it is never done. When other
//     streams also used the block (record_stream), free() records an event on each of
//     them and the block stays out of the pool until every event has completed; the
//     events are polled at the start of each allocation (PyTorch's process_events), so
//     no host thread ever blocks on them.
//   - When the backend is out of memory, the allocator first synchronizes and retires
//     all pending events, then returns every cached free segment and retries: the cache
//     must never be the reason a program runs out of memory. Only then does it throw,
//     with the numbers a user needs to act (requested, allocated, reserved, largest free
//     block, device total) and a hint.
//
// The state (blocks, segments, pools, Impl) lives in caching_allocator_impl.h;
// check_invariants() and memory_summary() live in caching_allocator_inspect.cpp.
#include "kiln/core/cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

#include "kiln/core/cuda/caching_allocator_impl.h"
#include "kiln/core/error.h"

namespace kiln::cuda {

using caching_detail::Block;
using caching_detail::FreeSet;
using caching_detail::i64;
using caching_detail::is_free;
using caching_detail::Pool;
using caching_detail::Segment;

namespace {

// Rounds n up to a multiple of m; false on overflow.
bool round_up(std::size_t n, std::size_t m, std::size_t* out) {
  if (n > std::numeric_limits<std::size_t>::max() - (m - 1)) return false;
  *out = (n + m - 1) / m * m;
  return true;
}

// "2.00 MiB (2097152 bytes)": readable and exact.
std::string describe_bytes(std::int64_t bytes) {
  return format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

void reset_peak(Stat& s) { s.peak = s.current; }

}  // namespace

// Best fit on the stream: the smallest free block >= size, lowest address among equals.
Block* CachingAllocator::Impl::take_free_block(Pool pool, void* stream, std::size_t size) {
  FreeSet& set = free_set(pool);
  Block key{nullptr, size, stream};
  auto it = set.lower_bound(&key);
  if (it == set.end() || (*it)->stream != stream) return nullptr;
  Block* b = *it;
  set.erase(it);
  return b;
}

// A fresh segment as one block (not in any set), or nullptr when the backend is full.
Block* CachingAllocator::Impl::new_segment(Pool pool, void* stream, std::size_t size) {
  std::size_t segment_size = config.small_segment_size;
  if (pool == Pool::large && !round_up(size, config.large_segment_rounding, &segment_size)) {
    return nullptr;
  }
  void* p = backend.malloc(segment_size);
  if (p == nullptr) return nullptr;
  ++stats.backend_mallocs;
  stats.reserved_bytes.add(i64(segment_size));
  stats.segments.add(1);
  auto seg = std::make_unique<Segment>(
      Segment{static_cast<char*>(p), segment_size, pool, stream, nullptr});
  auto* b = new Block{seg->base, segment_size, stream, seg.get()};
  seg->head = b;
  segments.emplace(seg->base, std::move(seg));
  return b;
}

// Cuts `b` to `size`, leaving the tail free when it is worth keeping (see the Note).
void CachingAllocator::Impl::split(Block* b, std::size_t size, Pool pool) {
  const std::size_t remaining = b->size - size;
  const std::size_t min_tail = pool == Pool::small ? config.granule : config.large_split_min;
  if (remaining == 0 || remaining < min_tail) return;
  auto* tail = new Block{b->ptr + size, remaining, b->stream, b->segment, b, b->next};
  if (b->next) b->next->prev = tail;
  b->next = tail;
  b->size = size;
  free_set(pool).insert(tail);
}

// Puts a block whose events have all completed back in its pool, merged with free
// neighbours so that no two free blocks are ever adjacent.
void CachingAllocator::Impl::return_to_pool(Block* b) {
  FreeSet& set = free_set(b->segment->pool);
  if (Block* prev = b->prev; prev && is_free(prev)) {
    set.erase(prev);
    b->ptr = prev->ptr;
    b->size += prev->size;
    b->prev = prev->prev;
    if (b->prev)
      b->prev->next = b;
    else
      b->segment->head = b;
    delete prev;
  }
  if (Block* next = b->next; next && is_free(next)) {
    set.erase(next);
    b->size += next->size;
    b->next = next->next;
    if (b->next) b->next->prev = b;
    delete next;
  }
  set.insert(b);
}

// Retires completed events. Events on one stream complete in record order, so each
// stream's queue is read until its first unfinished event.
void CachingAllocator::Impl::process_events() {
  for (auto it = pending.begin(); it != pending.end();) {
    auto& queue = it->second;
    while (!queue.empty() && backend.query_event(queue.front().first)) {
      auto [event, block] = queue.front();
      queue.pop_front();
      spare_events.push_back(event);
      if (--block->pending_events == 0) return_to_pool(block);
    }
    it = queue.empty() ? pending.erase(it) : std::next(it);
  }
}

void CachingAllocator::Impl::release_free_segments() {
  for (auto it = segments.begin(); it != segments.end();) {
    Segment& seg = *it->second;
    Block* head = seg.head;
    if (head->next != nullptr || !is_free(head)) {
      ++it;
      continue;
    }
    free_set(seg.pool).erase(head);
    backend.free(seg.base);
    ++stats.backend_frees;
    stats.reserved_bytes.add(-i64(seg.size));
    stats.segments.add(-1);
    delete head;
    it = segments.erase(it);
  }
}

std::size_t CachingAllocator::Impl::largest_free_block() const {
  std::size_t largest = 0;
  for (const FreeSet* set : {&free_small, &free_large}) {
    for (const Block* b : *set) largest = std::max(largest, b->size);
  }
  return largest;
}

void CachingAllocator::Impl::throw_out_of_memory(std::size_t bytes, std::size_t size) const {
  std::size_t total = 0;
  try {
    total = backend.total_memory();
  } catch (const std::exception&) {
    // The error at hand is the allocation; an unknown total is reported as 0.
  }
  const std::string rounded =
      size == bytes ? "" : ", rounded up from " + std::to_string(bytes) + " bytes requested";
  KILN_THROW(OutOfMemoryError, "CUDA out of memory on cuda:", device, ": tried to allocate ",
             describe_bytes(i64(size)), rounded, ". cuda:", device, " has ",
             describe_bytes(i64(total)), " in total; this allocator holds ",
             describe_bytes(stats.allocated_bytes.current), " allocated and ",
             describe_bytes(stats.reserved_bytes.current),
             " reserved, and its largest free block is ", describe_bytes(i64(largest_free_block())),
             ". Hint: call empty_cache() in other allocators or processes sharing the device, "
             "reduce the batch size, or in SIM builds set KILN_SIM_MEMORY (e.g. "
             "KILN_SIM_MEMORY=1GiB) to give the emulated device more memory.");
}

void* CachingAllocator::Impl::acquire_event() {
  if (spare_events.empty()) return backend.create_event();
  void* e = spare_events.back();
  spare_events.pop_back();
  return e;
}

Block* CachingAllocator::Impl::find_active(void* ptr, const char* op) {
  auto it = active.find(ptr);
  KILN_CHECK(it != active.end(), ValueError, "CachingAllocator::", op, ": pointer ", ptr,
             " was not allocated by the caching allocator of cuda:", device,
             " or was already freed");
  return it->second;
}

void* CachingAllocator::Impl::allocate(std::size_t bytes, void* stream) {
  std::size_t size = 0;
  if (!round_up(bytes, config.granule, &size)) throw_out_of_memory(bytes, bytes);
  const Pool pool = pool_for(size);
  process_events();
  Block* b = take_free_block(pool, stream, size);
  if (b != nullptr) ++stats.cache_hits;
  if (b == nullptr) b = new_segment(pool, stream, size);
  if (b == nullptr) {
    // Out of memory: retire every pending event, hand back all cached segments, retry.
    ++stats.oom_retries;
    backend.synchronize();
    process_events();
    b = take_free_block(pool, stream, size);
    if (b == nullptr) {
      release_free_segments();
      b = new_segment(pool, stream, size);
    }
    if (b == nullptr) throw_out_of_memory(bytes, size);
  }
  split(b, size, pool);
  b->allocated = true;
  active.emplace(b->ptr, b);
  stats.allocated_bytes.add(i64(b->size));
  stats.active_blocks.add(1);
  return b->ptr;
}

void CachingAllocator::Impl::free(void* ptr) {
  Block* b = find_active(ptr, "free");
  active.erase(ptr);
  b->allocated = false;
  stats.allocated_bytes.add(-i64(b->size));
  stats.active_blocks.add(-1);
  if (b->stream_uses.empty()) {
    return_to_pool(b);
  } else {
    for (void* s : b->stream_uses) {
      void* event = acquire_event();
      pending[s].emplace_back(event, b);
      ++b->pending_events;
      backend.record_event(event, s);
    }
    b->stream_uses.clear();
  }
  if (!config.cache) empty_cache();
}

void CachingAllocator::Impl::record_stream(void* ptr, void* stream) {
  Block* b = find_active(ptr, "record_stream");
  if (stream == b->stream) return;  // its own stream orders its reuse already
  auto& uses = b->stream_uses;
  if (std::find(uses.begin(), uses.end(), stream) == uses.end()) uses.push_back(stream);
}

void CachingAllocator::Impl::empty_cache() {
  if (!pending.empty()) {
    backend.synchronize();
    process_events();
  }
  release_free_segments();
}

// Called once by the destructor: returns what can be returned, never throws.
void CachingAllocator::Impl::destroy() noexcept {
  try {
    empty_cache();
    for (void* e : spare_events) backend.destroy_event(e);
    spare_events.clear();
    for (auto& [stream, queue] : pending) {
      for (auto& [event, block] : queue) backend.destroy_event(event);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: releasing the caching allocator of cuda:%d failed: %s\n", device,
                 e.what());
  }
  if (!active.empty()) {
    std::fprintf(stderr,
                 "kiln: the caching allocator of cuda:%d was destroyed with %zu live blocks "
                 "(%lld bytes); their segments are not returned\n",
                 device, active.size(), static_cast<long long>(stats.allocated_bytes.current));
  }
  for (auto& [base, seg] : segments) {
    for (Block* b = seg->head; b != nullptr;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
  }
  segments.clear();
}

CachingAllocator::CachingAllocator(int device, DeviceBackend& backend, AllocatorConfig config)
    : device_(device), config_(config), impl_(std::make_unique<Impl>(device, backend, config_)) {
  KILN_CHECK(config_.granule > 0 && config_.small_request_limit <= config_.small_segment_size &&
                 config_.small_segment_size % config_.granule == 0 &&
                 config_.large_segment_rounding % config_.granule == 0,
             ValueError, "CachingAllocator: inconsistent config (granule ", config_.granule,
             ", small limit ", config_.small_request_limit, ", small segment ",
             config_.small_segment_size, ", large rounding ", config_.large_segment_rounding, ")");
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->destroy();
}

void* CachingAllocator::allocate(std::size_t bytes, void* stream) {
  if (bytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->allocate(bytes, stream);
}

void CachingAllocator::free(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->free(ptr);
}

void CachingAllocator::record_stream(void* ptr, void* stream) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->record_stream(ptr, stream);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->empty_cache();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

void CachingAllocator::reset_peak_stats() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto& s = impl_->stats;
  for (Stat* st : {&s.allocated_bytes, &s.reserved_bytes, &s.segments, &s.active_blocks}) {
    reset_peak(*st);
  }
}

std::string CachingAllocator::memory_summary() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->memory_summary();
}

void CachingAllocator::check_invariants() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->check_invariants();
}

std::string format_bytes(std::int64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  for (; (v >= 1024.0 || v <= -1024.0) && u < 6; ++u) v /= 1024.0;
  char buf[48];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace kiln::cuda
