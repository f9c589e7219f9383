// Internal: the per-device entry points of the binary family (kernels/cpu/binary.cpp,
// kernels/cuda/binary.cu). kernels/binary.cpp has already checked the operands, converted
// them to `dtype` (the promoted compute dtype) and allocated the output; every loop
// operand listed below is of `dtype` unless said otherwise. A "scalar" is held in the
// compute type (float for float16/bfloat16); `scalar_first` means op(s, x) not op(x, s).
#pragma once

#include "kiln/kernels/binary_math.h"
#include "kiln/kernels/elementwise.h"

namespace kiln {

struct ScalarOperand {
  double value = 0;
  bool first = false;  // op(value, x) instead of op(x, value)
};

namespace cpu {
// (out, a, b)
void binary_forward(BinaryOp op, DType dtype, const ElementwiseLoop<3>& loop);
// (out, x)
void binary_scalar_forward(BinaryOp op, DType dtype, ScalarOperand s, const ElementwiseLoop<2>& loop);
// (grad, a, b, g): the gradient w.r.t. input `wrt` (0: a, 1: b); floating dtypes only
void binary_backward(BinaryOp op, int wrt, DType dtype, const ElementwiseLoop<4>& loop);
// (grad, x, g)
void binary_scalar_backward(BinaryOp op, DType dtype, ScalarOperand s, const ElementwiseLoop<3>& loop);
// (out: bool, a, b)
void compare(CompareOp op, DType dtype, const ElementwiseLoop<3>& loop);
// (out, cond: bool, a, b)
void where(DType dtype, const ElementwiseLoop<4>& loop);
// (out, x)
void clamp(DType dtype, double lo, double hi, const ElementwiseLoop<2>& loop);
// (grad, x, g)
void clamp_backward(DType dtype, double lo, double hi, const ElementwiseLoop<3>& loop);
// (out, a, b): out = a + alpha * b
void axpy(DType dtype, double alpha, const ElementwiseLoop<3>& loop);
}  // namespace cpu

namespace cuda {
void binary_forward(BinaryOp op, DType dtype, const ElementwiseLoop<3>& loop, int device);
void binary_scalar_forward(BinaryOp op, DType dtype, ScalarOperand s, const ElementwiseLoop<2>& loop,
                           int device);
void binary_backward(BinaryOp op, int wrt, DType dtype, const ElementwiseLoop<4>& loop, int device);
void binary_scalar_backward(BinaryOp op, DType dtype, ScalarOperand s, const ElementwiseLoop<3>& loop,
                            int device);
void compare(CompareOp op, DType dtype, const ElementwiseLoop<3>& loop, int device);
void where(DType dtype, const ElementwiseLoop<4>& loop, int device);
void clamp(DType dtype, double lo, double hi, const ElementwiseLoop<2>& loop, int device);
void clamp_backward(DType dtype, double lo, double hi, const ElementwiseLoop<3>& loop, int device);
void axpy(DType dtype, double alpha, const ElementwiseLoop<3>& loop, int device);
}  // namespace cuda
}  // namespace kiln
