// CUDA's built-in vector types for the SIM build: the names, members, sizes and
// alignments of <vector_types.h>, so host and kernel code written against CUDA compiles
// unchanged. float4/int4/uint4/double2 are 16-byte aligned and float2/int2/uint2 8-byte
// aligned as on the GPU, which is what lets kiln::cuda::load_vector (kernel.h) and the
// UBSan alignment check catch misaligned vector accesses.
#pragma once

struct char2 { signed char x, y; };
struct __attribute__((aligned(4))) char4 { signed char x, y, z, w; };
struct uchar2 { unsigned char x, y; };
struct __attribute__((aligned(4))) uchar4 { unsigned char x, y, z, w; };
struct __attribute__((aligned(4))) short2 { short x, y; };
struct __attribute__((aligned(8))) short4 { short x, y, z, w; };
struct __attribute__((aligned(4))) ushort2 { unsigned short x, y; };
struct __attribute__((aligned(8))) ushort4 { unsigned short x, y, z, w; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
struct uint3 { unsigned int x, y, z; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(16))) longlong2 { long long x, y; };
struct __attribute__((aligned(16))) ulonglong2 { unsigned long long x, y; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };

static_assert(sizeof(float4) == 16 && alignof(float4) == 16);
static_assert(sizeof(int4) == 16 && alignof(int4) == 16);
static_assert(sizeof(float2) == 8 && alignof(float2) == 8);
static_assert(sizeof(uint3) == 12 && alignof(uint3) == 4);

// Launch dimensions: every component defaults to 1, as in CUDA.
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
