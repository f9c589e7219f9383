// The one place that picks the CUDA runtime API kiln compiles against:
//   KILN_CUDA_SIM=1  kiln's SIMT emulator (core/cuda/sim), same names and semantics
//   otherwise        the real CUDA runtime (<cuda_runtime_api.h>)
// Only core/cuda/*.cpp, core/cuda/*.cu and kernels/cuda/* include this; nothing in an
// OFF build does.
#pragma once

#if defined(KILN_CUDA_SIM) && KILN_CUDA_SIM
#include "kiln/core/cuda/sim/runtime.h"
#else
#include <cuda_runtime_api.h>
#endif
