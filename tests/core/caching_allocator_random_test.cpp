// A randomized soak of CachingAllocator on the fake device: 100,000 operations
// (allocate, free, record_stream, event completion, empty_cache) over four streams, with
// sizes across both pools and a memory limit tight enough to take the out-of-memory
// path. A shadow model checks that live blocks never overlap, that a block freed after
// record_stream is not handed out before its events complete, and that the stats match;
// check_invariants() walks the segments every 1,000 operations and at the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "fake_backend.h"
#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/error.h"

namespace {

using kiln::testing::fake_stream;
using kiln::testing::FakeBackend;

constexpr std::size_t MiB = 1 << 20;
constexpr int kStreams = 4;

struct LiveBlock {
  std::uintptr_t start = 0;
  std::size_t size = 0;  // rounded to the granule
  void* stream = nullptr;
  std::vector<void*> used_on;  // other streams (record_stream)
};

// A freed block that must not be handed out until events on these streams complete.
struct PendingRange {
  std::uintptr_t start = 0, end = 0;
  std::vector<void*> streams;
};

class Soak {
 public:
  explicit Soak(std::uint64_t seed) : rng_(seed), alloc_(0, backend_) {
    backend_.memory.set_limit(320 * MiB);
  }

  void run(int operations) {
    for (int i = 1; i <= operations; ++i) {
      step();
      if (i % 1000 == 0) check();
      if (::testing::Test::HasFatalFailure()) return;
    }
    while (!live_.empty()) free_at(0);
    backend_.complete_all_events();
    alloc_.empty_cache();
    check();
    EXPECT_EQ(alloc_.stats().reserved_bytes.current, 0);
    EXPECT_EQ(backend_.memory.live_buffers(), 0u);
  }

  int out_of_memory_errors() const { return oom_errors_; }
  std::int64_t oom_retries() const { return alloc_.stats().oom_retries; }

 private:
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  void* random_stream() { return fake_stream(uniform(0, kStreams - 1)); }

  std::size_t random_size() {
    if (uniform(0, 3) > 0) {  // small pool, log-uniform from 1 B to 1 MiB
      const int bits = uniform(0, 20);
      return std::size_t{1} << bits |
             std::uniform_int_distribution<std::size_t>(0, (std::size_t{1} << bits) - 1)(rng_);
    }
    return std::uniform_int_distribution<std::size_t>(MiB + 1, 24 * MiB)(rng_);
  }

  void step() {
    const int r = uniform(0, 99);
    const int alloc_share = live_.size() < 48 ? 55 : 35;
    if (r < alloc_share) {
      allocate();
    } else if (r < 80) {
      if (!live_.empty()) free_at(uniform(0, static_cast<int>(live_.size()) - 1));
    } else if (r < 90) {
      if (!live_.empty()) record(live_[uniform(0, static_cast<int>(live_.size()) - 1)]);
    } else if (r < 99) {
      complete_on(random_stream());
    } else if (uniform(0, 9) == 0) {
      alloc_.empty_cache();
      after_synchronize();
    }
  }

  void allocate() {
    const std::size_t bytes = random_size();
    void* stream = random_stream();
    const std::int64_t syncs = backend_.synchronizations;
    void* p = nullptr;
    try {
      p = alloc_.allocate(bytes, stream);
    } catch (const kiln::OutOfMemoryError&) {
      ++oom_errors_;
    }
    if (backend_.synchronizations != syncs) after_synchronize();
    if (p == nullptr) return;
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    const std::size_t size = (bytes + 511) / 512 * 512;
    ASSERT_EQ(start % 512, 0u);
    auto next = by_address_.lower_bound(start);
    ASSERT_TRUE(next == by_address_.end() || next->first >= start + size)
        << "overlaps a live block";
    if (next != by_address_.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second, start) << "overlaps a live block";
    }
    for (const PendingRange& pr : pending_) {
      ASSERT_TRUE(start + size <= pr.start || pr.end <= start)
          << "reused a block whose record_stream events have not completed";
    }
    by_address_.emplace(start, size);
    live_.push_back({start, size, stream, {}});
    rounded_live_bytes_ += size;
  }

  void free_at(int i) {
    LiveBlock b = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    by_address_.erase(b.start);
    rounded_live_bytes_ -= b.size;
    alloc_.free(reinterpret_cast<void*>(b.start));
    // (A large block may be longer than its rounded request; the model checks the part
    // it knows.)
    if (!b.used_on.empty()) pending_.push_back({b.start, b.start + b.size, b.used_on});
  }

  void record(LiveBlock& b) {
    void* s = random_stream();
    alloc_.record_stream(reinterpret_cast<void*>(b.start), s);
    if (s != b.stream && std::find(b.used_on.begin(), b.used_on.end(), s) == b.used_on.end()) {
      b.used_on.push_back(s);
    }
  }

  void complete_on(void* stream) {
    backend_.complete_events_on(stream);
    for (PendingRange& pr : pending_) std::erase(pr.streams, stream);
    std::erase_if(pending_, [](const PendingRange& pr) { return pr.streams.empty(); });
  }

  void after_synchronize() { pending_.clear(); }  // the fake completes every event

  void check() {
    alloc_.check_invariants();
    const kiln::cuda::AllocatorStats s = alloc_.stats();
    ASSERT_EQ(s.active_blocks.current, static_cast<std::int64_t>(live_.size()));
    // Blocks are the rounded request plus, for large ones, a tail under 1 MiB.
    ASSERT_GE(s.allocated_bytes.current, static_cast<std::int64_t>(rounded_live_bytes_));
    ASSERT_LT(s.allocated_bytes.current,
              static_cast<std::int64_t>(rounded_live_bytes_ + live_.size() * MiB + 1));
    ASSERT_LE(s.reserved_bytes.current, static_cast<std::int64_t>(backend_.memory.limit()));
    ASSERT_EQ(s.reserved_bytes.current, static_cast<std::int64_t>(backend_.memory.live_bytes()));
    ASSERT_EQ(s.backend_mallocs, backend_.memory.mallocs);
    ASSERT_EQ(s.backend_frees, backend_.memory.frees);
  }

  std::mt19937_64 rng_;
  FakeBackend backend_;
  kiln::cuda::CachingAllocator alloc_;
  std::vector<LiveBlock> live_;
  std::map<std::uintptr_t, std::size_t> by_address_;
  std::vector<PendingRange> pending_;
  std::size_t rounded_live_bytes_ = 0;
  int oom_errors_ = 0;
};

TEST(CachingAllocatorRandom, HundredThousandOperationsKeepInvariants) {
  constexpr std::uint64_t kSeed = 20240611;
  SCOPED_TRACE(::testing::Message() << "seed " << kSeed);
  Soak soak(kSeed);
  soak.run(100'000);
  // The limit is tight enough that the flush-and-retry path ran.
  EXPECT_GT(soak.oom_retries(), 0);
  RecordProperty("out_of_memory_errors", soak.out_of_memory_errors());
}

}  // namespace
