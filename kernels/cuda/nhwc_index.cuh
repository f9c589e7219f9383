// Index helpers for the one-thread-per-element NHWC kernels (pool.cu, resize.cu): a flat
// element index back to its (n, a, b, c) coordinates, with the divisions in the narrowest
// integer type the element count allows.
#pragma once

#include <cstdint>

#include "kiln/core/cuda/kernel.h"
#include "kiln/kernels/cuda/loops.cuh"  // detail::with_index_type picks the Index

namespace kiln::cuda {

// The (n, a, b, c) coordinates of flat element i of a contiguous (N, A, B, C) tensor, with
// the divisions in Index: uint32_t when the tensor has fewer than 2^32 elements (a 64-bit
// division is several times the instructions on a GPU), else int64_t.
struct Pixel {
  std::int64_t n, a, b, c;
};
template <class Index>
__device__ __forceinline__ Pixel unflatten(std::int64_t flat, std::int64_t A, std::int64_t B, std::int64_t C) {
  auto i = static_cast<Index>(flat);
  Pixel p;
  p.c = static_cast<std::int64_t>(i % static_cast<Index>(C));
  i /= static_cast<Index>(C);
  p.b = static_cast<std::int64_t>(i % static_cast<Index>(B));
  i /= static_cast<Index>(B);
  p.a = static_cast<std::int64_t>(i % static_cast<Index>(A));
  p.n = static_cast<std::int64_t>(i / static_cast<Index>(A));
  return p;
}

}  // namespace kiln::cuda
