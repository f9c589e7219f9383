// cpu elementwise loops over an ElementwiseLoop: out = f(in...) with typed pointers.
// The contiguous case is a plain indexed loop the compiler vectorises, split over OpenMP
// threads past kParallelGrain elements; strided operands walk an odometer whose innermost
// axis is a tight loop.
#pragma once

#include <cstdint>

#include "kiln/kernels/elementwise.h"

namespace kiln::cpu {

inline constexpr std::int64_t kParallelGrain = 1 << 15;

namespace detail {

// Calls body(offsets) for every element in row-major order; offsets[k] in elements.
template <int N, class Body>
void walk(const ElementwiseLoop<N>& loop, Body&& body) {
  if (loop.numel == 0) return;
  std::int64_t offsets[N] = {};
  if (loop.ndim == 0) {
    body(offsets, 1, nullptr);
    return;
  }
  const int inner = loop.ndim - 1;
  std::int64_t index[Shape::kMaxDims] = {};
  std::int64_t inner_strides[N];
  for (int k = 0; k < N; ++k) inner_strides[k] = loop.strides[k][inner];
  for (std::int64_t done = 0; done < loop.numel; done += loop.shape[inner]) {
    body(offsets, loop.shape[inner], inner_strides);
    for (int d = inner - 1; d >= 0; --d) {
      for (int k = 0; k < N; ++k) offsets[k] += loop.strides[k][d];
      if (++index[d] < loop.shape[d]) break;
      for (int k = 0; k < N; ++k) offsets[k] -= loop.strides[k][d] * loop.shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace detail

// out[i] = f(a[i])
template <class Out, class A, class F>
void unary_loop(const ElementwiseLoop<2>& loop, F f) {
  auto* out = static_cast<Out*>(loop.data[0]);
  const auto* a = static_cast<const A*>(loop.data[1]);
  if (loop.contiguous) {
    const std::int64_t n = loop.numel;
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) out[i] = f(a[i]);
    return;
  }
  detail::walk(loop, [&](const std::int64_t* off, std::int64_t len, const std::int64_t* s) {
    const std::int64_t so = s ? s[0] : 0, sa = s ? s[1] : 0;
    for (std::int64_t i = 0; i < len; ++i) out[off[0] + i * so] = f(a[off[1] + i * sa]);
  });
}

// out[i] = f(a[i], b[i])
template <class Out, class A, class B, class F>
void binary_loop(const ElementwiseLoop<3>& loop, F f) {
  auto* out = static_cast<Out*>(loop.data[0]);
  const auto* a = static_cast<const A*>(loop.data[1]);
  const auto* b = static_cast<const B*>(loop.data[2]);
  if (loop.contiguous) {
    const std::int64_t n = loop.numel;
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
    return;
  }
  detail::walk(loop, [&](const std::int64_t* off, std::int64_t len, const std::int64_t* s) {
    const std::int64_t so = s ? s[0] : 0, sa = s ? s[1] : 0, sb = s ? s[2] : 0;
    for (std::int64_t i = 0; i < len; ++i) {
      out[off[0] + i * so] = f(a[off[1] + i * sa], b[off[2] + i * sb]);
    }
  });
}

// out[i] = f(a[i], b[i], c[i])
template <class Out, class A, class B, class C, class F>
void ternary_loop(const ElementwiseLoop<4>& loop, F f) {
  auto* out = static_cast<Out*>(loop.data[0]);
  const auto* a = static_cast<const A*>(loop.data[1]);
  const auto* b = static_cast<const B*>(loop.data[2]);
  const auto* c = static_cast<const C*>(loop.data[3]);
  if (loop.contiguous) {
    const std::int64_t n = loop.numel;
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i], c[i]);
    return;
  }
  detail::walk(loop, [&](const std::int64_t* off, std::int64_t len, const std::int64_t* s) {
    const std::int64_t so = s ? s[0] : 0, sa = s ? s[1] : 0, sb = s ? s[2] : 0, sc = s ? s[3] : 0;
    for (std::int64_t i = 0; i < len; ++i) {
      out[off[0] + i * so] = f(a[off[1] + i * sa], b[off[2] + i * sb], c[off[3] + i * sc]);
    }
  });
}

}  // namespace kiln::cpu
