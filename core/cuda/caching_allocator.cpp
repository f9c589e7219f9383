// The CUDA caching allocator: segments from the backend, carved into blocks, cached and
// reused per stream. The policy is stated in caching_allocator.h; the reasons below.
//
// Note [Caching allocator policy]
// cudaMalloc and cudaFree are slow (tens of microseconds to milliseconds) and cudaFree
// synchronizes the whole device, so a training step that allocated through them would
// stall on every temporary. Instead memory is obtained in segments and kept:
//   - Sizes round up to 512 B granules so that blocks freed by one shape fit the next
//     shape of about the same size, and every block stays 512-byte aligned (cudaMalloc
//     returns 256-byte aligned bases), which vector loads and cuBLAS like.
//   - Small requests (<= 1 MiB) share 2 MiB segments: thousands of tiny tensors
//     (biases, scalars, reductions) would otherwise each cost a cudaMalloc and waste the
//     driver's 2 MiB page granularity. Large requests get segments of their own, rounded
//     to 2 MiB, so a big free block is never pinned in place by a tiny live neighbour,
//     and they may be split only when the tail is at least 1 MiB (smaller tails would
//     just fragment). The two pools never lend blocks to each other.
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
#include "kiln/core/cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "kiln/core/error.h"

namespace kiln::cuda {
namespace {

enum class Pool : std::uint8_t { small, large };

const char* pool_name(Pool p) { return p == Pool::small ? "small" : "large"; }

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

bool is_free(const Block* b) { return !b->allocated && b->pending_events == 0; }

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

// Rounds n up to a multiple of m; false on overflow.
bool round_up(std::size_t n, std::size_t m, std::size_t* out) {
  if (n > std::numeric_limits<std::size_t>::max() - (m - 1)) return false;
  *out = (n + m - 1) / m * m;
  return true;
}

std::string format_bytes(std::int64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes < 0 ? -bytes : bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    ++u;
  }
  char buf[48];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%s%.2f %s", bytes < 0 ? "-" : "", v, units[u]);
  }
  return buf;
}

// "2.00 MiB (2097152 bytes)": readable and exact.
std::string describe_bytes(std::int64_t bytes) {
  return format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

void reset_peak(Stat& s) { s.peak = s.current; }

}  // namespace

struct CachingAllocator::Impl {
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

  void* allocate(std::size_t bytes, void* stream);
  void free(void* ptr);
  void record_stream(void* ptr, void* stream);
  void empty_cache();
  void check_invariants() const;
  std::string memory_summary() const;
  void destroy() noexcept;

 private:
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
};

// Best fit on the stream: the smallest free block >= size, lowest address among equals.
Block* CachingAllocator::Impl::take_free_block(Pool pool, void* stream, std::size_t size) {
  FreeSet& set = free_set(pool);
  Block key;
  key.stream = stream;
  key.size = size;
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
  stats.reserved_bytes.add(static_cast<std::int64_t>(segment_size));
  stats.segments.add(1);
  auto seg = std::make_unique<Segment>();
  seg->base = static_cast<char*>(p);
  seg->size = segment_size;
  seg->pool = pool;
  seg->stream = stream;
  auto* b = new Block;
  b->ptr = seg->base;
  b->size = segment_size;
  b->stream = stream;
  b->segment = seg.get();
  seg->head = b;
  segments.emplace(seg->base, std::move(seg));
  return b;
}

// Cuts `b` to `size`, leaving the tail free when it is worth keeping (see the Note).
void CachingAllocator::Impl::split(Block* b, std::size_t size, Pool pool) {
  const std::size_t remaining = b->size - size;
  const std::size_t min_tail = pool == Pool::small ? config.granule : config.large_split_min;
  if (remaining == 0 || remaining < min_tail) return;
  auto* tail = new Block;
  tail->ptr = b->ptr + size;
  tail->size = remaining;
  tail->stream = b->stream;
  tail->segment = b->segment;
  tail->prev = b;
  tail->next = b->next;
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
    if (b->prev) b->prev->next = b;
    else b->segment->head = b;
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
    stats.reserved_bytes.add(-static_cast<std::int64_t>(seg.size));
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
  const auto i64 = [](std::size_t n) { return static_cast<std::int64_t>(n); };
  const std::string rounded =
      size == bytes ? "" : ", rounded up from " + std::to_string(bytes) + " bytes requested";
  KILN_THROW(OutOfMemoryError, "CUDA out of memory on cuda:", device, ": tried to allocate ",
             describe_bytes(i64(size)), rounded, ". cuda:", device, " has ",
             describe_bytes(i64(total)), " in total; this allocator holds ",
             describe_bytes(stats.allocated_bytes.current), " allocated and ",
             describe_bytes(stats.reserved_bytes.current), " reserved, and its largest free block is ",
             describe_bytes(i64(largest_free_block())),
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
  stats.allocated_bytes.add(static_cast<std::int64_t>(b->size));
  stats.active_blocks.add(1);
  return b->ptr;
}

void CachingAllocator::Impl::free(void* ptr) {
  Block* b = find_active(ptr, "free");
  active.erase(ptr);
  b->allocated = false;
  stats.allocated_bytes.add(-static_cast<std::int64_t>(b->size));
  stats.active_blocks.add(-1);
  if (b->stream_uses.empty()) {
    return_to_pool(b);
    return;
  }
  for (void* s : b->stream_uses) {
    void* event = acquire_event();
    pending[s].emplace_back(event, b);
    ++b->pending_events;
    backend.record_event(event, s);
  }
  b->stream_uses.clear();
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
    std::fprintf(stderr, "kiln: releasing the caching allocator of cuda:%d failed: %s\n",
                 device, e.what());
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

// Walks every segment and checks blocks, free sets, the active map and the stats.
void CachingAllocator::Impl::check_invariants() const {
  std::int64_t allocated = 0, active_count = 0, reserved = 0, segment_count = 0, events = 0;
  std::size_t free_count[2] = {0, 0};
  for (const auto& [base, seg] : segments) {
    KILN_ASSERT(seg->base == base && seg->head != nullptr && seg->head->prev == nullptr,
                "segment ", static_cast<void*>(base), " has a broken head");
    const char* expect = seg->base;
    std::size_t sum = 0;
    bool previous_free = false;
    for (const Block* b = seg->head; b != nullptr; b = b->next) {
      KILN_ASSERT(b->segment == seg.get() && b->stream == seg->stream,
                  "block ", static_cast<void*>(b->ptr), " is linked into the wrong segment");
      KILN_ASSERT(b->ptr == expect, "block ", static_cast<void*>(b->ptr), " should start at ",
                  static_cast<const void*>(expect));
      KILN_ASSERT(b->size > 0 && b->size % config.granule == 0, "block ",
                  static_cast<void*>(b->ptr), " has size ", b->size);
      KILN_ASSERT(b->next == nullptr || b->next->prev == b, "broken back link after ",
                  static_cast<void*>(b->ptr));
      const bool free_now = is_free(b);
      KILN_ASSERT(!(free_now && previous_free), "two adjacent free blocks end at ",
                  static_cast<void*>(b->ptr));
      if (b->allocated) {
        auto it = active.find(b->ptr);
        KILN_ASSERT(it != active.end() && it->second == b && b->pending_events == 0,
                    "allocated block ", static_cast<void*>(b->ptr), " is not active");
        allocated += static_cast<std::int64_t>(b->size);
        ++active_count;
      } else if (b->pending_events > 0) {
        events += b->pending_events;
      } else {
        KILN_ASSERT(free_set(seg->pool).count(const_cast<Block*>(b)) == 1, "free block ",
                    static_cast<void*>(b->ptr), " is missing from the ", pool_name(seg->pool),
                    " pool");
        ++free_count[static_cast<int>(seg->pool)];
      }
      previous_free = free_now;
      expect += b->size;
      sum += b->size;
    }
    KILN_ASSERT(sum == seg->size, "blocks of segment ", static_cast<void*>(base), " sum to ",
                sum, " bytes, the segment has ", seg->size);
    KILN_ASSERT(seg->pool == Pool::large || seg->size == config.small_segment_size,
                "small segment of ", seg->size, " bytes");
    reserved += static_cast<std::int64_t>(seg->size);
    ++segment_count;
  }
  KILN_ASSERT(free_small.size() == free_count[0] && free_large.size() == free_count[1],
              "free sets hold ", free_small.size(), "+", free_large.size(),
              " blocks, the segments ", free_count[0], "+", free_count[1]);
  KILN_ASSERT(static_cast<std::int64_t>(active.size()) == active_count, "active map holds ",
              active.size(), " blocks, the segments ", active_count);
  std::int64_t queued = 0;
  for (const auto& [stream, queue] : pending) queued += static_cast<std::int64_t>(queue.size());
  KILN_ASSERT(queued == events, queued, " events queued, blocks wait on ", events);
  const auto& s = stats;
  KILN_ASSERT(s.allocated_bytes.current == allocated && s.active_blocks.current == active_count &&
                  s.reserved_bytes.current == reserved && s.segments.current == segment_count,
              "stats (allocated ", s.allocated_bytes.current, ", active ", s.active_blocks.current,
              ", reserved ", s.reserved_bytes.current, ", segments ", s.segments.current,
              ") disagree with the walk (", allocated, ", ", active_count, ", ", reserved, ", ",
              segment_count, ")");
  KILN_ASSERT(s.backend_mallocs - s.backend_frees == segment_count, "backend mallocs ",
              s.backend_mallocs, " - frees ", s.backend_frees, " != ", segment_count, " segments");
  for (const Stat* st : {&s.allocated_bytes, &s.reserved_bytes, &s.segments, &s.active_blocks}) {
    KILN_ASSERT(st->peak >= st->current, "a peak stat is below its current value");
  }
}

// A table in the spirit of torch.cuda.memory_summary(): one row per figure.
std::string CachingAllocator::Impl::memory_summary() const {
  std::ostringstream os;
  const auto row = [&os](const std::string& name, const std::string& current,
                         const std::string& peak) {
    char line[96];
    std::snprintf(line, sizeof line, "| %-28s | %14s | %14s |\n", name.c_str(), current.c_str(),
                  peak.c_str());
    os << line;
  };
  const auto bytes = [](std::int64_t n) { return format_bytes(n); };
  const auto count = [](std::int64_t n) { return std::to_string(n); };
  const std::string rule = "|" + std::string(64, '=') + "|\n";
  const std::string thin = "|" + std::string(64, '-') + "|\n";
  os << rule;
  row("kiln caching allocator", "cuda:" + std::to_string(device), "");
  os << rule;
  row("Metric", "Current", "Peak");
  os << thin;
  row("Allocated memory", bytes(stats.allocated_bytes.current), bytes(stats.allocated_bytes.peak));
  row("Reserved memory", bytes(stats.reserved_bytes.current), bytes(stats.reserved_bytes.peak));
  row("Segments", count(stats.segments.current), count(stats.segments.peak));
  row("Active blocks", count(stats.active_blocks.current), count(stats.active_blocks.peak));
  os << thin;
  row("Backend mallocs", count(stats.backend_mallocs), "");
  row("Backend frees", count(stats.backend_frees), "");
  row("Cache hits", count(stats.cache_hits), "");
  row("OOM retries", count(stats.oom_retries), "");
  os << thin;
  row("Blocks", "Count", "Bytes");
  os << thin;
  std::int64_t waiting = 0, waiting_bytes = 0;
  for (Pool p : {Pool::small, Pool::large}) {
    std::int64_t reserved = 0, segment_count = 0, free_bytes = 0;
    for (const auto& [base, seg] : segments) {
      if (seg->pool != p) continue;
      reserved += static_cast<std::int64_t>(seg->size);
      ++segment_count;
      for (const Block* b = seg->head; b != nullptr; b = b->next) {
        if (b->pending_events == 0) continue;
        ++waiting;
        waiting_bytes += static_cast<std::int64_t>(b->size);
      }
    }
    for (const Block* b : free_set(p)) free_bytes += static_cast<std::int64_t>(b->size);
    const std::string name = p == Pool::small ? "Small pool " : "Large pool ";
    row(name + "segments", count(segment_count), bytes(reserved));
    row(name + "free blocks", count(static_cast<std::int64_t>(free_set(p).size())),
        bytes(free_bytes));
  }
  row("Waiting on events", count(waiting), bytes(waiting_bytes));
  row("Largest free block", "", bytes(static_cast<std::int64_t>(largest_free_block())));
  os << rule;
  return os.str();
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

}  // namespace kiln::cuda
