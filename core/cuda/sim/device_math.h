// CUDA's device math for the SIM build: the fast-math intrinsics, min/max overloads,
// integer and bit intrinsics, type punning, and the read-only / cache-hinted loads.
// Fast intrinsics (__expf, __logf, __sinf, ...) return the correctly rounded libm value:
// within every error bound the CUDA Math API documents for them, but not bit-equal to a
// GPU. __fdividef keeps CUDA's documented special case for huge divisors.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln::sim::detail {
template <class To, class From>
inline To bits_as(From v) {
  static_assert(sizeof(To) == sizeof(From));
  To out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}
}  // namespace kiln::sim::detail

// ---- single-precision intrinsics ----
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = sinf(x);
  *c = cosf(x);
}
inline float __powf(float x, float y) { return powf(x, y); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float fdividef(float x, float y) { return x / y; }
// CUDA: for 2^126 < |y| < 2^128, __fdividef(x, y) is 0, and NaN when x is infinite.
inline float __fdividef(float x, float y) {
  const float ay = fabsf(y);
  if (ay > 0x1p126f && ay <= 0x1.fffffep127f) return isinf(x) ? NAN : 0.0f;
  return x / y;
}
// Clamps to [0, 1]; NaN becomes 0.
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }

// ---- min / max: CUDA's overload set ----
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned int min(int a, unsigned int b) { return min(static_cast<unsigned int>(a), b); }
inline unsigned int max(int a, unsigned int b) { return max(static_cast<unsigned int>(a), b); }
inline unsigned int min(unsigned int a, int b) { return min(a, static_cast<unsigned int>(b)); }
inline unsigned int max(unsigned int a, int b) { return max(a, static_cast<unsigned int>(b)); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }

// ---- integer and bit intrinsics ----
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) {
  return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned int>(x))) << 32) |
         __brev(static_cast<unsigned int>(x >> 32));
}
inline int __mulhi(int x, int y) {
  return static_cast<int>((static_cast<long long>(x) * y) >> 32);
}
inline unsigned int __umulhi(unsigned int x, unsigned int y) {
  return static_cast<unsigned int>((static_cast<unsigned long long>(x) * y) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long x, unsigned long long y) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(x) * y) >> 64);
}

// ---- conversions and type punning ----
inline int __float_as_int(float x) { return kiln::sim::detail::bits_as<int>(x); }
inline unsigned int __float_as_uint(float x) { return kiln::sim::detail::bits_as<unsigned int>(x); }
inline float __int_as_float(int x) { return kiln::sim::detail::bits_as<float>(x); }
inline float __uint_as_float(unsigned int x) { return kiln::sim::detail::bits_as<float>(x); }
inline long long __double_as_longlong(double x) { return kiln::sim::detail::bits_as<long long>(x); }
inline double __longlong_as_double(long long x) { return kiln::sim::detail::bits_as<double>(x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }

// ---- loads and stores with cache hints: plain accesses here; vector types (16- and
// 8-byte aligned) are checked for alignment like kiln::cuda::load_vector. ----
template <class T>
inline T __ldg(const T* p) {
  kiln::sim::detail::check_alignment(p, alignof(T), "__ldg");
  return *p;
}
template <class T>
inline T __ldca(const T* p) { return __ldg(p); }
template <class T>
inline T __ldcg(const T* p) { return __ldg(p); }
template <class T>
inline T __ldcs(const T* p) { return __ldg(p); }
template <class T>
inline T __ldlu(const T* p) { return __ldg(p); }
template <class T>
inline T __ldcv(const T* p) { return __ldg(p); }
template <class T>
inline void __stwb(T* p, T v) {
  kiln::sim::detail::check_alignment(p, alignof(T), "__stwb");
  *p = v;
}
template <class T>
inline void __stcg(T* p, T v) { __stwb(p, v); }
template <class T>
inline void __stcs(T* p, T v) { __stwb(p, v); }
template <class T>
inline void __stwt(T* p, T v) { __stwb(p, v); }
