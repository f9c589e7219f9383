// cuda elementwise kernels over an ElementwiseLoop: out = f(in...). Contiguous operands
// index directly; strided ones compute each operand's offset from the row-major index
// (one div/mod per coalesced axis). Both go through core's one launch helper
// (launch_elementwise: grid-stride loop, grid sized there).
#pragma once

#include <cstdint>

#include "kiln/core/cuda/launch.h"
#include "kiln/kernels/elementwise.h"

namespace kiln::cuda {

template <int N>
__device__ __forceinline__ void loop_offsets(const ElementwiseLoop<N>& loop, std::int64_t i,
                                             std::int64_t (&off)[N]) {
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = loop.ndim - 1; d >= 0; --d) {
    const std::int64_t extent = loop.shape[d];
    const std::int64_t idx = i % extent;
    i /= extent;
    for (int k = 0; k < N; ++k) off[k] += idx * loop.strides[k][d];
  }
}

template <class Out, class A, class F>
struct UnaryContiguous {
  Out* out;
  const A* a;
  F f;
  __device__ void operator()(std::int64_t i) const { out[i] = f(a[i]); }
};

template <class Out, class A, class F>
struct UnaryStrided {
  ElementwiseLoop<2> loop;
  F f;
  __device__ void operator()(std::int64_t i) const {
    std::int64_t off[2];
    loop_offsets(loop, i, off);
    static_cast<Out*>(loop.data[0])[off[0]] = f(static_cast<const A*>(loop.data[1])[off[1]]);
  }
};

template <class Out, class A, class B, class F>
struct BinaryContiguous {
  Out* out;
  const A* a;
  const B* b;
  F f;
  __device__ void operator()(std::int64_t i) const { out[i] = f(a[i], b[i]); }
};

template <class Out, class A, class B, class F>
struct BinaryStrided {
  ElementwiseLoop<3> loop;
  F f;
  __device__ void operator()(std::int64_t i) const {
    std::int64_t off[3];
    loop_offsets(loop, i, off);
    static_cast<Out*>(loop.data[0])[off[0]] = f(static_cast<const A*>(loop.data[1])[off[1]],
                                                static_cast<const B*>(loop.data[2])[off[2]]);
  }
};

template <class Out, class A, class B, class C, class F>
struct TernaryStrided {
  ElementwiseLoop<4> loop;
  F f;
  __device__ void operator()(std::int64_t i) const {
    std::int64_t off[4];
    loop_offsets(loop, i, off);
    static_cast<Out*>(loop.data[0])[off[0]] = f(static_cast<const A*>(loop.data[1])[off[1]],
                                                static_cast<const B*>(loop.data[2])[off[2]],
                                                static_cast<const C*>(loop.data[3])[off[3]]);
  }
};

template <class Out, class A, class F>
void unary_loop(const ElementwiseLoop<2>& loop, void* stream, F f) {
  if (loop.contiguous) {
    launch_elementwise(loop.numel, stream,
                       UnaryContiguous<Out, A, F>{static_cast<Out*>(loop.data[0]),
                                                  static_cast<const A*>(loop.data[1]), f});
  } else {
    launch_elementwise(loop.numel, stream, UnaryStrided<Out, A, F>{loop, f});
  }
}

template <class Out, class A, class B, class F>
void binary_loop(const ElementwiseLoop<3>& loop, void* stream, F f) {
  if (loop.contiguous) {
    launch_elementwise(loop.numel, stream,
                       BinaryContiguous<Out, A, B, F>{static_cast<Out*>(loop.data[0]),
                                                      static_cast<const A*>(loop.data[1]),
                                                      static_cast<const B*>(loop.data[2]), f});
  } else {
    launch_elementwise(loop.numel, stream, BinaryStrided<Out, A, B, F>{loop, f});
  }
}

template <class Out, class A, class B, class C, class F>
void ternary_loop(const ElementwiseLoop<4>& loop, void* stream, F f) {
  launch_elementwise(loop.numel, stream, TernaryStrided<Out, A, B, C, F>{loop, f});
}

}  // namespace kiln::cuda
