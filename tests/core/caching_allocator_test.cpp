// Policy tests of the CUDA caching allocator on a fake backend (no GPU): rounding, pools,
// splitting, coalescing, best fit, per-stream reuse, record_stream, out-of-memory
// handling, stats. PinnedAllocator's tests are in pinned_allocator_test.cpp.
#include "kiln/core/cuda/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_backend.h"
#include "kiln/core/error.h"

namespace {

using kiln::OutOfMemoryError;
using kiln::ValueError;
using kiln::cuda::AllocatorStats;
using kiln::testing::fake_stream;
using kiln::testing::FakeBackend;

constexpr std::size_t KiB = 1 << 10;
constexpr std::size_t MiB = 1 << 20;

char* as_bytes(void* p) { return static_cast<char*>(p); }

// The suite is named after the class it tests; every test ends with an invariant walk.
class CachingAllocator : public ::testing::Test {
 protected:
  void TearDown() override { alloc.check_invariants(); }

  FakeBackend backend;
  kiln::cuda::CachingAllocator alloc{0, backend};
  void* s1 = fake_stream(1);
  void* s2 = fake_stream(2);
};

TEST_F(CachingAllocator, RoundsSizesUpToGranules) {
  void* a = alloc.allocate(1, s1);
  EXPECT_EQ(alloc.stats().allocated_bytes.current, 512);
  void* b = alloc.allocate(513, s1);
  EXPECT_EQ(alloc.stats().allocated_bytes.current, 512 + 1024);
  EXPECT_EQ(as_bytes(b) - as_bytes(a), 512);  // carved right after a
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 512, 0u);
  alloc.free(a);
  alloc.free(b);
}

TEST_F(CachingAllocator, ZeroBytesAndNullptrAreNoOps) {
  EXPECT_EQ(alloc.allocate(0, s1), nullptr);
  alloc.free(nullptr);
  EXPECT_EQ(backend.memory.mallocs, 0);
}

TEST_F(CachingAllocator, SmallRequestsShareOneTwoMiBSegment) {
  void* a = alloc.allocate(1 * MiB, s1);  // the small-pool limit itself
  void* b = alloc.allocate(4 * KiB, s1);
  EXPECT_EQ(backend.memory.malloc_sizes, std::vector<std::size_t>{2 * MiB});
  EXPECT_EQ(as_bytes(b) - as_bytes(a), static_cast<std::ptrdiff_t>(1 * MiB));
  EXPECT_EQ(alloc.stats().reserved_bytes.current, static_cast<std::int64_t>(2 * MiB));
  alloc.free(a);
  alloc.free(b);
}

TEST_F(CachingAllocator, LargeRequestsGetOwnSegmentsRoundedToTwoMiB) {
  void* a = alloc.allocate(1 * MiB + 1, s1);
  void* b = alloc.allocate(5 * MiB, s1);
  EXPECT_EQ(backend.memory.malloc_sizes, (std::vector<std::size_t>{2 * MiB, 6 * MiB}));
  EXPECT_EQ(alloc.stats().segments.current, 2);
  alloc.free(a);
  alloc.free(b);
}

TEST_F(CachingAllocator, NeverSplitsABlockAcrossPools) {
  void* small = alloc.allocate(512, s1);         // small segment, 2 MiB - 512 B left free
  void* large = alloc.allocate(1536 * KiB, s1);  // fits that space, but is a large request
  EXPECT_EQ(backend.memory.mallocs, 2);
  EXPECT_GE(as_bytes(large) - as_bytes(small), static_cast<std::ptrdiff_t>(2 * MiB));
  alloc.free(large);
  void* small2 = alloc.allocate(1 * MiB, s1);  // the free large block is not lent either
  EXPECT_EQ(as_bytes(small2) - as_bytes(small), 512);
  alloc.free(small);
  alloc.free(small2);
}

TEST_F(CachingAllocator, SplitsLargeBlocksOnlyWhenTheTailIsWorthKeeping) {
  void* a = alloc.allocate(8 * MiB, s1);
  alloc.free(a);
  void* b = alloc.allocate(7 * MiB + 512 * KiB, s1);  // 512 KiB tail stays in the block
  EXPECT_EQ(b, a);
  EXPECT_EQ(alloc.stats().allocated_bytes.current, static_cast<std::int64_t>(8 * MiB));
  alloc.free(b);
  void* c = alloc.allocate(3 * MiB, s1);  // 5 MiB tail is split off
  void* d = alloc.allocate(5 * MiB, s1);
  EXPECT_EQ(as_bytes(d) - as_bytes(c), static_cast<std::ptrdiff_t>(3 * MiB));
  EXPECT_EQ(backend.memory.mallocs, 1);
  EXPECT_EQ(alloc.stats().cache_hits, 3);
  alloc.free(c);
  alloc.free(d);
}

TEST_F(CachingAllocator, CoalescesFreeNeighboursIntoOneSegmentBlock) {
  void* a = alloc.allocate(4 * KiB, s1);
  void* b = alloc.allocate(8 * KiB, s1);
  void* c = alloc.allocate(4 * KiB, s1);
  alloc.free(a);
  alloc.free(c);  // merges with the free tail of the segment
  alloc.check_invariants();
  alloc.free(b);  // merges with both neighbours: the segment is one free block again
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().reserved_bytes.current, 0);
  EXPECT_EQ(backend.memory.frees, 1);
}

TEST_F(CachingAllocator, BestFitPicksTheSmallestBlockThatFits) {
  void* x = alloc.allocate(4 * KiB, s1);
  void* hole8 = alloc.allocate(8 * KiB, s1);
  void* y = alloc.allocate(4 * KiB, s1);
  void* hole16 = alloc.allocate(16 * KiB, s1);
  void* z = alloc.allocate(4 * KiB, s1);
  alloc.free(hole16);
  alloc.free(hole8);
  EXPECT_EQ(alloc.allocate(6 * KiB, s1), hole8);    // 8 KiB beats 16 KiB and the tail
  EXPECT_EQ(alloc.allocate(10 * KiB, s1), hole16);  // 16 KiB beats the big tail
  void* large4a = alloc.allocate(4 * MiB, s1);      // four segments, in address order
  void* large8 = alloc.allocate(8 * MiB, s1);
  void* large6 = alloc.allocate(6 * MiB, s1);
  void* large4b = alloc.allocate(4 * MiB, s1);
  for (void* p : {large4b, large6, large8, large4a}) alloc.free(p);
  EXPECT_EQ(alloc.allocate(5 * MiB, s1), large6);   // 6 MiB beats 8 MiB
  EXPECT_EQ(alloc.allocate(4 * MiB, s1), large4a);  // equal sizes: the lowest address
  EXPECT_EQ(backend.memory.mallocs, 5);
  alloc.free(large6);
  alloc.free(large4a);
  for (void* p : {x, y, z, hole8, hole16}) alloc.free(p);
}

TEST_F(CachingAllocator, ReusesFreedBlockOnSameStream) {
  void* a = alloc.allocate(64 * KiB, s1);
  alloc.free(a);
  EXPECT_EQ(alloc.allocate(64 * KiB, s1), a);
  EXPECT_EQ(backend.memory.mallocs, 1);
  EXPECT_EQ(alloc.stats().cache_hits, 1);
  alloc.free(a);
}

TEST_F(CachingAllocator, NeverHandsABlockToAnotherStream) {
  void* a = alloc.allocate(64 * KiB, s1);
  alloc.free(a);
  void* b = alloc.allocate(64 * KiB, s2);
  EXPECT_NE(b, a);
  EXPECT_EQ(backend.memory.mallocs, 2);  // s2 got a segment of its own
  alloc.free(b);
}

TEST_F(CachingAllocator, RecordStreamDelaysReuseUntilItsEventCompletes) {
  void* a = alloc.allocate(64 * KiB, s1);
  alloc.record_stream(a, s2);
  alloc.record_stream(a, s2);  // once is enough
  alloc.free(a);
  EXPECT_EQ(backend.events.incomplete_on(s2), 1u);
  EXPECT_EQ(alloc.stats().allocated_bytes.current, 0);
  void* b = alloc.allocate(64 * KiB, s1);
  EXPECT_NE(b, a);  // a still waits for the work queued on s2
  backend.complete_events_on(s2);
  void* c = alloc.allocate(64 * KiB, s1);
  EXPECT_EQ(c, a);
  alloc.free(b);
  alloc.free(c);
}

TEST_F(CachingAllocator, RecordStreamWaitsForEveryStream) {
  void* s3 = fake_stream(3);
  void* a = alloc.allocate(4 * MiB, s1);
  alloc.record_stream(a, s2);
  alloc.record_stream(a, s3);
  alloc.record_stream(a, s1);  // its own stream: no event
  alloc.free(a);
  EXPECT_EQ(backend.events.records(), 2);
  backend.complete_events_on(s2);
  void* b = alloc.allocate(4 * MiB, s1);
  EXPECT_NE(b, a);
  backend.complete_events_on(s3);
  void* c = alloc.allocate(4 * MiB, s1);
  EXPECT_EQ(c, a);
  alloc.free(b);
  alloc.free(c);
}

TEST_F(CachingAllocator, OutOfMemoryFlushesCacheAndRetries) {
  backend.memory.set_limit(8 * MiB);
  void* a = alloc.allocate(6 * MiB, s1);
  alloc.free(a);                          // cached on s1
  void* b = alloc.allocate(4 * MiB, s2);  // 6 + 4 > 8: the s1 segment must go
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(alloc.stats().oom_retries, 1);
  EXPECT_EQ(backend.memory.frees, 1);
  EXPECT_EQ(backend.synchronizations, 1);
  EXPECT_EQ(alloc.stats().reserved_bytes.current, static_cast<std::int64_t>(4 * MiB));
  alloc.free(b);
}

TEST_F(CachingAllocator, OutOfMemoryRetiresPendingEventsBeforeGivingUp) {
  backend.memory.set_limit(4 * MiB);
  void* a = alloc.allocate(3 * MiB, s1);
  alloc.record_stream(a, s2);
  alloc.free(a);  // pending on s2's event, which the fake never completes by itself
  void* b = alloc.allocate(3 * MiB, s1);  // synchronizing completes it: a is reused
  EXPECT_EQ(b, a);
  EXPECT_EQ(alloc.stats().oom_retries, 1);
  EXPECT_EQ(backend.memory.mallocs, 1);
  alloc.free(b);
}

TEST_F(CachingAllocator, OutOfMemoryErrorGivesTheNumbers) {
  backend.memory.set_limit(8 * MiB);
  void* held = alloc.allocate(6 * MiB, nullptr);
  try {
    alloc.allocate(4 * MiB - 100, nullptr);
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string m = e.what();
    for (const char* part :
         {"on cuda:0", "4.00 MiB (4194304 bytes)", "rounded up from 4194204 bytes requested",
          "8.00 MiB (8388608 bytes) in total", "6.00 MiB (6291456 bytes) allocated",
          "6.00 MiB (6291456 bytes) reserved", "largest free block is 0 B", "empty_cache()",
          "batch size", "KILN_SIM_MEMORY"}) {
      EXPECT_NE(m.find(part), std::string::npos) << "missing '" << part << "' in: " << m;
    }
  }
  EXPECT_EQ(alloc.stats().oom_retries, 1);
  alloc.check_invariants();
  alloc.free(held);
  void* again = alloc.allocate(4 * MiB, nullptr);  // works again once memory is back
  EXPECT_NE(again, nullptr);
  alloc.free(again);
}

TEST_F(CachingAllocator, AbsurdSizesRaiseOutOfMemory) {
  EXPECT_THROW(alloc.allocate(std::size_t{1} << 50, s1), OutOfMemoryError);
  EXPECT_THROW(alloc.allocate(SIZE_MAX, s1), OutOfMemoryError);
  EXPECT_THROW(alloc.allocate(SIZE_MAX - 4 * MiB, s1), OutOfMemoryError);
}

TEST_F(CachingAllocator, EmptyCacheReturnsOnlyFullyFreeSegments) {
  void* small = alloc.allocate(4 * KiB, s1);
  void* small2 = alloc.allocate(4 * KiB, s1);
  void* large = alloc.allocate(16 * MiB, s1);
  alloc.free(small2);
  alloc.free(large);
  alloc.empty_cache();
  EXPECT_EQ(backend.memory.frees, 1);  // the small segment still holds a live block
  EXPECT_EQ(alloc.stats().reserved_bytes.current, static_cast<std::int64_t>(2 * MiB));
  EXPECT_EQ(alloc.stats().segments.current, 1);
  alloc.free(small);
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().reserved_bytes.current, 0);
  EXPECT_EQ(backend.memory.live_buffers(), 0u);
}

TEST_F(CachingAllocator, EmptyCacheWaitsForPendingBlocks) {
  void* a = alloc.allocate(4 * MiB, s1);
  alloc.record_stream(a, s2);
  alloc.free(a);
  alloc.empty_cache();  // synchronizes, so the pending block is freed and returned
  EXPECT_EQ(alloc.stats().reserved_bytes.current, 0);
  EXPECT_EQ(backend.synchronizations, 1);
}

TEST_F(CachingAllocator, StatsKeepPeaks) {
  void* a = alloc.allocate(4 * MiB, s1);
  void* b = alloc.allocate(4 * MiB, s1);
  alloc.free(a);
  alloc.free(b);
  AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.allocated_bytes.current, 0);
  EXPECT_EQ(s.allocated_bytes.peak, static_cast<std::int64_t>(8 * MiB));
  EXPECT_EQ(s.active_blocks.peak, 2);
  EXPECT_EQ(s.reserved_bytes.current, static_cast<std::int64_t>(8 * MiB));
  EXPECT_EQ(s.backend_mallocs, 2);
  alloc.empty_cache();
  alloc.reset_peak_stats();
  s = alloc.stats();
  EXPECT_EQ(s.allocated_bytes.peak, 0);
  EXPECT_EQ(s.reserved_bytes.peak, 0);
  EXPECT_EQ(s.backend_frees, 2);
}

TEST_F(CachingAllocator, FreeOfUnknownPointerRaisesValueError) {
  int local = 0;
  try {
    alloc.free(&local);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    std::ostringstream ptr;
    ptr << static_cast<void*>(&local);
    EXPECT_NE(std::string(e.what()).find(ptr.str()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
  void* a = alloc.allocate(512, s1);
  alloc.free(a);
  EXPECT_THROW(alloc.free(a), ValueError);  // a double free
  EXPECT_THROW(alloc.record_stream(a, s2), ValueError);
}

TEST_F(CachingAllocator, MemorySummaryMentionsTheFigures) {
  void* a = alloc.allocate(3 * MiB, s1);
  void* b = alloc.allocate(1000, s1);
  const std::string summary = alloc.memory_summary();
  for (const char* part :
       {"cuda:0", "Allocated memory", "Reserved memory", "3.00 MiB", "6.00 MiB", "Segments",
        "Small pool", "Large pool", "Largest free block", "Waiting on events"}) {
    EXPECT_NE(summary.find(part), std::string::npos) << "missing '" << part << "' in:\n" << summary;
  }
  alloc.free(a);
  alloc.free(b);
}

TEST_F(CachingAllocator, DestructorReturnsCachedSegmentsAndEvents) {
  FakeBackend own_backend;
  {
    kiln::cuda::CachingAllocator own(0, own_backend);
    void* a = own.allocate(4 * MiB, s1);
    void* b = own.allocate(4 * KiB, s1);
    own.record_stream(b, s2);
    own.free(a);
    own.free(b);
  }
  EXPECT_EQ(own_backend.memory.live_buffers(), 0u);
  EXPECT_EQ(own_backend.events.live(), 0u);
}

TEST_F(CachingAllocator, IsSafeToUseFromManyThreads) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      void* stream = fake_stream(t % 2);
      std::vector<void*> live;
      for (int i = 0; i < 2000; ++i) {
        live.push_back(alloc.allocate((i % 7 + 1) * 3000 + (i % 3) * MiB, stream));
        if (live.size() > 8) {
          alloc.free(live.front());
          live.erase(live.begin());
        }
      }
      for (void* p : live) alloc.free(p);
    });
  }
  for (auto& th : threads) th.join();
  alloc.check_invariants();
  EXPECT_EQ(alloc.stats().allocated_bytes.current, 0);
  EXPECT_LE(alloc.stats().active_blocks.peak, 4 * 9);
}

}  // namespace

// With caching off (KILN_CUDA_NO_CACHING=1 for compute-sanitizer runs) a free returns the
// block's segment to the backend at once, so every allocation is a fresh backend malloc.
TEST(CachingAllocatorConfig, NoCachingReturnsSegmentsOnFree) {
  kiln::testing::FakeBackend backend;
  kiln::cuda::AllocatorConfig config;
  config.cache = false;
  kiln::cuda::CachingAllocator alloc(0, backend, config);
  void* a = alloc.allocate(4096, nullptr);
  alloc.free(a);
  EXPECT_EQ(alloc.stats().segments.current, 0);
  void* b = alloc.allocate(4096, nullptr);
  alloc.free(b);
  EXPECT_EQ(alloc.stats().backend_mallocs, 2);
  EXPECT_EQ(alloc.stats().backend_frees, 2);
  EXPECT_EQ(alloc.stats().cache_hits, 0);
}
