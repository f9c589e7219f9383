// The emulated CUDA runtime API: devices and properties, memory (poison, limits, range
// checks), copies, streams, events, error reporting, and the settings' parsers.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/cuda/cuda_api.h"
#include "kiln/core/cuda/sim/control.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

using ::testing::HasSubstr;

using SimRuntime = SimTest;

TEST_F(SimRuntime, DeviceCountFollowsKilnSimDevices) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  const char* env = std::getenv("KILN_SIM_DEVICES");
  EXPECT_EQ(count, env ? std::atoi(env) : 2);
  EXPECT_EQ(cudaSetDevice(count), cudaErrorInvalidDevice);
  EXPECT_THAT(cudaGetErrorString(cudaErrorInvalidDevice), HasSubstr("invalid device ordinal"));
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "a non-sticky error is cleared once read";
}

TEST_F(SimRuntime, PropertiesResembleAnH100) {
  cudaDeviceProp p{};
  ASSERT_EQ(cudaGetDeviceProperties(&p, 0), cudaSuccess);
  EXPECT_EQ(p.major, 9);
  EXPECT_EQ(p.minor, 0);
  EXPECT_EQ(p.multiProcessorCount, 132);
  EXPECT_EQ(p.maxThreadsPerBlock, 1024);
  EXPECT_EQ(p.sharedMemPerBlock, 48u * 1024);
  EXPECT_EQ(p.sharedMemPerBlockOptin, 227u * 1024);
  EXPECT_EQ(p.warpSize, 32);
  EXPECT_EQ(p.maxThreadsDim[2], 64);
  EXPECT_EQ(p.maxGridSize[0], 2147483647);
  EXPECT_EQ(p.totalGlobalMem, memory_limit());
  int least = 1, greatest = 1;
  ASSERT_EQ(cudaDeviceGetStreamPriorityRange(&least, &greatest), cudaSuccess);
  EXPECT_EQ(least, 0);
  EXPECT_EQ(greatest, -5);
}

TEST_F(SimRuntime, NewDeviceMemoryIsPoisonedAndAligned) {
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 1000), cudaSuccess);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
  std::vector<unsigned char> host(1000, 0);
  ASSERT_EQ(cudaMemcpy(host.data(), p, 1000, cudaMemcpyDeviceToHost), cudaSuccess);
  for (unsigned char b : host) ASSERT_EQ(b, 0xFF);
  cudaPointerAttributes attr{};
  ASSERT_EQ(cudaPointerGetAttributes(&attr, static_cast<char*>(p) + 999), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeDevice);
  EXPECT_EQ(attr.device, 0);
  ASSERT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue) << "double free";
  EXPECT_THAT(cudaGetErrorString(cudaErrorInvalidValue), HasSubstr("cudaFree"));
}

TEST_F(SimRuntime, MemoryLimitMakesOutOfMemoryTestable) {
  KILN_SIM_REQUIRE_DEVICES(2);
  set_memory_limit(std::size_t{1} << 20);
  const std::size_t before = memory_in_use(0);
  void* a = nullptr;
  void* b = nullptr;
  ASSERT_EQ(cudaMalloc(&a, (1 << 20) - before - 100), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&b, 200), cudaErrorMemoryAllocation);
  EXPECT_EQ(b, nullptr);
  EXPECT_THAT(cudaGetErrorString(cudaErrorMemoryAllocation), HasSubstr("KILN_SIM_MEMORY"));
  std::size_t free = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free, &total), cudaSuccess);
  EXPECT_EQ(total, std::size_t{1} << 20);
  EXPECT_EQ(free, 100u);
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&b, 200), cudaSuccess) << "each device has its own limit";
  EXPECT_EQ(cudaFree(b), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ASSERT_EQ(cudaFree(a), cudaSuccess);
  EXPECT_EQ(memory_in_use(0), before);
}

TEST_F(SimRuntime, CopiesCheckTheirDeviceSide) {
  std::vector<float> host(16, 3.0f), back(16, 0.0f);
  DeviceArray<float> d(16);
  EXPECT_EQ(cudaMemcpy(d.get(), host.data(), 64, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d.get() + 1, host.data(), 64, cudaMemcpyHostToDevice),
            cudaErrorInvalidValue) << "one float past the end";
  EXPECT_THAT(cudaGetErrorString(cudaErrorInvalidValue), HasSubstr("not inside one device"));
  EXPECT_EQ(cudaMemcpy(back.data(), host.data(), 64, cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue) << "a host pointer as the device source";
  EXPECT_EQ(cudaMemcpy(back.data(), d.get(), 64, cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(back, host);
  EXPECT_EQ(cudaMemset(d.get() + 8, 0, 32), cudaSuccess);
  EXPECT_EQ(cudaMemset(d.get() + 8, 0, 36), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(back.data(), d.get(), 64, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back[7], 3.0f);
  EXPECT_EQ(back[8], 0.0f);
  (void)cudaGetLastError();
}

TEST_F(SimRuntime, PeerCopiesAndAsyncCopiesOnStreams) {
  KILN_SIM_REQUIRE_DEVICES(2);
  DeviceArray<int> on0(std::vector<int>{1, 2, 3, 4});
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  DeviceArray<int> on1(4);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  EXPECT_EQ(cudaMemcpyPeerAsync(on1.get(), 1, on0.get(), 0, 16, s), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(on1.get(), 0, 4, s), cudaSuccess);
  EXPECT_EQ(cudaStreamQuery(s), cudaSuccess) << "work runs when queued";
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(on1.to_host(), (std::vector<int>{0, 2, 3, 4}));
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle) << "destroyed";
  EXPECT_EQ(cudaStreamDestroy(nullptr), cudaErrorInvalidResourceHandle);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  (void)cudaGetLastError();
}

TEST_F(SimRuntime, EventsTimeTheWorkBetweenThem) {
  cudaEvent_t start = nullptr, end = nullptr, untimed = nullptr;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&end, cudaEventDefault), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming), cudaSuccess);
  float ms = -1;
  EXPECT_EQ(cudaEventElapsedTime(&ms, start, end), cudaErrorInvalidResourceHandle)
      << "not recorded yet";
  EXPECT_EQ(cudaEventQuery(start), cudaSuccess) << "a never-recorded event is complete";
  ASSERT_EQ(cudaEventRecord(start, nullptr), cudaSuccess);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(cudaEventRecord(end, cudaStreamPerThread), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(end), cudaSuccess);
  EXPECT_EQ(cudaEventSynchronize(end), cudaSuccess);
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, end), cudaSuccess);
  EXPECT_GE(ms, 19.0f);
  EXPECT_LT(ms, 5000.0f);
  ASSERT_EQ(cudaEventRecord(untimed), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, start, untimed), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaStreamWaitEvent(nullptr, end, 0), cudaSuccess);
  for (cudaEvent_t e : {start, end, untimed}) EXPECT_EQ(cudaEventDestroy(e), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(start), cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();
}

TEST_F(SimRuntime, EventAndStreamMustShareADevice) {
  KILN_SIM_REQUIRE_DEVICES(2);
  cudaEvent_t e = nullptr;
  ASSERT_EQ(cudaEventCreate(&e), cudaSuccess);  // on device 0
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  EXPECT_EQ(cudaEventRecord(e, nullptr), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaEventQuery(e), cudaSuccess) << "a query from another device is fine";
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(e), cudaSuccess);
  (void)cudaGetLastError();
}

TEST_F(SimRuntime, PinnedHostMemory) {
  float* p = nullptr;
  ASSERT_EQ(cudaHostAlloc(reinterpret_cast<void**>(&p), 64, cudaHostAllocDefault), cudaSuccess);
  p[15] = 1.0f;
  cudaPointerAttributes attr{};
  ASSERT_EQ(cudaPointerGetAttributes(&attr, p), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeHost);
  EXPECT_EQ(cudaFreeHost(p), cudaSuccess);
  EXPECT_EQ(cudaFreeHost(p), cudaErrorInvalidValue);
  (void)cudaGetLastError();
}

TEST_F(SimRuntime, FuncAttributeBounds) {
  static const int key = 0;  // any address identifies a "kernel" for the C API
  EXPECT_EQ(cudaFuncSetAttribute(&key, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024),
            cudaSuccess);
  EXPECT_EQ(cudaFuncSetAttribute(&key, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024 + 1),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaFuncSetAttribute(nullptr, cudaFuncAttributeMaxDynamicSharedMemorySize, 0),
            cudaErrorInvalidDeviceFunction);
  (void)cudaGetLastError();
}

TEST(SimSettings, ByteSizes) {
  EXPECT_EQ(parse_byte_size("256MiB"), std::size_t{256} << 20);
  EXPECT_EQ(parse_byte_size("2GiB"), std::size_t{2} << 30);
  EXPECT_EQ(parse_byte_size("64KiB"), std::size_t{64} << 10);
  EXPECT_EQ(parse_byte_size("3GB"), std::size_t{3000000000});
  EXPECT_EQ(parse_byte_size("1048576"), std::size_t{1048576});
  EXPECT_EQ(parse_byte_size("12B"), std::size_t{12});
  EXPECT_EQ(parse_byte_size("MiB"), std::nullopt);
  EXPECT_EQ(parse_byte_size("1.5GiB"), std::nullopt);
  EXPECT_EQ(parse_byte_size("-1"), std::nullopt);
  EXPECT_EQ(parse_byte_size("99999999999TiB"), std::nullopt) << "overflow";
}

// The variables are read once per process, so these run in a child process
// (threadsafe death tests re-execute the binary) with the variable set.
TEST(SimSettingsDeathTest, MalformedVariableFailsEveryCallAndSaysWhich) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ::setenv("KILN_SIM_MEMORY", "12 apples", 1);
  EXPECT_EXIT(
      {
        int n = -1;
        const cudaError_t err = cudaGetDeviceCount(&n);
        std::fprintf(stderr, "%s\n", cudaGetErrorString(err));
        void* p = nullptr;
        const bool all_fail = err == cudaErrorInitializationError && n == 0 &&
                              cudaMalloc(&p, 16) == cudaErrorInitializationError;
        std::exit(all_fail ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "KILN_SIM_MEMORY='12 apples' is not valid");
  ::unsetenv("KILN_SIM_MEMORY");
}

TEST(SimSettingsDeathTest, ZeroDevicesLooksLikeAMachineWithoutGpu) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ::setenv("KILN_SIM_DEVICES", "0", 1);
  EXPECT_EXIT(
      {
        int n = -1;
        const cudaError_t err = cudaGetDeviceCount(&n);
        std::exit(err == cudaErrorNoDevice && n == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  ::unsetenv("KILN_SIM_DEVICES");
}

TEST(SimSettings, BlockOrders) {
  EXPECT_EQ(parse_block_order("forward")->order, BlockOrder::forward);
  EXPECT_EQ(parse_block_order("reverse")->order, BlockOrder::reverse);
  EXPECT_EQ(parse_block_order("random")->order, BlockOrder::random);
  const auto seeded = parse_block_order("random:42");
  ASSERT_TRUE(seeded.has_value());
  EXPECT_EQ(seeded->order, BlockOrder::random);
  EXPECT_EQ(seeded->seed, 42u);
  EXPECT_EQ(parse_block_order("random:"), std::nullopt);
  EXPECT_EQ(parse_block_order("backwards"), std::nullopt);
}

}  // namespace
}  // namespace kiln::sim::test
