// The emulator's thread-index built-ins, block order, shared memory (static and dynamic),
// poisoning and block barriers, checked against their CUDA definitions with odd block
// and grid shapes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "kiln/core/cuda/kernel.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

using ::testing::HasSubstr;

struct Indices {
  uint3 thread, block, block_dim, grid_dim;
};

__global__ void record_indices(Indices* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
  out[block * per_block + thread] = Indices{threadIdx, blockIdx, blockDim, gridDim};
}

// The same, with barriers in between: indices must survive fiber switches.
__global__ void record_indices_across_barriers(Indices* out) {
  const uint3 before = threadIdx;
  __syncthreads();
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  __syncthreads();
  const unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
  const bool same = before.x == threadIdx.x && before.y == threadIdx.y && before.z == threadIdx.z;
  out[block * per_block + thread] = Indices{same ? threadIdx : uint3{9999, 0, 0}, blockIdx,
                                            blockDim, gridDim};
}

using IndicesTest = SimTest;

void expect_indices(const std::vector<Indices>& got, dim3 grid, dim3 block) {
  std::size_t i = 0;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx)
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx, ++i) {
              const Indices& r = got[i];
              ASSERT_EQ(r.thread.x, tx);
              ASSERT_EQ(r.thread.y, ty);
              ASSERT_EQ(r.thread.z, tz);
              ASSERT_EQ(r.block.x, bx);
              ASSERT_EQ(r.block.y, by);
              ASSERT_EQ(r.block.z, bz);
              ASSERT_EQ(r.block_dim.x, block.x);
              ASSERT_EQ(r.block_dim.z, block.z);
              ASSERT_EQ(r.grid_dim.y, grid.y);
              ASSERT_EQ(r.grid_dim.z, grid.z);
            }
}

TEST_F(IndicesTest, EveryThreadSeesItsOwnIndicesInOddThreeDimensionalShapes) {
  const dim3 grid(3, 2, 2), block(5, 3, 2);  // 30 threads: one partial warp per block
  DeviceArray<Indices> out(12 * 30);
  KILN_LAUNCH(record_indices, grid, block, 0, nullptr)(out.get());
  expect_indices(out.to_host(), grid, block);
}

TEST_F(IndicesTest, IndicesSurviveBarrierSwitches) {
  const dim3 grid(2, 3, 1), block(7, 5, 3);  // 105 threads, 4 warps, last one partial
  DeviceArray<Indices> out(6 * 105);
  KILN_LAUNCH(record_indices_across_barriers, grid, block, 0, nullptr)(out.get());
  expect_indices(out.to_host(), grid, block);
}

// ---- block order ----

__global__ void record_start_order(unsigned* counter, unsigned* order) {
  if (threadIdx.x == 0) order[blockIdx.x] = atomicAdd(counter, 1u);
}

std::vector<unsigned> start_order(unsigned blocks, BlockOrderSetting setting) {
  set_block_order(setting);
  set_worker_threads(1);  // one OS thread: blocks start exactly in the hand-out order
  DeviceArray<unsigned> counter(std::vector<unsigned>{0});
  DeviceArray<unsigned> order(blocks);
  KILN_LAUNCH(record_start_order, dim3(blocks), dim3(3), 0, nullptr)(counter.get(), order.get());
  return order.to_host();
}

using BlockOrderTest = SimTest;

TEST_F(BlockOrderTest, ForwardReverseAndSeededRandom) {
  const unsigned n = 101;
  std::vector<unsigned> forward(n);
  std::iota(forward.begin(), forward.end(), 0u);
  std::vector<unsigned> reverse(forward.rbegin(), forward.rend());
  EXPECT_EQ(start_order(n, {BlockOrder::forward, 0}), forward);
  EXPECT_EQ(start_order(n, {BlockOrder::reverse, 0}), reverse);

  const auto random = start_order(n, {BlockOrder::random, 42});
  EXPECT_NE(random, forward);
  EXPECT_NE(random, reverse);
  auto sorted = random;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, forward) << "every block starts exactly once";
  EXPECT_EQ(start_order(n, {BlockOrder::random, 42}), random) << "a seed replays its order";
  EXPECT_NE(start_order(n, {BlockOrder::random, 43}), random);
}

__global__ void count_runs(unsigned* runs) { atomicAdd(&runs[blockIdx.x], 1u); }

TEST_F(BlockOrderTest, LargeRandomGridsRunEveryBlockOnce) {
  set_block_order({BlockOrder::random, 7});
  const unsigned n = 70001;  // past the permutation table: the affine bijection
  DeviceArray<unsigned> runs(std::vector<unsigned>(n, 0));
  KILN_LAUNCH(count_runs, dim3(n), dim3(1), 0, nullptr)(runs.get());
  const auto got = runs.to_host();
  EXPECT_EQ(std::count(got.begin(), got.end(), 1u), static_cast<long>(n));
}

// Two host threads launch at once, each on its own device: the pool serves both grids.
__global__ void add_one(int* data, int n) {
  __shared__ int bump;
  if (threadIdx.x == 0) bump = 1;
  __syncthreads();
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) data[i] += bump;
}

TEST_F(BlockOrderTest, ConcurrentLaunchesFromTwoHostThreads) {
  KILN_SIM_REQUIRE_DEVICES(2);
  const int n = 3000, launches = KILN_TEST_TSAN ? 8 : 40;  // TSan: smaller input
  std::vector<int> results[2];
  auto work = [&](int device) {
    KILN_CUDA_CHECK(cudaSetDevice(device));
    DeviceArray<int> data(std::vector<int>(n, device * 1000));
    for (int k = 0; k < launches; ++k) {
      KILN_LAUNCH(add_one, (n + 127) / 128, 128, 0, nullptr)(data.get(), n);
    }
    results[device] = data.to_host();
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  EXPECT_EQ(results[0], std::vector<int>(n, launches));
  EXPECT_EQ(results[1], std::vector<int>(n, 1000 + launches));
}

// ---- shared memory ----

__global__ void reverse_in_static_shared(const int* in, int* out) {
  __shared__ int tile[64];
  const int t = static_cast<int>(threadIdx.x);
  tile[t] = in[blockIdx.x * 64 + t];
  __syncthreads();
  out[blockIdx.x * 64 + t] = tile[63 - t];
}

using SharedMemoryTest = SimTest;

TEST_F(SharedMemoryTest, StaticSharedIsPrivateToEachRunningBlock) {
  const int blocks = 40;  // several OS threads run blocks at once
  std::vector<int> in(blocks * 64);
  std::iota(in.begin(), in.end(), 0);
  DeviceArray<int> din(in), dout(in.size());
  KILN_LAUNCH(reverse_in_static_shared, dim3(blocks), dim3(64), 0, nullptr)(din.get(), dout.get());
  const auto out = dout.to_host();
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < 64; ++t) ASSERT_EQ(out[b * 64 + t], b * 64 + 63 - t) << b << "," << t;
  }
}

// Reads its dynamic shared memory before writing it, then writes it.
__global__ void read_then_write_dynamic(float* seen, int n) {
  KILN_DYNAMIC_SHARED(float, smem);
  for (int i = threadIdx.x; i < n; i += blockDim.x) seen[blockIdx.x * n + i] = smem[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) smem[i] = 1.0f;
}

TEST_F(SharedMemoryTest, DynamicSharedIsPoisonedForEveryBlock) {
  const int n = 300, blocks = 5;
  set_worker_threads(1);  // the same OS thread runs every block: reuse must not leak
  DeviceArray<float> seen(n * blocks);
  KILN_LAUNCH(read_then_write_dynamic, dim3(blocks), dim3(64), n * sizeof(float), nullptr)(
      seen.get(), n);
  for (float v : seen.to_host()) ASSERT_TRUE(std::isnan(v)) << v;
}

__global__ void fill_dynamic(unsigned char* out, int n) {
  KILN_DYNAMIC_SHARED(unsigned char, smem);
  for (int i = threadIdx.x; i < n; i += blockDim.x) smem[i] = static_cast<unsigned char>(i * 7);
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = smem[n - 1 - i];
}

TEST_F(SharedMemoryTest, OptInAllowsUpTo227KiB) {
  const int n = 227 * 1024;
  DeviceArray<unsigned char> out(n);
  EXPECT_THAT([&] { KILN_LAUNCH(fill_dynamic, dim3(1), dim3(256), n, nullptr)(out.get(), n); },
              ::testing::ThrowsMessage<CudaError>(HasSubstr("cudaFuncSetAttribute")));
  KILN_CUDA_CHECK(cudaFuncSetAttribute(fill_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, n));
  KILN_LAUNCH(fill_dynamic, dim3(1), dim3(256), n, nullptr)(out.get(), n);
  const auto host = out.to_host();
  for (int i = 0; i < n; i += 997) {
    ASSERT_EQ(host[i], static_cast<unsigned char>((n - 1 - i) * 7)) << i;
  }
  EXPECT_EQ(cudaFuncSetAttribute(fill_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, n + 1),
            cudaErrorInvalidValue);
}

__global__ void write_even(float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n && i % 2 == 0) out[i] = 1.0f;
}

TEST_F(SharedMemoryTest, UnwrittenDeviceMemoryReadsAsNaN) {
  const int n = 1001;
  DeviceArray<float> out(n);
  KILN_LAUNCH(write_even, dim3((n + 127) / 128), dim3(128), 0, nullptr)(out.get(), n);
  const auto host = out.to_host();
  for (int i = 0; i < n; ++i) {
    if (i % 2 == 0) ASSERT_EQ(host[i], 1.0f);
    else ASSERT_TRUE(std::isnan(host[i])) << i;
  }
}

// ---- barriers with results ----

__global__ void barrier_votes(int* out, int modulus) {
  const int t = static_cast<int>(threadIdx.x);
  const int count = __syncthreads_count(t % modulus == 0);
  const int all = __syncthreads_and(t < 1000);
  const int none_big = __syncthreads_and(t < 5);
  const int any = __syncthreads_or(t == static_cast<int>(blockDim.x) - 1);
  const int none = __syncthreads_or(0);
  if (t == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = none_big;
    out[3] = any;
    out[4] = none;
  }
}

using BarrierTest = SimTest;

TEST_F(BarrierTest, CountAndOrOverAnOddBlock) {
  DeviceArray<int> out(5);
  KILN_LAUNCH(barrier_votes, dim3(1), dim3(37), 0, nullptr)(out.get(), 3);
  EXPECT_EQ(out.to_host(), (std::vector<int>{13, 1, 0, 1, 0}));
}

// ---- the hardware guard: inline PTX on a GPU, the plain-CUDA fallback in SIM ----

__device__ unsigned lane_id() {
#if KILN_DEVICE_HAS_HARDWARE
  unsigned id;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(id));
  return id;
#else
  return (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % warpSize;
#endif
}

__global__ void record_lane_ids(unsigned* out) {
  out[threadIdx.x + blockDim.x * threadIdx.y] = lane_id();
}

TEST_F(BarrierTest, HardwareGuardFallbackRunsInSim) {
  EXPECT_EQ(KILN_DEVICE_HAS_HARDWARE, 0);  // host code: 0 in every build
  DeviceArray<unsigned> out(70);
  KILN_LAUNCH(record_lane_ids, 1, dim3(7, 10), 0, nullptr)(out.get());
  const auto got = out.to_host();
  for (unsigned t = 0; t < 70; ++t) EXPECT_EQ(got[t], t % 32) << t;
}

// ---- kernel arguments and fp16 ----

__global__ void convert_args(std::int64_t n, float scale, double* out) {
  if (threadIdx.x == 0) out[0] = static_cast<double>(n) * scale;
}

TEST_F(BarrierTest, ArgumentsConvertLikeACall) {
  DeviceArray<double> out(1);
  const int n = 3;            // int -> std::int64_t
  const double scale = 0.5;   // double -> float
  KILN_LAUNCH(convert_args, 1, 32, 0, nullptr)(n, scale, out.get());
  EXPECT_EQ(out.to_host()[0], 1.5);
}

__global__ void round_trip_half(const float* in, Half* h, BFloat16* b, float* back, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  h[i] = Half(in[i]);
  b[i] = BFloat16(in[i]);
  back[i] = static_cast<float>(h[i]) + static_cast<float>(b[i]);
}

TEST_F(BarrierTest, HalfAndBFloat16ConvertAsOnTheHost) {
  const std::vector<float> in = {0.1f, -2.5f, 65504.f, 1e-7f, 3.14159f, -0.0f, 70000.f};
  const int n = static_cast<int>(in.size());
  DeviceArray<float> din(in), back(n);
  DeviceArray<Half> h(n);
  DeviceArray<BFloat16> b(n);
  KILN_LAUNCH(round_trip_half, 1, 32, 0, nullptr)(din.get(), h.get(), b.get(), back.get(), n);
  const auto got = back.to_host();
  for (int i = 0; i < n; ++i) {
    const float want = static_cast<float>(Half(in[i])) + static_cast<float>(BFloat16(in[i]));
    EXPECT_EQ(std::memcmp(&got[i], &want, sizeof want), 0) << in[i];
  }
}

}  // namespace
}  // namespace kiln::sim::test
