// The SIM build's kernel launch (used by KILN_LAUNCH in core/cuda/kernel.h; nothing else
// should call it). A launch runs every block of the grid before it returns (Note
// [Synchronous streams] in runtime.h): blocks are spread over a pool of OS threads, and
// inside a block each CUDA thread is a fiber (Note [Block execution] in block.cpp).
#pragma once

#include <cstddef>
#include <string>

#include "kiln/core/cuda/sim/runtime.h"

namespace kiln::sim {

struct LaunchDesc {
  const char* launch_text = "";  // the KILN_LAUNCH arguments as written: names the kernel
  const char* file = "";
  int line = 0;
  const void* kernel = nullptr;  // identifies the kernel (cudaFuncSetAttribute's key)
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes = 0;  // dynamic shared memory per block
  cudaStream_t stream = nullptr;
  // Runs the kernel once for the current CUDA thread: invoke(call), where `call` holds
  // the kernel pointer and its converted arguments (read-only while blocks run).
  void (*invoke)(const void* call) = nullptr;
  const void* call = nullptr;
};

// Checks the configuration (block size, grid size, shared memory, stream and device),
// then runs the grid. Returns cudaSuccess, the configuration error, or the kernel fault;
// like every runtime call it also records the error for cudaGetLastError.
cudaError_t launch(const LaunchDesc& desc);

// The kernel name in a launch text: its first top-level argument, without enclosing
// parentheses ("scale<float, 4>, grid, ..." -> "scale<float, 4>").
std::string kernel_name_of(const char* launch_text);

}  // namespace kiln::sim
