// Choosing the cpu or cuda implementation of an op. In KILN_CUDA=OFF builds the cuda
// branch is not compiled (no cuda tensor can exist there; the check says so anyway).
#pragma once

#include "kiln/core/error.h"
#include "kiln/core/tensor.h"

namespace kiln::detail {
[[noreturn]] inline void no_cuda_kernels(const char* op) {
  KILN_THROW(DeviceError, op, ": cuda tensors need a build with KILN_CUDA=ON or SIM");
}

// All defined operands on one device; names the op and the devices otherwise.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
}  // namespace kiln::detail

// KILN_ON_DEVICE(device, op_name, cpu_statement, cuda_statement);
#if KILN_HAS_CUDA
#define KILN_ON_DEVICE(device, op, cpu_stmt, cuda_stmt) \
  do {                                                  \
    if ((device).is_cuda()) {                           \
      cuda_stmt;                                        \
    } else {                                            \
      cpu_stmt;                                         \
    }                                                   \
  } while (0)
#else
#define KILN_ON_DEVICE(device, op, cpu_stmt, cuda_stmt)          \
  do {                                                           \
    if ((device).is_cuda()) ::kiln::detail::no_cuda_kernels(op); \
    cpu_stmt;                                                    \
  } while (0)
#endif
