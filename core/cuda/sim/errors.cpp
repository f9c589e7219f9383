// Error codes, their names and descriptions, the per-thread last error and the sticky
// per-device kernel-fault errors.
//
// Note [Error details]: every failure the emulator reports carries a detail text (which
// kernel, block and thread faulted; which limit a launch broke). cudaGetErrorString must
// return a pointer that stays valid, so each distinct text is kept for the life of the
// process; the description of a code then ends with the latest detail recorded for it.
#include <cstdio>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "kiln/core/cuda/sim/state.h"

namespace kiln::sim::detail {
namespace {

struct ErrorInfo {
  cudaError_t code;
  const char* name;
  const char* description;
};

constexpr ErrorInfo kErrors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection",
     "invalid copy direction for memcpy"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorInvalidDeviceFunction, "cudaErrorInvalidDeviceFunction", "invalid device function"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress",
     "an illegal memory access was encountered"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources",
     "too many resources requested for launch"},
    {cudaErrorPeerAccessAlreadyEnabled, "cudaErrorPeerAccessAlreadyEnabled",
     "peer access is already enabled"},
    {cudaErrorIllegalInstruction, "cudaErrorIllegalInstruction",
     "an illegal instruction was encountered"},
    {cudaErrorMisalignedAddress, "cudaErrorMisalignedAddress", "misaligned address"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorNotSupported, "cudaErrorNotSupported", "operation not supported"},
    {cudaErrorUnknown, "cudaErrorUnknown", "unknown error"},
};

const ErrorInfo* find_error(cudaError_t code) {
  for (const ErrorInfo& e : kErrors) {
    if (e.code == code) return &e;
  }
  return nullptr;
}

struct ErrorState {
  std::mutex mutex;
  std::deque<std::string> texts;                             // Note [Error details]
  std::unordered_map<int, const char*> latest;               // code -> full description
  std::atomic<int> sticky[kMaxDevices] = {};                 // cudaError_t per device
};

ErrorState& state() {
  static auto* s = new ErrorState();  // never destroyed: used until the last thread exits
  return *s;
}

thread_local cudaError_t t_last_error = cudaSuccess;

void remember_detail(cudaError_t code, const std::string& detail) {
  const ErrorInfo* info = find_error(code);
  std::string text = std::string(info ? info->description : "unrecognized error code") +
                     " (kiln sim: " + detail + ")";
  ErrorState& s = state();
  std::lock_guard lock(s.mutex);
  if (auto it = s.latest.find(code); it != s.latest.end() && text == it->second) return;
  s.texts.push_back(std::move(text));
  s.latest[code] = s.texts.back().c_str();
}

}  // namespace

cudaError_t fail(cudaError_t code, const std::string& detail) {
  if (!detail.empty()) remember_detail(code, detail);
  t_last_error = code;
  return code;
}

void set_sticky_error(int device, cudaError_t code, const std::string& detail) {
  remember_detail(code, detail);
  int expected = cudaSuccess;
  state().sticky[device].compare_exchange_strong(expected, code);  // the first fault stays
}

cudaError_t sticky_error(int device) {
  if (device < 0 || device >= kMaxDevices) return cudaSuccess;
  return static_cast<cudaError_t>(state().sticky[device].load());
}

}  // namespace kiln::sim::detail

namespace kiln::sim {
void reset_device_error(int device) {
  if (device >= 0 && device < detail::kMaxDevices) detail::state().sticky[device] = cudaSuccess;
}
}  // namespace kiln::sim

using namespace kiln::sim::detail;

const char* cudaGetErrorName(cudaError_t error) {
  const ErrorInfo* info = find_error(error);
  return info ? info->name : "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  {
    ErrorState& s = state();
    std::lock_guard lock(s.mutex);
    if (auto it = s.latest.find(error); it != s.latest.end()) return it->second;
  }
  const ErrorInfo* info = find_error(error);
  return info ? info->description : "unrecognized error code";
}

cudaError_t cudaGetLastError() {
  const cudaError_t err = t_last_error;
  t_last_error = cudaSuccess;
  return err != cudaSuccess ? err : sticky_error(current_device());
}

cudaError_t cudaPeekAtLastError() {
  return t_last_error != cudaSuccess ? t_last_error : sticky_error(current_device());
}
