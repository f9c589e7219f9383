// cuda implementation of the unary family: the formulas of kernels/unary_math.h over
// kernels/cuda/loops.cuh, queued on the device's current stream.
#include "kiln/kernels/cuda/loops.cuh"
#include "kiln/kernels/unary_impl.h"

namespace kiln::cuda {

void unary_forward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<2>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_unary_op(op, [&]<UnaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      if constexpr (unary_supports<Op, T>) {
        unary_loop<T, T>(loop, stream, UnaryForwardFn<Op, T>{static_cast<math::compute_t<T>>(alpha)});
      } else {
        KILN_THROW(InternalError, "unary_forward: unsupported dtype ", dtype, " reached the cuda loop");
      }
    });
  });
}

void unary_backward(UnaryOp op, double alpha, DType dtype, const ElementwiseLoop<4>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_unary_op(op, [&]<UnaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      if constexpr (is_floating(dtype_of<T>())) {
        ternary_loop<T, T, T, T>(loop, stream,
                                 UnaryBackwardFn<Op, T>{static_cast<math::compute_t<T>>(alpha)});
      } else {
        KILN_THROW(InternalError, "unary_backward: non-floating dtype ", dtype);
      }
    });
  });
}

}  // namespace kiln::cuda
