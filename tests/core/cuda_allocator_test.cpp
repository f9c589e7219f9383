// The allocators on a real cuda device (a GPU, or the SIM emulator): the caching
// allocator through device_allocator(0) and the pinned host allocator. The policy itself
// is proven on a fake device in caching_allocator_test.cpp; these check that it holds
// over the CUDA runtime. Each test skips with a reason when there is no device.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/pinned_allocator.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/error.h"
#include "kiln_test.h"

namespace kiln::cuda {
namespace {

constexpr std::size_t KiB = 1 << 10;
constexpr std::size_t MiB = 1 << 20;

void* default_stream() { return Stream::default_stream(0).native(); }

TEST(CachingAllocatorCuda, AllocatesAlignedBlocksAndReusesThemOnTheSameStream) {
  KILN_REQUIRE_CUDA();
  CachingAllocator& alloc = device_allocator(0);
  void* a = alloc.allocate(1000, default_stream());
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 256, 0u);
  const AllocatorStats before = alloc.stats();
  alloc.free(a);
  void* b = alloc.allocate(1000, default_stream());
  EXPECT_EQ(b, a);
  EXPECT_EQ(alloc.stats().cache_hits, before.cache_hits + 1);
  EXPECT_EQ(alloc.stats().backend_mallocs, before.backend_mallocs);
  alloc.free(b);
  alloc.check_invariants();
}

TEST(CachingAllocatorCuda, StatsFollowAllocations) {
  KILN_REQUIRE_CUDA();
  CachingAllocator& alloc = device_allocator(0);
  const AllocatorStats before = alloc.stats();
  void* small = alloc.allocate(1000, default_stream());         // small pool: exactly 1 KiB
  void* large = alloc.allocate(3 * MiB + 1, default_stream());  // large: a tail < 1 MiB may stay
  const AllocatorStats during = alloc.stats();
  const std::int64_t grown = during.allocated_bytes.current - before.allocated_bytes.current;
  EXPECT_GE(grown, static_cast<std::int64_t>(KiB + 3 * MiB + 512));
  EXPECT_LE(grown, static_cast<std::int64_t>(KiB + 4 * MiB));
  EXPECT_EQ(during.active_blocks.current, before.active_blocks.current + 2);
  EXPECT_GE(during.reserved_bytes.current, during.allocated_bytes.current);
  alloc.free(large);
  EXPECT_EQ(alloc.stats().allocated_bytes.current - before.allocated_bytes.current,
            static_cast<std::int64_t>(KiB));
  alloc.free(small);
  EXPECT_EQ(alloc.stats().allocated_bytes.current, before.allocated_bytes.current);
  EXPECT_GE(alloc.stats().allocated_bytes.peak, during.allocated_bytes.current);
  alloc.check_invariants();
}

TEST(CachingAllocatorCuda, BlocksStayOnTheirStream) {
  KILN_REQUIRE_CUDA();
  CachingAllocator& alloc = device_allocator(0);
  const Stream side = Stream::create(0);
  void* a = alloc.allocate(64 * KiB, side.native());
  alloc.free(a);
  void* b = alloc.allocate(64 * KiB, default_stream());
  EXPECT_NE(b, a);
  void* c = alloc.allocate(64 * KiB, side.native());
  EXPECT_EQ(c, a);
  alloc.free(b);
  alloc.free(c);
  alloc.check_invariants();
}

TEST(CachingAllocatorCuda, RecordStreamReusesOnceTheOtherStreamIsDone) {
  KILN_REQUIRE_CUDA();
  CachingAllocator& alloc = device_allocator(0);
  const Stream side = Stream::create(0);
  void* a = alloc.allocate(5 * MiB, default_stream());
  alloc.record_stream(a, side.native());
  alloc.free(a);
  side.synchronize();  // the event recorded on `side` at free() has completed
  void* b = alloc.allocate(5 * MiB, default_stream());
  EXPECT_EQ(b, a);
  alloc.free(b);
  alloc.check_invariants();
}

TEST(CachingAllocatorCuda, EmptyCacheReturnsFreeSegments) {
  KILN_REQUIRE_CUDA();
  CachingAllocator& alloc = device_allocator(0);
  void* a = alloc.allocate(64 * MiB, default_stream());
  alloc.free(a);
  const AllocatorStats before = alloc.stats();
  alloc.empty_cache();
  const AllocatorStats after = alloc.stats();
  EXPECT_LE(after.reserved_bytes.current, before.reserved_bytes.current - std::int64_t{64 * MiB});
  EXPECT_GT(after.backend_frees, before.backend_frees);
  alloc.check_invariants();
}

TEST(CachingAllocatorCuda, AbsurdRequestRaisesOutOfMemoryWithTheNumbers) {
  KILN_REQUIRE_CUDA();
  CachingAllocator& alloc = device_allocator(0);
  void* held = alloc.allocate(4 * KiB, default_stream());
  try {
    alloc.allocate(std::size_t{1} << 50, default_stream());  // 1 PiB
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string m = e.what();
    for (const char* part : {"cuda:0", "1.00 PiB (1125899906842624 bytes)", "in total", "allocated",
                             "reserved", "largest free block", "empty_cache()"}) {
      EXPECT_NE(m.find(part), std::string::npos) << "missing '" << part << "' in: " << m;
    }
  }
  void* after = alloc.allocate(4 * KiB, default_stream());  // still usable
  EXPECT_NE(after, nullptr);
  alloc.free(after);
  alloc.free(held);
  alloc.check_invariants();
}

TEST(CachingAllocatorCuda, RejectsUnknownPointersAndDevices) {
  KILN_REQUIRE_CUDA();
  int local = 0;
  EXPECT_THROW(device_allocator(0).free(&local), ValueError);
  EXPECT_THROW(device_allocator(device_count()), DeviceError);
  EXPECT_THROW(device_allocator(-1), DeviceError);
}

TEST(PinnedAllocatorCuda, AllocatesWritableMemoryAndReusesIt) {
  KILN_REQUIRE_CUDA();
  void* a = pinned_alloc(1000);
  ASSERT_NE(a, nullptr);
  std::memset(a, 0x5a, 1000);  // host memory: writable from the CPU
  EXPECT_EQ(static_cast<unsigned char*>(a)[999], 0x5a);
  const PinnedStats before = pinned_stats();
  pinned_free(a);
  void* b = pinned_alloc(1024);  // the same 1 KiB size class
  EXPECT_EQ(b, a);
  EXPECT_EQ(pinned_stats().cache_hits, before.cache_hits + 1);
  EXPECT_EQ(pinned_stats().host_allocs, before.host_allocs);
  pinned_free(b);
}

TEST(PinnedAllocatorCuda, RecordStreamReusesOnceTheStreamIsDone) {
  KILN_REQUIRE_CUDA();
  const Stream side = Stream::create(0);
  void* a = pinned_alloc(64 * KiB);
  pinned_record_stream(a, side);
  pinned_free(a);
  side.synchronize();
  void* b = pinned_alloc(64 * KiB);
  EXPECT_EQ(b, a);
  pinned_free(b);
}

TEST(PinnedAllocatorCuda, EmptyCacheReleasesFreeBlocks) {
  KILN_REQUIRE_CUDA();
  void* a = pinned_alloc(2 * MiB);
  pinned_free(a);
  const PinnedStats before = pinned_stats();
  pinned_empty_cache();
  const PinnedStats after = pinned_stats();
  EXPECT_LE(after.reserved_bytes.current, before.reserved_bytes.current - std::int64_t{2 * MiB});
  EXPECT_GT(after.host_frees, before.host_frees);
  int local = 0;
  EXPECT_THROW(pinned_free(&local), ValueError);
}

TEST(PinnedAllocatorCuda, RaisesDeviceErrorWithoutADevice) {
  if (is_available()) GTEST_SKIP() << "a cuda device exists; this checks the build without one";
  EXPECT_THROW(pinned_alloc(1024), DeviceError);
  EXPECT_EQ(pinned_stats().host_allocs, 0);
  pinned_free(nullptr);  // a no-op, even here
}

}  // namespace
}  // namespace kiln::cuda
