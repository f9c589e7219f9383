// CUDA's make_<vector> constructors (<vector_functions.h>) for the SIM build.
#pragma once

#include "kiln/core/cuda/sim/vector_types.h"

#define KILN_SIM_MAKE2(T, E) \
  inline constexpr T make_##T(E x, E y) { return T{x, y}; }
#define KILN_SIM_MAKE3(T, E) \
  inline constexpr T make_##T(E x, E y, E z) { return T{x, y, z}; }
#define KILN_SIM_MAKE4(T, E) \
  inline constexpr T make_##T(E x, E y, E z, E w) { return T{x, y, z, w}; }

KILN_SIM_MAKE2(char2, signed char)
KILN_SIM_MAKE4(char4, signed char)
KILN_SIM_MAKE2(uchar2, unsigned char)
KILN_SIM_MAKE4(uchar4, unsigned char)
KILN_SIM_MAKE2(short2, short)
KILN_SIM_MAKE4(short4, short)
KILN_SIM_MAKE2(ushort2, unsigned short)
KILN_SIM_MAKE4(ushort4, unsigned short)
KILN_SIM_MAKE2(int2, int)
KILN_SIM_MAKE3(int3, int)
KILN_SIM_MAKE4(int4, int)
KILN_SIM_MAKE2(uint2, unsigned int)
KILN_SIM_MAKE3(uint3, unsigned int)
KILN_SIM_MAKE4(uint4, unsigned int)
KILN_SIM_MAKE2(longlong2, long long)
KILN_SIM_MAKE2(ulonglong2, unsigned long long)
KILN_SIM_MAKE2(float2, float)
KILN_SIM_MAKE3(float3, float)
KILN_SIM_MAKE4(float4, float)
KILN_SIM_MAKE2(double2, double)

#undef KILN_SIM_MAKE2
#undef KILN_SIM_MAKE3
#undef KILN_SIM_MAKE4
