// Warp collectives against CUDA's documented definitions: shuffles (every mode, every
// width, partial warps, exited lanes, disjoint masks), votes, __activemask, __syncwarp and
// the sm_80 reductions. The reference below is written from the CUDA C++ Programming
// Guide's prose, independently of the emulator's PTX-based code. A lane reading from a
// lane that does not take part gets poison (all bits set) in SIM.
#include <cstdint>
#include <cstring>
#include <vector>

#include "kiln/core/cuda/kernel.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

constexpr unsigned kPoison = 0xffffffffu;
constexpr unsigned kFull = 0xffffffffu;

enum Mode { kIdx, kUp, kDown, kXor };

__device__ unsigned value_of(unsigned t) { return 1000u + t * 7u; }

__global__ void shuffle(Mode mode, int operand, int width, int live, unsigned* out) {
  const unsigned t = threadIdx.x;
  if (static_cast<int>(t % 32) >= live) return;  // lanes past `live` exit first
  const unsigned v = value_of(t);
  unsigned r = 0;
  switch (mode) {
    case kIdx: r = __shfl_sync(kFull, v, operand, width); break;
    case kUp: r = __shfl_up_sync(kFull, v, static_cast<unsigned>(operand), width); break;
    case kDown: r = __shfl_down_sync(kFull, v, static_cast<unsigned>(operand), width); break;
    case kXor: r = __shfl_xor_sync(kFull, v, operand, width); break;
  }
  out[t] = r;
}

// The Programming Guide's definition; `takes_part(lane)` says whether a lane is there.
unsigned reference(Mode mode, unsigned t, int operand, int width, unsigned threads, int live) {
  const unsigned lane = t % 32, base = t - lane;
  const unsigned segment = lane / width * width;
  unsigned src = lane;
  switch (mode) {
    case kIdx: src = segment + (static_cast<unsigned>(operand) & (width - 1)); break;
    case kUp: src = lane % width >= static_cast<unsigned>(operand) ? lane - operand : lane; break;
    case kDown: src = lane % width + operand < static_cast<unsigned>(width) ? lane + operand : lane;
      break;
    case kXor: {  // later groups are out of reach: own value
      const unsigned j = lane ^ static_cast<unsigned>(operand);
      src = j < segment + width ? j : lane;
      break;
    }
  }
  const bool there = base + src < threads && static_cast<int>(src) < live;
  return there ? value_of(base + src) : kPoison;
}

struct ShuffleCase {
  Mode mode;
  int operand;
  int width;
};

class ShuffleTest : public SimTest {
 protected:
  void check(const ShuffleCase& c, unsigned threads, int live) {
    SCOPED_TRACE(::testing::Message() << "mode " << c.mode << " operand " << c.operand
                                      << " width " << c.width << " threads " << threads
                                      << " live lanes " << live);
    DeviceArray<unsigned> out(threads);
    KILN_CUDA_CHECK(cudaMemset(out.get(), 0, threads * sizeof(unsigned)));
    KILN_LAUNCH(shuffle, 1, threads, 0, nullptr)(c.mode, c.operand, c.width, live, out.get());
    const auto got = out.to_host();
    for (unsigned t = 0; t < threads; ++t) {
      if (static_cast<int>(t % 32) >= live) continue;
      ASSERT_EQ(got[t], reference(c.mode, t, c.operand, c.width, threads, live)) << "thread " << t;
    }
  }
};

const ShuffleCase kCases[] = {
    {kIdx, 0, 32}, {kIdx, 31, 32}, {kIdx, 5, 8},   {kIdx, 37, 16}, {kIdx, -1, 4},
    {kIdx, 3, 1},  {kUp, 1, 32},   {kUp, 16, 32},  {kUp, 3, 8},    {kUp, 1, 2},
    {kDown, 1, 32}, {kDown, 16, 32}, {kDown, 5, 16}, {kDown, 2, 4}, {kDown, 31, 32},
    {kXor, 1, 32}, {kXor, 16, 32}, {kXor, 8, 16},  {kXor, 4, 8},   {kXor, 2, 2},
};

TEST_F(ShuffleTest, EveryModeAndWidthOnFullWarps) {
  for (const ShuffleCase& c : kCases) check(c, 64, 32);
}

TEST_F(ShuffleTest, PartialLastWarpReadsPoisonPastTheEnd) {
  for (const ShuffleCase& c : kCases) check(c, 45, 32);  // warp 1 has lanes 0..12
}

TEST_F(ShuffleTest, ExitedLanesAreNotWaitedForAndReadAsPoison) {
  for (const ShuffleCase& c : kCases) check(c, 96, 20);
}

TEST_F(ShuffleTest, OddTinyBlocks) {
  for (const ShuffleCase& c : kCases) check(c, 7, 32);
}

__global__ void shuffle_wide(double* d, long long* ll, float* f) {
  const unsigned t = threadIdx.x;
  d[t] = __shfl_xor_sync(kFull, 1.0 / (t + 1), 1);
  ll[t] = __shfl_down_sync(kFull, (1LL << 40) + t, 1);
  f[t] = __shfl_sync(kFull, 0.5f * t, 0);
}

TEST_F(ShuffleTest, EightByteAndFloatValuesKeepAllBits) {
  DeviceArray<double> d(32);
  DeviceArray<long long> ll(32);
  DeviceArray<float> f(32);
  KILN_LAUNCH(shuffle_wide, 1, 32, 0, nullptr)(d.get(), ll.get(), f.get());
  const auto hd = d.to_host();
  const auto hll = ll.to_host();
  const auto hf = f.to_host();
  for (unsigned t = 0; t < 32; ++t) {
    EXPECT_EQ(hd[t], 1.0 / ((t ^ 1u) + 1));
    EXPECT_EQ(hll[t], (1LL << 40) + (t < 31 ? t + 1 : t));
    EXPECT_EQ(hf[t], 0.0f);
  }
}

// Two half-warps in divergent branches, each with its own mask.
__global__ void disjoint_masks(unsigned* out) {
  const unsigned t = threadIdx.x;
  if (t < 16) {
    out[t] = __shfl_down_sync(0x0000ffffu, value_of(t), 1);
  } else {
    out[t] = __shfl_up_sync(0xffff0000u, value_of(t), 1);
  }
}

TEST_F(ShuffleTest, DisjointMasksInDivergentBranches) {
  DeviceArray<unsigned> out(32);
  KILN_LAUNCH(disjoint_masks, 1, 32, 0, nullptr)(out.get());
  const auto got = out.to_host();
  for (unsigned t = 0; t < 32; ++t) {
    const unsigned want = t < 15 ? value_of(t + 1)
                          : t == 15 ? kPoison   // lane 16 is not in lane 15's mask
                          : t == 16 ? kPoison   // lane 15 is not in lane 16's mask
                                    : value_of(t - 1);
    EXPECT_EQ(got[t], want) << t;
  }
}

__global__ void warp_sum(const float* in, float* out) {
  float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFull, v, offset);
  if (threadIdx.x % 32 == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}

TEST_F(ShuffleTest, TreeReductionSumsEachWarp) {
  const int blocks = 8, threads = 256;
  std::vector<float> in(blocks * threads);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 17);
  DeviceArray<float> din(in), out(in.size() / 32);
  KILN_LAUNCH(warp_sum, blocks, threads, 0, nullptr)(din.get(), out.get());
  const auto got = out.to_host();
  for (std::size_t w = 0; w < got.size(); ++w) {
    float want = 0;
    for (int l = 0; l < 32; ++l) want += in[w * 32 + l];
    EXPECT_EQ(got[w], want) << w;
  }
}

// ---- votes, active mask, __syncwarp, reductions ----

__global__ void votes(int live, unsigned* ballot, int* any, int* all, unsigned* active) {
  const unsigned t = threadIdx.x, lane = t % 32;
  if (static_cast<int>(lane) >= live) return;
  ballot[t] = __ballot_sync(kFull, lane % 3 == 0);
  any[t] = __any_sync(kFull, lane == 4);
  all[t] = __all_sync(kFull, lane < 100) * 2 + __all_sync(kFull, lane != 1);
  active[t] = __activemask();
}

class VoteTest : public SimTest {};

TEST_F(VoteTest, BallotAnyAllAndActiveMaskWithExitedLanesAndPartialWarp) {
  const unsigned threads = 50;  // warp 1: lanes 0..17
  const int live = 10;          // lanes 10.. exit before voting
  DeviceArray<unsigned> ballot(threads), active(threads);
  DeviceArray<int> any(threads), all(threads);
  KILN_LAUNCH(votes, 1, threads, 0, nullptr)(live, ballot.get(), any.get(), all.get(),
                                             active.get());
  const auto b = ballot.to_host(), a = active.to_host();
  const auto an = any.to_host(), al = all.to_host();
  for (unsigned t = 0; t < threads; ++t) {
    if (t % 32 >= static_cast<unsigned>(live)) continue;
    EXPECT_EQ(b[t], 0b1001001001u) << t;  // lanes 0, 3, 6, 9
    EXPECT_EQ(an[t], 1) << t;              // lane 4 votes true
    EXPECT_EQ(al[t], 2) << t;              // every lane < 100; lane 1 fails != 1
    EXPECT_EQ(a[t], (1u << live) - 1) << t;
  }
}

__global__ void rotate_through_shared(int* out) {
  __shared__ int s[32];
  const unsigned lane = threadIdx.x;
  s[lane] = static_cast<int>(lane * lane);
  __syncwarp();
  out[lane] = s[(lane + 1) % 32];
}

TEST_F(VoteTest, SyncwarpOrdersSharedMemory) {
  DeviceArray<int> out(32);
  KILN_LAUNCH(rotate_through_shared, 1, 32, 0, nullptr)(out.get());
  const auto got = out.to_host();
  for (int l = 0; l < 32; ++l) EXPECT_EQ(got[l], ((l + 1) % 32) * ((l + 1) % 32));
}

__global__ void reductions(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  const int v = lane % 2 ? -lane : lane;
  const unsigned u = static_cast<unsigned>(lane) * 3u;
  out[0 * 32 + lane] = __reduce_add_sync(kFull, v);
  out[1 * 32 + lane] = __reduce_min_sync(kFull, v);
  out[2 * 32 + lane] = __reduce_max_sync(kFull, v);
  out[3 * 32 + lane] = static_cast<int>(__reduce_add_sync(kFull, u));
  out[4 * 32 + lane] = static_cast<int>(__reduce_max_sync(kFull, u));
  out[5 * 32 + lane] = static_cast<int>(__reduce_min_sync(kFull, u + 1));
}

TEST_F(VoteTest, WarpReductions) {
  DeviceArray<int> out(6 * 32);
  KILN_LAUNCH(reductions, 1, 32, 0, nullptr)(out.get());
  const auto got = out.to_host();
  const int want[6] = {-16, -31, 30, 3 * 496, 93, 1};
  for (int k = 0; k < 6; ++k) {
    for (int l = 0; l < 32; ++l) ASSERT_EQ(got[k * 32 + l], want[k]) << k << " lane " << l;
  }
}

}  // namespace
}  // namespace kiln::sim::test
