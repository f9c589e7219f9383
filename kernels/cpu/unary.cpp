// cpu implementation of the unary family: the formulas of kernels/unary_math.h over
// kernels/cpu/loops.h.
#include "kiln/kernels/cpu/loops.h"
#include "kiln/kernels/unary_impl.h"

namespace kiln::cpu {

void unary_forward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<2>& loop) {
  visit_unary_op(op, [&]<UnaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      if constexpr (unary_supports<Op, T>) {
        unary_loop<T, T>(loop, UnaryForwardFn<Op, T>{static_cast<math::compute_t<T>>(alpha)});
      } else {
        KILN_THROW(InternalError, "unary_forward: unsupported dtype ", dtype, " reached the cpu loop");
      }
    });
  });
}

void unary_backward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<4>& loop) {
  visit_unary_op(op, [&]<UnaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      if constexpr (is_floating(dtype_of<T>())) {
        ternary_loop<T, T, T, T>(loop, UnaryBackwardFn<Op, T>{static_cast<math::compute_t<T>>(alpha)});
      } else {
        KILN_THROW(InternalError, "unary_backward: non-floating dtype ", dtype);
      }
    });
  });
}

}  // namespace kiln::cpu
