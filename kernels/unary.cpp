// The unary ops: dtype and device checks, dispatch, and the recorded backward.
#include "kiln/kernels/unary.h"

#include <array>
#include <string>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/softmax.h"
#include "kiln/kernels/unary_impl.h"

namespace kiln {
namespace {

// grad_x = f'(x, y) * grad_y, elementwise.
Tensor unary_backward(UnaryOp op, double alpha, const Tensor& x, const Tensor& y, const Tensor& gy) {
  Tensor gx = empty_like(x);
  const Tensor g = gy.to(x.dtype());  // kept alive: the loop holds raw pointers
  const auto loop = make_loop<4>({gx, x, y, g});
  KILN_ON_DEVICE(x.device(), "unary backward", cpu::unary_backward(op, alpha, x.dtype(), loop),
                 cuda::unary_backward(op, alpha, x.dtype(), loop, x.device().index()));
  return gx;
}

Tensor unary(UnaryOp op, const Tensor& x, double alpha, const char* name) {
  const bool ok = is_floating(x.dtype()) || (unary_accepts_integers(op) &&
                                              (x.dtype() == DType::int32 || x.dtype() == DType::int64));
  KILN_CHECK(ok, TypeError, name, ": expects a floating tensor",
             unary_accepts_integers(op) ? " or an int32/int64 one" : "", ", got ", x.dtype(),
             " of shape ", x.shape());
  Tensor y = empty_like(x);
  const auto loop = make_loop<2>({y, x});
  KILN_ON_DEVICE(x.device(), name, cpu::unary_forward(op, alpha, x.dtype(), loop),
                 cuda::unary_forward(op, alpha, x.dtype(), loop, x.device().index()));
  if (needs_grad({&x})) {
    record(backward_name(name), {x}, {y},
           [op, alpha, x = x.detach(), y = y.detach()](std::vector<Tensor>& g) {
             return std::vector<Tensor>{unary_backward(op, alpha, x, y, g[0])};
           });
  }
  return y;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x, 0, "neg"); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x, 0, "abs"); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x, 0, "exp"); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x, 0, "log"); }
Tensor log1p(const Tensor& x) { return unary(UnaryOp::log1p, x, 0, "log1p"); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x, 0, "sqrt"); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::rsqrt, x, 0, "rsqrt"); }
Tensor square(const Tensor& x) { return unary(UnaryOp::square, x, 0, "square"); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::sign, x, 0, "sign"); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x, 0, "relu"); }
Tensor relu6(const Tensor& x) { return unary(UnaryOp::relu6, x, 0, "relu6"); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary(UnaryOp::leaky_relu, x, negative_slope, "leaky_relu");
}
Tensor elu(const Tensor& x, double alpha) { return unary(UnaryOp::elu, x, alpha, "elu"); }
Tensor selu(const Tensor& x) { return unary(UnaryOp::selu, x, 0, "selu"); }
Tensor gelu(const Tensor& x, bool approximate) {
  return approximate ? unary(UnaryOp::gelu_tanh, x, 0, "gelu") : unary(UnaryOp::gelu, x, 0, "gelu");
}
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x, 0, "sigmoid"); }
Tensor hard_sigmoid(const Tensor& x) { return unary(UnaryOp::hard_sigmoid, x, 0, "hard_sigmoid"); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x, 0, "tanh"); }
Tensor softplus(const Tensor& x) { return unary(UnaryOp::softplus, x, 0, "softplus"); }
Tensor softsign(const Tensor& x) { return unary(UnaryOp::softsign, x, 0, "softsign"); }
Tensor silu(const Tensor& x) { return unary(UnaryOp::silu, x, 0, "silu"); }

namespace {
struct NamedActivation {
  std::string_view name;
  Tensor (*fn)(const Tensor&);
};
// Keras' string identifiers (keras.activations.get).
const std::array<NamedActivation, 18> kActivations{{
    {"linear", [](const Tensor& x) { return x; }},
    {"relu", relu},
    {"relu6", relu6},
    {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); }},
    {"elu", [](const Tensor& x) { return elu(x); }},
    {"selu", selu},
    {"gelu", [](const Tensor& x) { return gelu(x); }},
    {"sigmoid", sigmoid},
    {"hard_sigmoid", hard_sigmoid},
    {"tanh", tanh},
    {"softplus", softplus},
    {"softsign", softsign},
    {"silu", silu},
    {"swish", silu},
    {"exponential", exp},
    {"softmax", [](const Tensor& x) { return softmax(x); }},
    {"log_softmax", [](const Tensor& x) { return log_softmax(x); }},
    {"none", [](const Tensor& x) { return x; }},
}};
}  // namespace

Tensor activation(const Tensor& x, std::string_view name) {
  for (const auto& a : kActivations) {
    if (a.name == name) return a.fn(x);
  }
  std::string valid;
  for (const auto& a : kActivations) valid += (valid.empty() ? "" : ", ") + std::string(a.name);
  KILN_THROW(ValueError, "activation: unknown activation '", name, "'; valid names: ", valid);
}

}  // namespace kiln
