// Policy tests of the pinned host-memory caching allocator on a fake backend (no GPU):
// power-of-two size classes, reuse, record_stream, out-of-memory handling, bad frees.
#include "kiln/core/cuda/pinned_allocator.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "kiln/core/error.h"

namespace {

using kiln::OutOfMemoryError;
using kiln::ValueError;
using kiln::testing::fake_stream;
using kiln::testing::FakeHostBackend;

constexpr std::size_t KiB = 1 << 10;
constexpr std::size_t MiB = 1 << 20;

// PinnedAllocator: CachingAllocator-style caching of pinned host memory, by power-of-two
// size class.
class PinnedAllocator : public ::testing::Test {
 protected:
  FakeHostBackend backend;
  kiln::cuda::PinnedAllocator alloc{backend};
};

TEST_F(PinnedAllocator, RoundsToPowersOfTwoFrom512Bytes) {
  using P = kiln::cuda::PinnedAllocator;
  EXPECT_EQ(P::block_size(1), 512u);
  EXPECT_EQ(P::block_size(512), 512u);
  EXPECT_EQ(P::block_size(513), 1024u);
  EXPECT_EQ(P::block_size(3 * MiB), 4 * MiB);
  EXPECT_EQ(P::block_size(SIZE_MAX), 0u);  // no power of two holds it
  EXPECT_THROW(alloc.allocate(SIZE_MAX), OutOfMemoryError);
  EXPECT_EQ(alloc.allocate(0), nullptr);
  void* a = alloc.allocate(3000);
  EXPECT_EQ(backend.memory.malloc_sizes, std::vector<std::size_t>{4 * KiB});
  EXPECT_EQ(alloc.stats().allocated_bytes.current, static_cast<std::int64_t>(4 * KiB));
  alloc.free(a);
}

TEST_F(PinnedAllocator, ReusesFreedBlocksOfTheSameSizeClass) {
  void* a = alloc.allocate(3000);
  alloc.free(a);
  void* b = alloc.allocate(5000);  // another class
  void* c = alloc.allocate(4096);
  EXPECT_NE(b, a);
  EXPECT_EQ(c, a);
  EXPECT_EQ(alloc.stats().cache_hits, 1);
  EXPECT_EQ(alloc.stats().host_allocs, 2);
  alloc.free(b);
  alloc.free(c);
}

TEST_F(PinnedAllocator, RecordStreamDelaysReuseUntilEventsComplete) {
  void* s1 = fake_stream(1);
  void* a = alloc.allocate(1 * MiB);
  alloc.record_stream(a, s1, 2);
  alloc.record_stream(a, s1);  // the current device (0): a second use
  alloc.free(a);
  EXPECT_EQ(backend.event_devices, (std::vector<int>{2, 0}));
  void* b = alloc.allocate(1 * MiB);
  EXPECT_NE(b, a);
  backend.events.complete_on(s1);
  void* c = alloc.allocate(1 * MiB);
  EXPECT_EQ(c, a);
  EXPECT_EQ(backend.events.live(), 0u);
  alloc.free(b);
  alloc.free(c);
}

TEST_F(PinnedAllocator, OutOfMemoryReleasesTheCacheThenRaises) {
  backend.memory.set_limit(5 * MiB);
  void* a = alloc.allocate(2 * MiB);
  alloc.free(a);                      // cached
  void* b = alloc.allocate(4 * MiB);  // 2 + 4 > 5: the cached block goes, then it fits
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(alloc.stats().host_frees, 1);
  try {
    alloc.allocate(3 * MiB);  // 4 + 4 > 5 with nothing left to release
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("4.00 MiB (4194304 bytes)"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(alloc.stats().reserved_bytes.current, static_cast<std::int64_t>(4 * MiB));
  alloc.free(b);
  alloc.empty_cache();
  EXPECT_EQ(backend.memory.live_buffers(), 0u);
}

TEST_F(PinnedAllocator, RejectsUnknownAndDoubleFrees) {
  int local = 0;
  EXPECT_THROW(alloc.free(&local), ValueError);
  void* a = alloc.allocate(100);
  alloc.free(a);
  EXPECT_THROW(alloc.free(a), ValueError);
  EXPECT_THROW(alloc.record_stream(a, nullptr), ValueError);
}

}  // namespace
