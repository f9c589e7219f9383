// Helpers for the emulator's tests: a device array, a fixture that leaves every device
// clean (no sticky fault, device 0, default order and threads), and the sanitizer the
// test binary was built with.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "kiln/core/cuda/check.h"
#include "kiln/core/cuda/sim/control.h"

#if defined(__SANITIZE_ADDRESS__)
#define KILN_TEST_ASAN 1
#else
#define KILN_TEST_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define KILN_TEST_TSAN 1
#else
#define KILN_TEST_TSAN 0
#endif

namespace kiln::sim::test {

// n elements of T in device memory, freed on destruction.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n) {
    KILN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), n * sizeof(T)));
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    KILN_CUDA_CHECK(cudaMemcpy(data_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceArray() { (void)cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return data_; }
  std::size_t size() const { return n_; }
  std::vector<T> to_host() const {
    std::vector<T> host(n_);
    KILN_CUDA_CHECK(cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t n_;
};

// Skips the test when the process has fewer emulated devices (KILN_SIM_DEVICES).
#define KILN_SIM_REQUIRE_DEVICES(n)                                                    \
  do {                                                                                 \
    int count_ = 0;                                                                    \
    if (cudaGetDeviceCount(&count_) != cudaSuccess || count_ < (n)) {                  \
      (void)cudaGetLastError();                                                        \
      GTEST_SKIP() << "needs " << (n) << " SIM devices, KILN_SIM_DEVICES gives " << count_; \
    }                                                                                  \
  } while (0)

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_SIM_REQUIRE_DEVICES(1);
    reset();
  }
  void TearDown() override { reset(); }

  // Back to the settings the process started with (KILN_SIM_BLOCK_ORDER and friends,
  // so a CI run with reversed or shuffled blocks keeps them) and no sticky fault.
  static void reset() {
    static const BlockOrderSetting order = block_order();
    static const int threads = worker_threads();
    static const std::size_t memory = memory_limit();
    int count = 0;
    (void)cudaGetDeviceCount(&count);
    for (int d = 0; d < count; ++d) reset_device_error(d);
    (void)cudaSetDevice(0);
    (void)cudaGetLastError();
    set_block_order(order);
    set_worker_threads(threads);
    set_memory_limit(memory);
  }
};

}  // namespace kiln::sim::test
