// Internal: the per-device entry points of the reduction family (kernels/cpu/reduce.cpp,
// kernels/cuda/reduce.cu). kernels/reduce.cpp lays the input out as a contiguous
// (outer, K, inner) block, K being the reduced elements of one output, and checks dtypes.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/kernels/reduce_math.h"

namespace kiln {

enum class ReduceOp : std::uint8_t { sum, mean, max, min, argmax, argmin, var, std, norm };

struct ReduceParams {
  ReduceOp op = ReduceOp::sum;
  int ddof = 0;                                           // var, std
  reduce_math::NormKind norm = reduce_math::NormKind::l2;  // norm
  double p = 2.0;                                         // norm (NormKind::lp)
};

// x: contiguous (outer, K, inner) of dtype `dtype`; out: contiguous (outer, inner) of
// reduce_out_dtype(op, dtype). A row is the K elements x[o, :, i].
struct ReduceLayout {
  const void* x = nullptr;
  void* out = nullptr;
  DType dtype = DType::float32;
  std::int64_t outer = 1, K = 1, inner = 1;
};

// Backward: gx and x are (outer, K, inner) contiguous of `dtype` (a floating type); y, g,
// mean are (outer, inner) of `dtype`, index (outer, inner) int64. Pointers the gradient
// kind does not read may be null (reduce_math::grad_of says which it reads).
struct ReduceGradLayout {
  void* gx = nullptr;
  const void* x = nullptr;
  const void* y = nullptr;
  const void* g = nullptr;
  const void* mean = nullptr;
  const std::int64_t* index = nullptr;
  DType dtype = DType::float32;
  std::int64_t outer = 1, K = 1, inner = 1;
};

// Output dtype: sum of integers/bool int64, mean of integers float32, arg* int64,
// otherwise the input's.
constexpr DType reduce_out_dtype(ReduceOp op, DType in) {
  switch (op) {
    case ReduceOp::sum: return is_floating(in) ? in : DType::int64;
    case ReduceOp::mean: return is_floating(in) ? in : DType::float32;
    case ReduceOp::argmax:
    case ReduceOp::argmin: return DType::int64;
    default: return in;
  }
}

// Calls f(reducer) with the reducer object of params.op for input type T.
template <class T, class F>
void visit_reducer(const ReduceParams& params, F&& f) {
  using namespace reduce_math;
  switch (params.op) {
    case ReduceOp::sum: f(SumReducer<T>{}); return;
    case ReduceOp::mean: f(MeanReducer<T>{}); return;
    case ReduceOp::max: f(ExtremeReducer<T, true>{}); return;
    case ReduceOp::min: f(ExtremeReducer<T, false>{}); return;
    case ReduceOp::argmax: f(ArgReducer<T, true>{}); return;
    case ReduceOp::argmin: f(ArgReducer<T, false>{}); return;
    default: break;
  }
  if constexpr (std::is_floating_point_v<math::compute_t<T>>) {
    using C = math::compute_t<T>;
    switch (params.op) {
      case ReduceOp::var: f(MomentReducer<T>{params.ddof, false}); return;
      case ReduceOp::std: f(MomentReducer<T>{params.ddof, true}); return;
      case ReduceOp::norm: f(NormReducer<T>{params.norm, static_cast<C>(params.p)}); return;
      default: break;
    }
  }
  KILN_THROW(InternalError, "visit_reducer: op ", static_cast<int>(params.op),
             " reached a kernel with dtype ", dtype_of<T>());
}

namespace cpu {
void reduce(const ReduceParams& params, const ReduceLayout& layout);
void reduce_backward(const reduce_math::GradParams& params, const ReduceGradLayout& layout);
}  // namespace cpu
namespace cuda {
void reduce(const ReduceParams& params, const ReduceLayout& layout, int device);
void reduce_backward(const reduce_math::GradParams& params, const ReduceGradLayout& layout, int device);
}  // namespace cuda

}  // namespace kiln
