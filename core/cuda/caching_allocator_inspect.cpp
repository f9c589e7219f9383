// Looking inside the CUDA caching allocator without changing it: check_invariants()
// walks every segment and compares the block lists, free sets, active map, event queues
// and stats; memory_summary() renders the stats and pools as a table. The allocation
// policy itself is in caching_allocator.cpp (see Note [Caching allocator policy]).
#include "kiln/core/cuda/caching_allocator.h"

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>

#include "kiln/core/cuda/caching_allocator_impl.h"
#include "kiln/core/error.h"

namespace kiln::cuda {

using caching_detail::Block;
using caching_detail::i64;
using caching_detail::is_free;
using caching_detail::Pool;
using caching_detail::Segment;

namespace {

const char* pool_name(Pool p) { return p == Pool::small ? "small" : "large"; }

}  // namespace

// Totals of a walk over the segments, compared with the stats and the indexes.
struct CachingAllocator::Impl::Walk {
  std::int64_t allocated = 0, active = 0, reserved = 0, segments = 0, events = 0;
  std::size_t free[2] = {0, 0};  // per pool
};

// Checks one segment's block list: contiguous, sizes summing to the segment, every block
// in exactly one state, and no two free blocks side by side.
void CachingAllocator::Impl::check_segment(const Segment& seg, Walk& walk) const {
  const void* base = seg.base;
  KILN_ASSERT(seg.head != nullptr && seg.head->prev == nullptr && seg.head->ptr == seg.base,
              "segment ", base, " has a broken head");
  const char* expect = seg.base;
  bool previous_free = false;
  for (const Block* b = seg.head; b != nullptr; b = b->next) {
    const void* at = b->ptr;
    KILN_ASSERT(b->segment == &seg && b->stream == seg.stream && b->ptr == expect, "block ", at,
                " is misplaced in segment ", base);
    KILN_ASSERT(b->size > 0 && b->size % config.granule == 0, "block ", at, " has size ", b->size);
    KILN_ASSERT(b->next == nullptr || b->next->prev == b, "broken back link after ", at);
    KILN_ASSERT(!(is_free(b) && previous_free), "two adjacent free blocks end at ", at);
    if (b->allocated) {
      auto it = active.find(b->ptr);
      KILN_ASSERT(it != active.end() && it->second == b && b->pending_events == 0,
                  "allocated block ", at, " is not in the active map");
      walk.allocated += i64(b->size);
      ++walk.active;
    } else if (b->pending_events > 0) {
      walk.events += b->pending_events;
    } else {
      KILN_ASSERT(free_set(seg.pool).count(const_cast<Block*>(b)) == 1, "free block ", at,
                  " is missing from the ", pool_name(seg.pool), " pool");
      ++walk.free[static_cast<int>(seg.pool)];
    }
    previous_free = is_free(b);
    expect += b->size;
  }
  KILN_ASSERT(expect == seg.base + seg.size, "blocks of segment ", base, " sum to ",
              expect - seg.base, " bytes, the segment has ", seg.size);
  KILN_ASSERT(seg.pool == Pool::large || seg.size == config.small_segment_size, "small segment ",
              base, " has ", seg.size, " bytes");
  walk.reserved += i64(seg.size);
  ++walk.segments;
}

// Walks every segment and checks the free sets, the active map, the event queues and the
// stats against what it found.
void CachingAllocator::Impl::check_invariants() const {
  Walk w;
  for (const auto& [base, seg] : segments) check_segment(*seg, w);
  KILN_ASSERT(free_small.size() == w.free[0] && free_large.size() == w.free[1], "free sets hold ",
              free_small.size(), "+", free_large.size(), " blocks, the segments ", w.free[0], "+",
              w.free[1]);
  KILN_ASSERT(i64(active.size()) == w.active, "active map holds ", active.size(),
              " blocks, the segments ", w.active);
  std::int64_t queued = 0;
  for (const auto& [stream, queue] : pending) queued += i64(queue.size());
  KILN_ASSERT(queued == w.events, queued, " events are queued, blocks wait on ", w.events);
  const AllocatorStats& s = stats;
  KILN_ASSERT(s.allocated_bytes.current == w.allocated && s.active_blocks.current == w.active &&
                  s.reserved_bytes.current == w.reserved && s.segments.current == w.segments,
              "stats (allocated ", s.allocated_bytes.current, ", active ", s.active_blocks.current,
              ", reserved ", s.reserved_bytes.current, ", segments ", s.segments.current,
              ") disagree with the walk (", w.allocated, ", ", w.active, ", ", w.reserved, ", ",
              w.segments, ")");
  KILN_ASSERT(s.backend_mallocs - s.backend_frees == w.segments, "backend mallocs ",
              s.backend_mallocs, " - frees ", s.backend_frees, " != ", w.segments, " segments");
  for (const Stat* st : {&s.allocated_bytes, &s.reserved_bytes, &s.segments, &s.active_blocks}) {
    KILN_ASSERT(st->peak >= st->current, "a peak is below its current value");
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
      reserved += i64(seg->size);
      ++segment_count;
      for (const Block* b = seg->head; b != nullptr; b = b->next) {
        if (b->pending_events == 0) continue;
        ++waiting;
        waiting_bytes += i64(b->size);
      }
    }
    for (const Block* b : free_set(p)) free_bytes += i64(b->size);
    const std::string name = p == Pool::small ? "Small pool " : "Large pool ";
    row(name + "segments", count(segment_count), bytes(reserved));
    row(name + "free blocks", count(i64(free_set(p).size())), bytes(free_bytes));
  }
  row("Waiting on events", count(waiting), bytes(waiting_bytes));
  row("Largest free block", "", bytes(i64(largest_free_block())));
  os << rule;
  return os.str();
}

}  // namespace kiln::cuda
