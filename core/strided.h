// StridedView: the plain description of a tensor's elements that kernels take by value
// (pointer to the first element, dtype, extents and strides in elements). Shared by the
// CPU loops and the CUDA kernels of core/ (copy, fill, random).
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/core/macros.h"
#include "kiln/core/shape.h"

namespace kiln {

struct StridedView {
  void* data = nullptr;  // the element at index (0, ..., 0)
  DType dtype = DType::float32;
  int ndim = 0;
  std::int64_t shape[Shape::kMaxDims] = {};
  std::int64_t strides[Shape::kMaxDims] = {};

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
};

// Element offset (in elements, from data) of the row-major linear index `i`.
KILN_HOST_DEVICE KILN_FORCEINLINE std::int64_t strided_offset(const StridedView& v,
                                                              std::int64_t i) {
  std::int64_t offset = 0;
  for (int d = v.ndim - 1; d >= 0; --d) {
    const std::int64_t extent = v.shape[d];
    offset += (i % extent) * v.strides[d];
    i /= extent;
  }
  return offset;
}

}  // namespace kiln
