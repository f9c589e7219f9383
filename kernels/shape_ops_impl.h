// Internal: the per-device entry points of the indexing ops (kernels/cpu/shape_ops.cpp,
// kernels/cuda/shape_ops.cu). concat, stack, split and pad need no kernels of their own:
// they are views and core's strided copies (kernels/shape_ops.cpp).
//
// Indices are int32 or int64, contiguous, already checked to lie in [-extent, extent);
// kernels wrap negative ones (NumPy's rule). Accumulating kernels (scatter_add and the
// backward of gather) add into an `acc` buffer the op zero-filled beforehand, of the
// source's dtype, or float32 for float16/bfloat16 sources (accumulate_dtype), which the op
// casts back: repeated indices then sum in float on both devices.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/core/macros.h"
#include "kiln/core/shape.h"

namespace kiln {

// take / index_select / scatter_add: the indexed tensor viewed as (outer, extent, inner),
// the picked one as (outer, count, inner); count = number of indices.
struct TakePlan {
  std::int64_t outer = 1, extent = 0, inner = 1, count = 0;
  DType dtype = DType::float32;        // the data's
  DType index_dtype = DType::int64;
};

// gather (take_along_axis) and its backward: out[i] = x[i with coordinate `axis` replaced
// by indices[i]], for i over the indices' shape (contiguous, like out and the backward's
// source). x_strides: the strides of x (any layout) or of the backward's accumulator.
struct GatherPlan {
  int ndim = 0;
  int axis = 0;
  std::int64_t numel = 0;
  std::int64_t shape[Shape::kMaxDims] = {};      // the indices' (= out's) shape
  std::int64_t x_strides[Shape::kMaxDims] = {};
  std::int64_t extent = 0;                        // x's extent along axis
  DType dtype = DType::float32;
  DType index_dtype = DType::int64;
};

constexpr DType accumulate_dtype(DType dtype) {
  return dtype == DType::float16 || dtype == DType::bfloat16 ? DType::float32 : dtype;
}

KILN_HOST_DEVICE KILN_FORCEINLINE std::int64_t wrap_index(std::int64_t i, std::int64_t extent) {
  return i < 0 ? i + extent : i;
}

// Offset in x of gather element i (row-major over plan.shape) whose index is `picked`.
KILN_HOST_DEVICE KILN_FORCEINLINE std::int64_t gather_offset(const GatherPlan& p, std::int64_t i,
                                                             std::int64_t picked) {
  std::int64_t offset = 0;
  for (int d = p.ndim - 1; d >= 0; --d) {
    const std::int64_t coord = i % p.shape[d];
    i /= p.shape[d];
    offset += (d == p.axis ? wrap_index(picked, p.extent) : coord) * p.x_strides[d];
  }
  return offset;
}

namespace cpu {
// The flat position of the first index outside [lo, hi), or -1.
std::int64_t first_bad_index(const void* indices, DType index_dtype, std::int64_t count, std::int64_t lo,
                             std::int64_t hi);
void take(const TakePlan& p, const void* x, const void* indices, void* out);
void scatter_add(const TakePlan& p, const void* src, const void* indices, void* acc);
void gather(const GatherPlan& p, const void* x, const void* indices, void* out);
void gather_backward(const GatherPlan& p, const void* src, const void* indices, void* acc);
// out (count, depth) of out_dtype: 1 where column == indices[row], else 0.
void one_hot(const void* indices, DType index_dtype, std::int64_t count, std::int64_t depth, void* out,
             DType out_dtype);
}  // namespace cpu
namespace cuda {
// One small kernel marks the first bad position in a device flag, read back here (a
// stream synchronisation).
std::int64_t first_bad_index(const void* indices, DType index_dtype, std::int64_t count, std::int64_t lo,
                             std::int64_t hi, int device);
void take(const TakePlan& p, const void* x, const void* indices, void* out, int device);
void scatter_add(const TakePlan& p, const void* src, const void* indices, void* acc, int device);
void gather(const GatherPlan& p, const void* x, const void* indices, void* out, int device);
void gather_backward(const GatherPlan& p, const void* src, const void* indices, void* acc, int device);
void one_hot(const void* indices, DType index_dtype, std::int64_t count, std::int64_t depth, void* out,
             DType out_dtype, int device);
}  // namespace cuda

}  // namespace kiln
