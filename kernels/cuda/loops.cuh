// cuda elementwise kernels over an ElementwiseLoop: out = f(in...). All go through core's
// one launch helper (launch_elementwise: grid-stride loop, grid sized there).
//
// Note [Vectorised contiguous loops]
// When every operand is contiguous and every pointer is aligned to one 128-bit access of
// the widest operand type, work item i handles the N elements [i*N, (i+1)*N) with one
// load_vector per input and one store_vector (N = 16 bytes / widest itemsize: 4 floats,
// 8 halves or bfloat16s, 2 doubles); the last n % N elements are extra work items that go
// element by element. load_vector/store_vector are core's spelling, so SIM checks their
// alignment. Views starting at an odd offset fail the alignment test on the host and take
// the element-by-element (strided) kernel.
//
// Strided operands compute each operand's offset from the row-major index: one div/mod
// per coalesced axis past the first, in 32-bit arithmetic when the element count allows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kiln/core/cuda/launch.h"
#include "kiln/kernels/elementwise.h"


namespace kiln::cuda {

// N elements of T in one aligned access (alignas makes nvcc emit one vector instruction).
template <class T, int N>
struct alignas(sizeof(T) * N) Packet {
  T v[N];
};

// Elements per 128-bit access of the widest operand.
template <class... Ts>
inline constexpr int kVectorWidth = static_cast<int>(16 / std::max({sizeof(Ts)...}));

// True when p is aligned for Packet<T, N>.
template <int N, class T>
bool packet_aligned(const T* p) {
  return reinterpret_cast<std::uintptr_t>(p) % (sizeof(T) * N) == 0;
}

template <int N, class Index>
__device__ __forceinline__ void loop_offsets(const ElementwiseLoop<N>& loop, Index i,
                                             std::int64_t (&off)[N]) {
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = loop.ndim - 1; d > 0; --d) {
    const auto extent = static_cast<Index>(loop.shape[d]);
    const Index idx = i % extent;
    i /= extent;
    for (int k = 0; k < N; ++k) off[k] += static_cast<std::int64_t>(idx) * loop.strides[k][d];
  }
  // The outermost axis takes what is left: no division.
  if (loop.ndim > 0) {
    for (int k = 0; k < N; ++k) off[k] += static_cast<std::int64_t>(i) * loop.strides[k][0];
  }
}

// ---- functors run by launch_elementwise (one per work item i) ----

template <int N, class Out, class A, class F>
struct UnaryContiguous {
  Out* out;
  const A* a;
  std::int64_t vectors;  // work items below this are whole packets
  F f;
  __device__ void operator()(std::int64_t i) const {
    if (i < vectors) {
      const auto va = load_vector<Packet<A, N>>(a + i * N);
      Packet<Out, N> vo;
KILN_UNROLL
      for (int k = 0; k < N; ++k) vo.v[k] = f(va.v[k]);
      store_vector(out + i * N, vo);
    } else {
      const std::int64_t j = vectors * N + (i - vectors);
      out[j] = f(a[j]);
    }
  }
};

template <int N, class Out, class A, class B, class F>
struct BinaryContiguous {
  Out* out;
  const A* a;
  const B* b;
  std::int64_t vectors;
  F f;
  __device__ void operator()(std::int64_t i) const {
    if (i < vectors) {
      const auto va = load_vector<Packet<A, N>>(a + i * N);
      const auto vb = load_vector<Packet<B, N>>(b + i * N);
      Packet<Out, N> vo;
KILN_UNROLL
      for (int k = 0; k < N; ++k) vo.v[k] = f(va.v[k], vb.v[k]);
      store_vector(out + i * N, vo);
    } else {
      const std::int64_t j = vectors * N + (i - vectors);
      out[j] = f(a[j], b[j]);
    }
  }
};

template <int N, class Out, class A, class B, class C, class F>
struct TernaryContiguous {
  Out* out;
  const A* a;
  const B* b;
  const C* c;
  std::int64_t vectors;
  F f;
  __device__ void operator()(std::int64_t i) const {
    if (i < vectors) {
      const auto va = load_vector<Packet<A, N>>(a + i * N);
      const auto vb = load_vector<Packet<B, N>>(b + i * N);
      const auto vc = load_vector<Packet<C, N>>(c + i * N);
      Packet<Out, N> vo;
KILN_UNROLL
      for (int k = 0; k < N; ++k) vo.v[k] = f(va.v[k], vb.v[k], vc.v[k]);
      store_vector(out + i * N, vo);
    } else {
      const std::int64_t j = vectors * N + (i - vectors);
      out[j] = f(a[j], b[j], c[j]);
    }
  }
};

template <class Index, class Out, class A, class F>
struct UnaryStrided {
  ElementwiseLoop<2> loop;
  F f;
  __device__ void operator()(std::int64_t i) const {
    std::int64_t off[2];
    loop_offsets(loop, static_cast<Index>(i), off);
    static_cast<Out*>(loop.data[0])[off[0]] = f(static_cast<const A*>(loop.data[1])[off[1]]);
  }
};

template <class Index, class Out, class A, class B, class F>
struct BinaryStrided {
  ElementwiseLoop<3> loop;
  F f;
  __device__ void operator()(std::int64_t i) const {
    std::int64_t off[3];
    loop_offsets(loop, static_cast<Index>(i), off);
    static_cast<Out*>(loop.data[0])[off[0]] = f(static_cast<const A*>(loop.data[1])[off[1]],
                                                static_cast<const B*>(loop.data[2])[off[2]]);
  }
};

template <class Index, class Out, class A, class B, class C, class F>
struct TernaryStrided {
  ElementwiseLoop<4> loop;
  F f;
  __device__ void operator()(std::int64_t i) const {
    std::int64_t off[4];
    loop_offsets(loop, static_cast<Index>(i), off);
    static_cast<Out*>(loop.data[0])[off[0]] = f(static_cast<const A*>(loop.data[1])[off[1]],
                                                static_cast<const B*>(loop.data[2])[off[2]],
                                                static_cast<const C*>(loop.data[3])[off[3]]);
  }
};

namespace detail {

// Work items for a vectorised contiguous loop: whole packets, then the tail elements.
template <int N>
std::int64_t vector_work(std::int64_t n, std::int64_t* vectors) {
  *vectors = n / N;
  return *vectors + n % N;
}

// Calls launch.template operator()<Index>() with Index = uint32_t when every row-major
// index fits 32 bits (cheaper div/mod in loop_offsets), else int64_t.
template <class Launch>
void with_index_type(std::int64_t numel, Launch&& launch) {
  if (numel <= std::int64_t{std::numeric_limits<std::uint32_t>::max()}) {
    launch.template operator()<std::uint32_t>();
  } else {
    launch.template operator()<std::int64_t>();
  }
}

}  // namespace detail

// ---- launchers (see Note [Vectorised contiguous loops]) ----
// A contiguous loop whose pointers are not all packet-aligned takes the strided kernel:
// with one axis its offsets are i * stride, no division.

// out[i] = f(a[i])
template <class Out, class A, class F>
void unary_loop(const ElementwiseLoop<2>& loop, void* stream, F f) {
  auto* out = static_cast<Out*>(loop.data[0]);
  const auto* a = static_cast<const A*>(loop.data[1]);
  constexpr int N = kVectorWidth<Out, A>;
  if (loop.contiguous && packet_aligned<N>(out) && packet_aligned<N>(a)) {
    std::int64_t vectors = 0;
    const std::int64_t work = detail::vector_work<N>(loop.numel, &vectors);
    launch_elementwise(work, stream, UnaryContiguous<N, Out, A, F>{out, a, vectors, f});
    return;
  }
  detail::with_index_type(loop.numel, [&]<class I>() {
    launch_elementwise(loop.numel, stream, UnaryStrided<I, Out, A, F>{loop, f});
  });
}

// out[i] = f(a[i], b[i])
template <class Out, class A, class B, class F>
void binary_loop(const ElementwiseLoop<3>& loop, void* stream, F f) {
  auto* out = static_cast<Out*>(loop.data[0]);
  const auto* a = static_cast<const A*>(loop.data[1]);
  const auto* b = static_cast<const B*>(loop.data[2]);
  constexpr int N = kVectorWidth<Out, A, B>;
  if (loop.contiguous && packet_aligned<N>(out) && packet_aligned<N>(a) && packet_aligned<N>(b)) {
    std::int64_t vectors = 0;
    const std::int64_t work = detail::vector_work<N>(loop.numel, &vectors);
    launch_elementwise(work, stream, BinaryContiguous<N, Out, A, B, F>{out, a, b, vectors, f});
    return;
  }
  detail::with_index_type(loop.numel, [&]<class I>() {
    launch_elementwise(loop.numel, stream, BinaryStrided<I, Out, A, B, F>{loop, f});
  });
}

// out[i] = f(a[i], b[i], c[i])
template <class Out, class A, class B, class C, class F>
void ternary_loop(const ElementwiseLoop<4>& loop, void* stream, F f) {
  auto* out = static_cast<Out*>(loop.data[0]);
  const auto* a = static_cast<const A*>(loop.data[1]);
  const auto* b = static_cast<const B*>(loop.data[2]);
  const auto* c = static_cast<const C*>(loop.data[3]);
  constexpr int N = kVectorWidth<Out, A, B, C>;
  if (loop.contiguous && packet_aligned<N>(out) && packet_aligned<N>(a) && packet_aligned<N>(b) &&
      packet_aligned<N>(c)) {
    std::int64_t vectors = 0;
    const std::int64_t work = detail::vector_work<N>(loop.numel, &vectors);
    launch_elementwise(work, stream, TernaryContiguous<N, Out, A, B, C, F>{out, a, b, c, vectors, f});
    return;
  }
  detail::with_index_type(loop.numel, [&]<class I>() {
    launch_elementwise(loop.numel, stream, TernaryStrided<I, Out, A, B, C, F>{loop, f});
  });
}

}  // namespace kiln::cuda
