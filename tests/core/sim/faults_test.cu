// Planted bugs the emulator must catch, as a GPU would (or better): a missing
// __syncthreads, barrier divergence, deadlocks, warp-collective misuse, launch limits,
// misaligned vector and atomic accesses, exceptions in kernels; the sticky device error a
// fault leaves; and, in sanitizer builds, out-of-bounds accesses (ASan) and the race a
// missing barrier is (TSan).
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "kiln/core/cuda/kernel.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// ---- a missing barrier gives a wrong answer ----

template <bool kBarrier>
__global__ void tree_sum(const float* in, float* out) {
  __shared__ float s[256];
  const unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * 256 + t];
  __syncthreads();
  for (unsigned stride = 128; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    if (kBarrier) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

using PlantedBugTest = SimTest;

TEST_F(PlantedBugTest, MissingSyncthreadsGivesAWrongSum) {
  std::vector<float> in(4 * 256, 1.0f);
  DeviceArray<float> din(in), out(4);
  KILN_LAUNCH(tree_sum<true>, 4, 256, 0, nullptr)(din.get(), out.get());
  EXPECT_EQ(out.to_host(), (std::vector<float>(4, 256.0f)));
  if (KILN_TEST_TSAN) GTEST_SKIP() << "the racy variant is TsanRace.MissingBarrierIsReported";
  KILN_LAUNCH(tree_sum<false>, 4, 256, 0, nullptr)(din.get(), out.get());
  for (float v : out.to_host()) EXPECT_NE(v, 256.0f);
}

// ---- barrier divergence and deadlock ----

__global__ void early_exit_before_barrier(float* out, int n) {
  const int i = static_cast<int>(threadIdx.x);
  if (i >= n) return;  // the classic bug: these threads never reach the barrier
  out[i] = 1.0f;
  __syncthreads();
  out[i] += out[(i + 1) % n];
}

TEST_F(PlantedBugTest, ExitBeforeBarrierIsBarrierDivergence) {
  DeviceArray<float> out(64);
  EXPECT_THAT([&] { KILN_LAUNCH(early_exit_before_barrier, 1, 64, 0, nullptr)(out.get(), 50); },
              ThrowsMessage<CudaError>(AllOf(HasSubstr("barrier divergence"),
                                             HasSubstr("early_exit_before_barrier"),
                                             HasSubstr("block (0,0,0)"),
                                             HasSubstr("thread (50,0,0)"),
                                             HasSubstr("faults_test.cu"))));
}

__global__ void barrier_in_branch(int* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1;
}

TEST_F(PlantedBugTest, SkippedBarrierIsBarrierDivergence) {
  DeviceArray<int> out(32);
  EXPECT_THAT([&] { KILN_LAUNCH(barrier_in_branch, 1, 32, 0, nullptr)(out.get()); },
              ThrowsMessage<CudaError>(HasSubstr("barrier divergence")));
}

__global__ void mixed_barrier_kinds(int* out) {
  if (threadIdx.x % 2) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __syncthreads_count(1);
  }
}

TEST_F(PlantedBugTest, DifferentBarrierKindsAreDivergence) {
  DeviceArray<int> out(64);
  EXPECT_THAT([&] { KILN_LAUNCH(mixed_barrier_kinds, 1, 64, 0, nullptr)(out.get()); },
              ThrowsMessage<CudaError>(AllOf(HasSubstr("__syncthreads_count"),
                                             HasSubstr("barrier divergence"))));
}

__global__ void warp_waits_for_block(int* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  } else {
    __syncthreads();
  }
}

TEST_F(PlantedBugTest, ShuffleWaitingOnLanesAtABarrierIsADeadlock) {
  DeviceArray<int> out(32);
  EXPECT_THAT([&] { KILN_LAUNCH(warp_waits_for_block, 1, 32, 0, nullptr)(out.get()); },
              ThrowsMessage<CudaError>(AllOf(HasSubstr("deadlock"), HasSubstr("__syncthreads"),
                                             HasSubstr("__shfl_sync(mask 0xffffffff)"))));
}

__global__ void mismatched_collectives(unsigned* out) {
  if (threadIdx.x % 2) {
    out[threadIdx.x] = __ballot_sync(0xffffffffu, 1);
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1u, 1);
  }
}

TEST_F(PlantedBugTest, DifferentCollectivesInOneWarpAreWarpDivergence) {
  DeviceArray<unsigned> out(32);
  EXPECT_THAT([&] { KILN_LAUNCH(mismatched_collectives, 1, 32, 0, nullptr)(out.get()); },
              ThrowsMessage<CudaError>(HasSubstr("warp divergence")));
}

__global__ void lane_outside_its_mask(int* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, 5, 0);  // lanes 1..31 are not in the mask
}

TEST_F(PlantedBugTest, LaneOutsideItsOwnMaskIsReported) {
  DeviceArray<int> out(32);
  EXPECT_THAT([&] { KILN_LAUNCH(lane_outside_its_mask, 1, 32, 0, nullptr)(out.get()); },
              ThrowsMessage<CudaError>(HasSubstr("which leaves it out")));
}

// ---- launch limits ----

__global__ void nothing() {}

TEST_F(PlantedBugTest, OversizedBlocksAndEmptyGridsAreLaunchErrors) {
  EXPECT_THAT([&] { KILN_LAUNCH(nothing, 1, 1025, 0, nullptr)(); },
              ThrowsMessage<CudaError>(AllOf(HasSubstr("cudaErrorInvalidConfiguration"),
                                             HasSubstr("1025 threads"), HasSubstr("nothing"))));
  EXPECT_THAT([&] { KILN_LAUNCH(nothing, 1, dim3(1, 1, 65), 0, nullptr)(); },
              ThrowsMessage<CudaError>(HasSubstr("cudaErrorInvalidConfiguration")));
  EXPECT_THAT([&] { KILN_LAUNCH(nothing, dim3(1, 65536), 1, 0, nullptr)(); },
              ThrowsMessage<CudaError>(HasSubstr("cudaErrorInvalidConfiguration")));
  EXPECT_THAT([&] { KILN_LAUNCH(nothing, 0, 32, 0, nullptr)(); },
              ThrowsMessage<CudaError>(HasSubstr("cudaErrorInvalidConfiguration")));
  EXPECT_THAT([&] { KILN_LAUNCH(nothing, 1, 32, 48 * 1024 + 1, nullptr)(); },
              ThrowsMessage<CudaError>(HasSubstr("cudaErrorInvalidValue")));
  // Launch errors are not sticky: the device works on.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  KILN_LAUNCH(nothing, 1, 1024, 48 * 1024, nullptr)();
}

TEST_F(PlantedBugTest, LaunchOnAnotherDevicesStreamIsAnError) {
  KILN_SIM_REQUIRE_DEVICES(2);
  cudaStream_t s = nullptr;
  KILN_CUDA_CHECK(cudaSetDevice(1));
  KILN_CUDA_CHECK(cudaStreamCreate(&s));
  KILN_LAUNCH(nothing, 1, 1, 0, s)();
  KILN_CUDA_CHECK(cudaSetDevice(0));
  EXPECT_THAT([&] { KILN_LAUNCH(nothing, 1, 1, 0, s)(); },
              ThrowsMessage<CudaError>(HasSubstr("cudaErrorInvalidResourceHandle")));
  KILN_CUDA_CHECK(cudaStreamDestroy(s));
}

// ---- misaligned accesses ----

__global__ void load_float4_at(const float* p, int offset, float* out) {
  const float4 v = cuda::load_vector<float4>(p + offset);
  out[threadIdx.x] = v.x + v.w;
}

__global__ void store_int4_at(int* p, int offset) {
  cuda::store_vector(p + offset + 4 * static_cast<int>(threadIdx.x), make_int4(1, 2, 3, 4));
}

__global__ void load_float2_at(const float* p, int offset, float* out) {
  out[threadIdx.x] = cuda::load_vector<float2>(p + offset).y;
}

__global__ void atomic_at(char* p, int offset) {
  atomicAdd(reinterpret_cast<int*>(p + offset), 1);
}

TEST_F(PlantedBugTest, MisalignedVectorAndAtomicAccessesFault) {
  DeviceArray<float> data(std::vector<float>(64, 1.0f));
  DeviceArray<float> out(32);
  KILN_LAUNCH(load_float4_at, 1, 32, 0, nullptr)(data.get(), 4, out.get());  // 16-byte aligned
  EXPECT_EQ(out.to_host()[0], 2.0f);
  EXPECT_THAT([&] { KILN_LAUNCH(load_float4_at, 1, 32, 0, nullptr)(data.get(), 1, out.get()); },
              ThrowsMessage<CudaError>(AllOf(HasSubstr("cudaErrorMisalignedAddress"),
                                             HasSubstr("16-byte alignment"),
                                             HasSubstr("load_float4_at"),
                                             HasSubstr("thread (0,0,0)"))));
  reset_device_error(0);
  DeviceArray<int> ints(256);
  EXPECT_THAT([&] { KILN_LAUNCH(store_int4_at, 1, 8, 0, nullptr)(ints.get(), 2); },
              ThrowsMessage<CudaError>(HasSubstr("vector store")));
  reset_device_error(0);
  KILN_LAUNCH(load_float2_at, 1, 1, 0, nullptr)(data.get(), 2, out.get());
  EXPECT_THAT([&] { KILN_LAUNCH(load_float2_at, 1, 1, 0, nullptr)(data.get(), 3, out.get()); },
              ThrowsMessage<CudaError>(HasSubstr("8-byte alignment")));
  reset_device_error(0);
  DeviceArray<char> bytes(64);
  EXPECT_THAT([&] { KILN_LAUNCH(atomic_at, 1, 1, 0, nullptr)(bytes.get(), 2); },
              ThrowsMessage<CudaError>(HasSubstr("atomic")));
}

// ---- a fault is sticky, stops the launch, and stays on its device ----

__global__ void fault_in_block_zero(const float* p, float* out) {
  if (blockIdx.x == 0) out[0] = cuda::load_vector<float4>(p + 1).x;
  out[blockIdx.x] = 7.0f;
}

TEST_F(PlantedBugTest, FaultIsStickyStopsLaterBlocksAndStaysOnItsDevice) {
  KILN_SIM_REQUIRE_DEVICES(2);
  set_worker_threads(1);
  set_block_order({BlockOrder::forward, 0});
  DeviceArray<float> data(8), out(16);
  EXPECT_THROW(KILN_LAUNCH(fault_in_block_zero, 16, 1, 0, nullptr)(data.get(), out.get()),
               CudaError);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMisalignedAddress);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMisalignedAddress) << "sticky";
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorMisalignedAddress);
  EXPECT_THAT(cudaGetErrorString(cudaErrorMisalignedAddress), HasSubstr("fault_in_block_zero"));
  KILN_CUDA_CHECK(cudaSetDevice(1));
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "the other device is unaffected";
  KILN_CUDA_CHECK(cudaSetDevice(0));
  reset_device_error(0);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (float v : out.to_host()) EXPECT_TRUE(std::isnan(v)) << "no block after the fault ran";
}

__global__ void throws_in_kernel(int* out) {
  if (threadIdx.x == 3) throw std::runtime_error("kernel-side bug");
  out[threadIdx.x] = 1;
}

TEST_F(PlantedBugTest, ExceptionInAKernelIsALaunchFailure) {
  DeviceArray<int> out(8);
  EXPECT_THAT([&] { KILN_LAUNCH(throws_in_kernel, 1, 8, 0, nullptr)(out.get()); },
              ThrowsMessage<CudaError>(AllOf(HasSubstr("cudaErrorLaunchFailure"),
                                             HasSubstr("kernel-side bug"),
                                             HasSubstr("thread (3,0,0)"))));
}

// ---- sanitizer builds ----

__global__ void write_one_past_the_end(float* p, int n) {
  if (threadIdx.x == 0) p[n] = 1.0f;
}

TEST(AsanOutOfBounds, WritePastADeviceAllocationIsReported) {
  if (!KILN_TEST_ASAN) GTEST_SKIP() << "needs KILN_SANITIZE=address";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        DeviceArray<float> p(10);
        KILN_LAUNCH(write_one_past_the_end, 1, 32, 0, nullptr)(p.get(), 10);
      },
      "heap-buffer-overflow");
}

TEST(TsanRace, MissingBarrierIsReported) {
  if (!KILN_TEST_TSAN) GTEST_SKIP() << "needs KILN_SANITIZE=thread";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ::setenv("TSAN_OPTIONS", "halt_on_error=1", 1);  // the child dies at the first report
  EXPECT_DEATH(
      {
        DeviceArray<float> in(256);
        DeviceArray<float> out(1);
        KILN_LAUNCH(tree_sum<false>, 1, 256, 0, nullptr)(in.get(), out.get());
      },
      "data race");
}

}  // namespace
}  // namespace kiln::sim::test
