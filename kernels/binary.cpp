// The binary ops: broadcasting, dtype promotion, device checks, dispatch, and the recorded
// backward (gradients summed back over broadcast axes with sum_to).
//
// Note [Binary dtypes]
// Operands promote with promote_types. `div` is true division (NumPy's `/`): integer
// operands give float32. bool tensors take part in comparisons and where only. A scalar
// takes the tensor's dtype when it is a value of that dtype; an integer tensor with a
// scalar that is not (2.5 for int32, -1 for uint8) computes in float32 (comparisons: in
// float64, so int_x < 0.5 is exact), never truncating the scalar. Integer + - * wrap.
#include "kiln/kernels/binary.h"

#include <cmath>
#include <limits>
#include <string>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/binary_impl.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/unary.h"

namespace kiln {
namespace {

constexpr const char* kBinaryNames[] = {
#define KILN_NAME_ENTRY(name) #name,
    KILN_BINARY_OPS(KILN_NAME_ENTRY)};
constexpr const char* kCompareNames[] = {KILN_COMPARE_OPS(KILN_NAME_ENTRY)};
#undef KILN_NAME_ENTRY

const char* op_name(BinaryOp op) { return kBinaryNames[static_cast<int>(op)]; }
const char* op_name(CompareOp op) { return kCompareNames[static_cast<int>(op)]; }

int promotion_rank(DType d) {
  switch (d) {
    case DType::bool_: return 0;
    case DType::uint8: return 1;
    case DType::int32: return 2;
    case DType::int64: return 3;
    case DType::float16:
    case DType::bfloat16: return 4;
    case DType::float32: return 5;
    case DType::float64: return 6;
  }
  return 0;
}

// The tensor's data in `dtype`, detached (the op records its own node). make_loop keeps
// raw pointers only: hold a converted operand in a local until the kernel is queued.
Tensor as_dtype(const Tensor& t, DType dtype) {
  return t.dtype() == dtype ? t.detach() : t.detach().to(dtype);
}

// Whether `v` is a value of the integer dtype `d` (always true for floating dtypes).
bool is_value_of(double v, DType d) {
  if (is_floating(d)) return true;
  if (!std::isfinite(v) || v != std::trunc(v)) return false;
  return visit_dtype(d, [&]<class T>() {
    if constexpr (std::is_integral_v<T>) {
      return v >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
             v <= static_cast<double>(std::numeric_limits<T>::max());
    } else {
      return true;
    }
  });
}

void check_operands(const char* op, const Tensor& a, const Tensor& b) {
  KILN_CHECK(a.defined() && b.defined(), ValueError, op, ": an operand is an undefined tensor");
  detail::check_same_device(op, {&a, &b});
}

void check_not_bool(const char* op, DType dtype, const Shape& a, const Shape& b) {
  KILN_CHECK(dtype != DType::bool_, TypeError, op, ": bool tensors are not supported (shapes ", a, " and ", b,
             "); cast with .to(kiln::int32) first");
}

// A gradient in the output's shape and dtype, reduced to an input's shape and dtype.
Tensor reduce_grad(const Tensor& full, const Shape& shape, DType dtype) {
  const Tensor r = full.shape() == shape ? full : sum_to(full, shape);
  return r.dtype() == dtype ? r : r.to(dtype);
}

// d out / d input `wrt`, times g, in the output's shape and dtype (before reduction);
// a and b are undefined for add and sub, whose gradients do not depend on them.
Tensor input_grad(BinaryOp op, int wrt, const Tensor& a, const Tensor& b, const Tensor& g) {
  if (op == BinaryOp::add) return g;
  if (op == BinaryOp::sub) return wrt == 0 ? g : neg(g);
  const DType dtype = g.dtype();
  Tensor grad = empty(g.shape(), {.dtype = dtype, .device = g.device()});
  const Tensor ca = as_dtype(a, dtype).expand(g.shape()), cb = as_dtype(b, dtype).expand(g.shape());
  const auto loop = make_loop<4>({grad, ca, cb, g});
  KILN_ON_DEVICE(g.device(), op_name(op), cpu::binary_backward(op, wrt, dtype, loop),
                 cuda::binary_backward(op, wrt, dtype, loop, g.device().index()));
  return grad;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  check_operands(name, a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  DType dtype = promote_types(a.dtype(), b.dtype());
  check_not_bool(name, dtype, a.shape(), b.shape());
  if (op == BinaryOp::div && !is_floating(dtype)) dtype = DType::float32;  // Note [Binary dtypes]
  Tensor out = empty(shape, {.dtype = dtype, .device = a.device()});
  const Tensor ca = as_dtype(a, dtype).expand(shape), cb = as_dtype(b, dtype).expand(shape);
  const auto loop = make_loop<3>({out, ca, cb});
  KILN_ON_DEVICE(a.device(), name, cpu::binary_forward(op, dtype, loop),
                 cuda::binary_forward(op, dtype, loop, a.device().index()));
  if (needs_grad({&a, &b})) {
    // add and sub need only the shapes and dtypes: their inputs are not kept alive.
    const bool keep = op != BinaryOp::add && op != BinaryOp::sub;
    record(std::string(name) + "Backward", {a, b}, {out},
           [op, dtype, va = keep ? a.detach() : Tensor(), vb = keep ? b.detach() : Tensor(), sa = a.shape(),
            da = a.dtype(), need_a = a.requires_grad(), sb = b.shape(), db = b.dtype(),
            need_b = b.requires_grad()](std::vector<Tensor>& g) {
             std::vector<Tensor> grads(2);
             if (!g[0].defined()) return grads;
             const Tensor gy = as_dtype(g[0], dtype);
             if (need_a) grads[0] = reduce_grad(input_grad(op, 0, va, vb, gy), sa, da);
             if (need_b) grads[1] = reduce_grad(input_grad(op, 1, va, vb, gy), sb, db);
             return grads;
           });
  }
  return out;
}

// The gradient w.r.t. x of op(x, s) (or op(s, x)), in x's dtype `x_dtype`; x (the values)
// is undefined for add and sub, which do not need it.
Tensor scalar_input_grad(BinaryOp op, const Tensor& x, DType x_dtype, DType dtype, ScalarOperand s,
                         const Tensor& g) {
  const Tensor gy = as_dtype(g, dtype);
  Tensor grad;
  if (op == BinaryOp::add || (op == BinaryOp::sub && !s.first)) {
    grad = gy;
  } else if (op == BinaryOp::sub) {
    grad = neg(gy);
  } else {
    grad = empty(gy.shape(), {.dtype = dtype, .device = gy.device()});
    const Tensor cx = as_dtype(x, dtype);
    const auto loop = make_loop<3>({grad, cx, gy});
    KILN_ON_DEVICE(gy.device(), op_name(op), cpu::binary_scalar_backward(op, dtype, s, loop),
                   cuda::binary_scalar_backward(op, dtype, s, loop, gy.device().index()));
  }
  return grad.dtype() == x_dtype ? grad : grad.to(x_dtype);
}

Tensor binary_scalar(BinaryOp op, const Tensor& x, ScalarOperand s) {
  const char* name = op_name(op);
  KILN_CHECK(x.defined(), ValueError, name, ": the tensor operand is undefined");
  DType dtype = x.dtype();
  check_not_bool(name, dtype, x.shape(), Shape{});
  if (!is_floating(dtype) && (op == BinaryOp::div || !is_value_of(s.value, dtype))) {
    dtype = DType::float32;  // Note [Binary dtypes]
  }
  Tensor out = empty(x.shape(), {.dtype = dtype, .device = x.device()});
  const Tensor cx = as_dtype(x, dtype);
  const auto loop = make_loop<2>({out, cx});
  KILN_ON_DEVICE(x.device(), name, cpu::binary_scalar_forward(op, dtype, s, loop),
                 cuda::binary_scalar_forward(op, dtype, s, loop, x.device().index()));
  if (needs_grad({&x})) {
    record(std::string(name) + "Backward", {x}, {out},
           [op, dtype, s, x_dtype = x.dtype(),
            vx = op == BinaryOp::add || op == BinaryOp::sub ? Tensor() : x.detach()](std::vector<Tensor>& g) {
             if (!g[0].defined()) return std::vector<Tensor>(1);
             return std::vector<Tensor>{scalar_input_grad(op, vx, x_dtype, dtype, s, g[0])};
           });
  }
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  check_operands(name, a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  const DType dtype = promote_types(a.dtype(), b.dtype());
  Tensor out = empty(shape, {.dtype = DType::bool_, .device = a.device()});
  const Tensor ca = as_dtype(a, dtype).expand(shape), cb = as_dtype(b, dtype).expand(shape);
  const auto loop = make_loop<3>({out, ca, cb});
  KILN_ON_DEVICE(a.device(), name, cpu::compare(op, dtype, loop),
                 cuda::compare(op, dtype, loop, a.device().index()));
  return out;
}

Tensor compare_scalar(CompareOp op, const Tensor& a, double s) {
  KILN_CHECK(a.defined(), ValueError, op_name(op), ": the tensor operand is undefined");
  const DType sd = is_value_of(s, a.dtype()) ? a.dtype() : DType::float64;  // Note [Binary dtypes]
  return compare(op, a, full({}, s, {.dtype = sd, .device = a.device()}));
}

// In-place ops write self; they record nothing, so a tensor that requires grad may be
// written only outside recording (optimizers run under NoGradGuard), as core's copy_.
void check_inplace(const char* op, const Tensor& self) {
  KILN_CHECK(self.defined(), ValueError, op, ": self is an undefined tensor");
  KILN_CHECK(!(self.requires_grad() && GradMode::enabled()), ValueError, op,
             ": in-place write into a tensor of shape ", self.shape(),
             " that requires grad while recording; wrap it in a NoGradGuard (as optimizers do) ",
             "or write into a detach()ed tensor");
  KILN_CHECK(self.dtype() != DType::bool_, TypeError, op, ": bool tensors are not supported (shape ",
             self.shape(), ")");
  for (int d = 0; d < self.ndim(); ++d) {
    KILN_CHECK(self.shape()[d] == 1 || self.strides()[d] != 0, ValueError, op, ": self of shape ",
               self.shape(), " is an expanded view (stride 0 on axis ", d,
               "): several elements share one memory location; write into a contiguous() copy");
  }
}

// `other` converted to self's dtype and broadcast to self's shape.
Tensor inplace_operand(const char* op, const Tensor& self, const Tensor& other) {
  KILN_CHECK(other.defined(), ValueError, op, ": other is an undefined tensor");
  detail::check_same_device(op, {&self, &other});
  KILN_CHECK(broadcast_shapes(other.shape(), self.shape(), op) == self.shape(), ShapeError, op,
             ": other of shape ", other.shape(), " cannot be broadcast to self's shape ", self.shape());
  return as_dtype(other, self.dtype()).expand(self.shape());
}

Tensor& binary_inplace(BinaryOp op, Tensor& self, const Tensor& other, const char* name) {
  check_inplace(name, self);
  KILN_CHECK(op != BinaryOp::div || is_floating(self.dtype()), TypeError, name,
             ": true division cannot write into a ", self.dtype(), " tensor (shape ", self.shape(),
             "); use div(), which returns float32");
  const Tensor operand = inplace_operand(name, self, other);
  const auto loop = make_loop<3>({self, self, operand});
  KILN_ON_DEVICE(self.device(), name, cpu::binary_forward(op, self.dtype(), loop),
                 cuda::binary_forward(op, self.dtype(), loop, self.device().index()));
  return self;
}

Tensor& scalar_inplace(BinaryOp op, Tensor& self, double value, const char* name) {
  check_inplace(name, self);
  KILN_CHECK(is_value_of(value, self.dtype()), ValueError, name, ": ", value, " is not a value of the ",
             self.dtype(), " tensor it would be written into (shape ", self.shape(), ")");
  const auto loop = make_loop<2>({self, self});
  KILN_ON_DEVICE(self.device(), name, cpu::binary_scalar_forward(op, self.dtype(), {value}, loop),
                 cuda::binary_scalar_forward(op, self.dtype(), {value}, loop, self.device().index()));
  return self;
}

}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  const bool half_pair =
      (a == DType::float16 && b == DType::bfloat16) || (a == DType::bfloat16 && b == DType::float16);
  if (half_pair) return DType::float32;
  return promotion_rank(a) >= promotion_rank(b) ? a : b;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::minimum, a, b); }

Tensor add(const Tensor& a, double b) { return binary_scalar(BinaryOp::add, a, {b}); }
Tensor sub(const Tensor& a, double b) { return binary_scalar(BinaryOp::sub, a, {b}); }
Tensor sub(double a, const Tensor& b) { return binary_scalar(BinaryOp::sub, b, {a, true}); }
Tensor mul(const Tensor& a, double b) { return binary_scalar(BinaryOp::mul, a, {b}); }
Tensor div(const Tensor& a, double b) { return binary_scalar(BinaryOp::div, a, {b}); }
Tensor div(double a, const Tensor& b) { return binary_scalar(BinaryOp::div, b, {a, true}); }
Tensor pow(const Tensor& a, double b) { return binary_scalar(BinaryOp::pow, a, {b}); }
Tensor maximum(const Tensor& a, double b) { return binary_scalar(BinaryOp::maximum, a, {b}); }
Tensor minimum(const Tensor& a, double b) { return binary_scalar(BinaryOp::minimum, a, {b}); }

Tensor eq(const Tensor& a, const Tensor& b) { return compare(CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(CompareOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(CompareOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(CompareOp::ge, a, b); }
Tensor eq(const Tensor& a, double b) { return compare_scalar(CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, double b) { return compare_scalar(CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, double b) { return compare_scalar(CompareOp::lt, a, b); }
Tensor le(const Tensor& a, double b) { return compare_scalar(CompareOp::le, a, b); }
Tensor gt(const Tensor& a, double b) { return compare_scalar(CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, double b) { return compare_scalar(CompareOp::ge, a, b); }

Tensor operator-(const Tensor& a) { return neg(a); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  KILN_CHECK(cond.defined() && a.defined() && b.defined(), ValueError,
             "where: an operand is an undefined tensor");
  KILN_CHECK(cond.dtype() == DType::bool_, TypeError, "where: cond must be a bool tensor, got ", cond.dtype(),
             " of shape ", cond.shape());
  detail::check_same_device("where", {&cond, &a, &b});
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const DType dtype = promote_types(a.dtype(), b.dtype());
  Tensor out = empty(shape, {.dtype = dtype, .device = a.device()});
  const Tensor cc = cond.detach().expand(shape);
  const Tensor ca = as_dtype(a, dtype).expand(shape), cb = as_dtype(b, dtype).expand(shape);
  const auto loop = make_loop<4>({out, cc, ca, cb});
  KILN_ON_DEVICE(a.device(), "where", cpu::where(dtype, loop), cuda::where(dtype, loop, a.device().index()));
  if (needs_grad({&a, &b})) {
    record("whereBackward", {a, b}, {out},
           [dtype, cond = cond.detach(), sa = a.shape(), da = a.dtype(), need_a = a.requires_grad(),
            sb = b.shape(), db = b.dtype(), need_b = b.requires_grad()](std::vector<Tensor>& g) {
             std::vector<Tensor> grads(2);
             if (!g[0].defined()) return grads;
             const Tensor gy = as_dtype(g[0], dtype);
             const Tensor zero = zeros({}, {.dtype = dtype, .device = gy.device()});
             if (need_a) grads[0] = reduce_grad(where(cond, gy, zero), sa, da);
             if (need_b) grads[1] = reduce_grad(where(cond, zero, gy), sb, db);
             return grads;
           });
  }
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  KILN_CHECK(x.defined(), ValueError, "clamp: the tensor operand is undefined");
  KILN_CHECK(x.dtype() != DType::bool_, TypeError, "clamp: bool tensors are not supported (shape ", x.shape(),
             ")");
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  const auto loop = make_loop<2>({out, x.detach()});
  KILN_ON_DEVICE(x.device(), "clamp", cpu::clamp(x.dtype(), lo, hi, loop),
                 cuda::clamp(x.dtype(), lo, hi, loop, x.device().index()));
  if (needs_grad({&x})) {
    record("clampBackward", {x}, {out}, [lo, hi, x = x.detach()](std::vector<Tensor>& g) {
      if (!g[0].defined()) return std::vector<Tensor>(1);
      Tensor grad = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
      const Tensor gy = as_dtype(g[0], x.dtype());
      const auto loop = make_loop<3>({grad, x, gy});
      KILN_ON_DEVICE(x.device(), "clamp", cpu::clamp_backward(x.dtype(), lo, hi, loop),
                     cuda::clamp_backward(x.dtype(), lo, hi, loop, x.device().index()));
      return std::vector<Tensor>{grad};
    });
  }
  return out;
}

Tensor& add_(Tensor& self, const Tensor& other, double alpha) {
  if (alpha == 1.0) return binary_inplace(BinaryOp::add, self, other, "add_");
  check_inplace("add_", self);
  KILN_CHECK(is_value_of(alpha, self.dtype()), ValueError, "add_: alpha ", alpha, " is not a value of the ",
             self.dtype(), " tensor it scales into (shape ", self.shape(), ")");
  const Tensor operand = inplace_operand("add_", self, other);
  const auto loop = make_loop<3>({self, self, operand});
  KILN_ON_DEVICE(self.device(), "add_", cpu::axpy(self.dtype(), alpha, loop),
                 cuda::axpy(self.dtype(), alpha, loop, self.device().index()));
  return self;
}
Tensor& sub_(Tensor& self, const Tensor& other) { return binary_inplace(BinaryOp::sub, self, other, "sub_"); }
Tensor& mul_(Tensor& self, const Tensor& other) { return binary_inplace(BinaryOp::mul, self, other, "mul_"); }
Tensor& div_(Tensor& self, const Tensor& other) { return binary_inplace(BinaryOp::div, self, other, "div_"); }
Tensor& add_(Tensor& self, double value) { return scalar_inplace(BinaryOp::add, self, value, "add_"); }
Tensor& mul_(Tensor& self, double value) { return scalar_inplace(BinaryOp::mul, self, value, "mul_"); }

}  // namespace kiln
