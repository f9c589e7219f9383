// ElementwiseLoop: the iteration plan shared by the cpu loops (kernels/cpu/loops.h) and the
// cuda kernels (kernels/cuda/loops.cuh). Operand 0 is the output; every operand has been
// broadcast (expanded) to the output's shape. Axes are coalesced where every operand
// steps through them as one (so a contiguous tensor becomes one axis) and extent-1 axes
// dropped, which keeps offset arithmetic short.
#pragma once

#include <array>
#include <cstdint>

#include "kiln/core/shape.h"
#include "kiln/core/tensor.h"

namespace kiln {

template <int N>
struct ElementwiseLoop {
  std::int64_t numel = 0;
  int ndim = 0;
  std::int64_t shape[Shape::kMaxDims] = {};
  std::int64_t strides[N][Shape::kMaxDims] = {};  // in elements
  void* data[N] = {};
  bool contiguous = false;  // one axis of stride 1 in every operand: index i is offset i
};

// The loop holds raw data pointers: every operand must outlive it (never pass a
// temporary such as t.to(dtype) here).
template <int N>
ElementwiseLoop<N> make_loop(const std::array<Tensor, N>& operands) {
  ElementwiseLoop<N> loop;
  const Shape& shape = operands[0].shape();
  loop.numel = shape.numel();
  for (int k = 0; k < N; ++k) {
    KILN_ASSERT(operands[k].shape() == shape, "make_loop: operand ", k, " has shape ",
                operands[k].shape(), ", expected ", shape);
    loop.data[k] = operands[k].data_ptr();
  }
  // Walk axes from the innermost outwards, merging an axis into the one inside it when
  // every operand's stride says they are one run.
  for (int d = shape.ndim() - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    const int cur = loop.ndim - 1;
    bool merge = cur >= 0;
    for (int k = 0; k < N && merge; ++k) {
      merge = operands[k].strides()[d] == loop.strides[k][cur] * loop.shape[cur];
    }
    if (merge) {
      loop.shape[cur] *= shape[d];
    } else {
      loop.shape[loop.ndim] = shape[d];
      for (int k = 0; k < N; ++k) loop.strides[k][loop.ndim] = operands[k].strides()[d];
      ++loop.ndim;
    }
  }
  // Stored innermost-first above; flip to row-major order (axis 0 outermost).
  for (int a = 0, b = loop.ndim - 1; a < b; ++a, --b) {
    std::swap(loop.shape[a], loop.shape[b]);
    for (int k = 0; k < N; ++k) std::swap(loop.strides[k][a], loop.strides[k][b]);
  }
  bool contiguous = loop.ndim <= 1;
  for (int k = 0; k < N && contiguous; ++k) contiguous = loop.ndim == 0 || loop.strides[k][0] == 1;
  loop.contiguous = contiguous;
  return loop;
}

}  // namespace kiln
