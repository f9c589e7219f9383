// The emulator's process-wide state, shared by its translation units (internal):
// settings from the environment, error bookkeeping, device and handle lookups.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "kiln/core/cuda/sim/control.h"
#include "kiln/core/cuda/sim/runtime.h"

// The handles behind cudaStream_t and cudaEvent_t (CUDA's own struct names).
struct CUstream_st {
  int device = 0;
  unsigned int flags = 0;
  int priority = 0;
};

struct CUevent_st {
  int device = 0;
  unsigned int flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point when{};
};

namespace kiln::sim::detail {

inline constexpr int kMaxDevices = 64;

// Read once from the environment (control.h lists the variables); the setters in
// control.h change the atomics afterwards.
struct Settings {
  int devices = 2;
  std::string init_error;  // non-empty when a variable could not be parsed
  std::atomic<std::size_t> memory_limit{0};
  std::atomic<int> block_order{0};
  std::atomic<std::uint64_t> block_order_seed{0};
  std::atomic<int> worker_threads{1};
};
Settings& settings();

// Records `code` as this host thread's last error (cudaGetLastError) with a detail text
// that cudaGetErrorString(code) appends from now on, and returns it.
cudaError_t fail(cudaError_t code, const std::string& detail);
// A kernel fault: sticky on `device` until reset_device_error.
void set_sticky_error(int device, cudaError_t code, const std::string& detail);
cudaError_t sticky_error(int device);

// The current device of this host thread (cudaSetDevice).
int current_device();
// cudaSuccess when `device` exists, the runtime initialised and no sticky error is set;
// otherwise the error to return (already recorded with fail()).
cudaError_t check_device(int device);
// Resolves a stream handle (0, cudaStreamLegacy, cudaStreamPerThread or a created
// stream) to its device; an unknown handle is cudaErrorInvalidResourceHandle.
cudaError_t stream_device(cudaStream_t stream, int* device);

// Dynamic shared memory a kernel may use (cudaFuncSetAttribute), 48 KiB by default.
std::size_t max_dynamic_shared_bytes(const void* kernel);

// Device properties (an H100 SXM, compute capability 9.0).
inline constexpr int kMaxThreadsPerBlock = 1024;
inline constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
inline constexpr unsigned kMaxGridDim[3] = {2147483647u, 65535u, 65535u};
inline constexpr std::size_t kSharedBytesDefault = 48 * 1024;
inline constexpr std::size_t kSharedBytesOptin = 227 * 1024;
inline constexpr int kWarpSize = 32;

}  // namespace kiln::sim::detail
