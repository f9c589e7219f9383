// cuda implementation of the binary family: the formulas of kernels/binary_math.h over
// kernels/cuda/loops.cuh, queued on the device's current stream.
#include "kiln/kernels/binary_impl.h"
#include "kiln/kernels/cuda/loops.cuh"

namespace kiln::cuda {
namespace {

[[noreturn]] void unsupported(const char* what, DType dtype) {
  KILN_THROW(InternalError, what, ": dtype ", dtype, " reached the cuda loop (binary.cpp checks it)");
}

}  // namespace

void binary_forward(BinaryOp op, DType dtype, const ElementwiseLoop<3>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_binary_op(op, [&]<BinaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      if constexpr (binary_arithmetic_supports<T>) {
        binary_loop<T, T, T>(loop, stream, BinaryFn<Op, T>{});
      } else {
        unsupported("binary_forward", dtype);
      }
    });
  });
}

void binary_scalar_forward(BinaryOp op, DType dtype, ScalarOperand s, const ElementwiseLoop<2>& loop,
                           int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_binary_op(op, [&]<BinaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      using C = math::compute_t<T>;
      if constexpr (!binary_arithmetic_supports<T>) {
        unsupported("binary_scalar_forward", dtype);
      } else if (!s.first) {
        unary_loop<T, T>(loop, stream, BinaryScalarFn<Op, T, false>{static_cast<C>(s.value)});
      } else if constexpr (has_scalar_first(Op)) {
        unary_loop<T, T>(loop, stream, BinaryScalarFn<Op, T, true>{static_cast<C>(s.value)});
      } else {
        KILN_THROW(InternalError, "binary_scalar_forward: no op(s, x) form for this op");
      }
    });
  });
}

void binary_backward(BinaryOp op, int wrt, DType dtype, const ElementwiseLoop<4>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_binary_op(op, [&]<BinaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      if constexpr (binary_grad_supports<T>) {
        if (wrt == 0) {
          ternary_loop<T, T, T, T>(loop, stream, BinaryGradFn<Op, T, 0>{});
        } else {
          ternary_loop<T, T, T, T>(loop, stream, BinaryGradFn<Op, T, 1>{});
        }
      } else {
        unsupported("binary_backward", dtype);
      }
    });
  });
}

void binary_scalar_backward(BinaryOp op, DType dtype, ScalarOperand s, const ElementwiseLoop<3>& loop,
                            int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_binary_op(op, [&]<BinaryOp Op>() {
    visit_dtype(dtype, [&]<class T>() {
      using C = math::compute_t<T>;
      if constexpr (!binary_grad_supports<T>) {
        unsupported("binary_scalar_backward", dtype);
      } else if (!s.first) {
        binary_loop<T, T, T>(loop, stream, BinaryScalarGradFn<Op, T, false>{static_cast<C>(s.value)});
      } else if constexpr (has_scalar_first(Op)) {
        binary_loop<T, T, T>(loop, stream, BinaryScalarGradFn<Op, T, true>{static_cast<C>(s.value)});
      } else {
        KILN_THROW(InternalError, "binary_scalar_backward: no op(s, x) form for this op");
      }
    });
  });
}

void compare(CompareOp op, DType dtype, const ElementwiseLoop<3>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_compare_op(op, [&]<CompareOp Op>() {
    visit_dtype(dtype, [&]<class T>() { binary_loop<bool, T, T>(loop, stream, CompareFn<Op, T>{}); });
  });
}

void where(DType dtype, const ElementwiseLoop<4>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dtype, [&]<class T>() { ternary_loop<T, bool, T, T>(loop, stream, WhereFn<T>{}); });
}

void clamp(DType dtype, double lo, double hi, const ElementwiseLoop<2>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dtype, [&]<class T>() {
    using C = math::compute_t<T>;
    if constexpr (binary_arithmetic_supports<T>) {
      unary_loop<T, T>(loop, stream, ClampFn<T>{clamp_bound<C>(lo, true), clamp_bound<C>(hi, false)});
    } else {
      unsupported("clamp", dtype);
    }
  });
}

void clamp_backward(DType dtype, double lo, double hi, const ElementwiseLoop<3>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dtype, [&]<class T>() {
    using C = math::compute_t<T>;
    if constexpr (binary_grad_supports<T>) {
      binary_loop<T, T, T>(loop, stream, ClampGradFn<T>{static_cast<C>(lo), static_cast<C>(hi)});
    } else {
      unsupported("clamp_backward", dtype);
    }
  });
}

void axpy(DType dtype, double alpha, const ElementwiseLoop<3>& loop, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dtype, [&]<class T>() {
    using C = math::compute_t<T>;
    if constexpr (binary_arithmetic_supports<T>) {
      binary_loop<T, T, T>(loop, stream, AxpyFn<T>{static_cast<C>(alpha)});
    } else {
      unsupported("axpy", dtype);
    }
  });
}

}  // namespace kiln::cuda
