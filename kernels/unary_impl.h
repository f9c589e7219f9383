// Internal: the per-device entry points of the unary family (kernels/cpu/unary.cpp,
// kernels/cuda/unary.cu). Operands are already allocated and checked by kernels/unary.cpp.
#pragma once

#include "kiln/kernels/elementwise.h"
#include "kiln/kernels/unary_math.h"

namespace kiln {
namespace cpu {
// loop operands: (y, x)
void unary_forward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<2>& loop);
// loop operands: (grad_x, x, y, grad_y)
void unary_backward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<4>& loop);
}  // namespace cpu
namespace cuda {
void unary_forward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<2>& loop, int device);
void unary_backward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<4>& loop, int device);
}  // namespace cuda
}  // namespace kiln
