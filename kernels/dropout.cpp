// dropout: checks, the Philox draw, dispatch, and the recorded backward (the same mask,
// recomputed from the draw; see Note [Dropout mask] in kernels/dropout_impl.h).
#include "kiln/kernels/dropout.h"

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/dropout_impl.h"

namespace kiln {
namespace {

// dropout of `x` (any layout) with a fixed plan; the result is contiguous.
Tensor apply_dropout(DropoutPlan plan, const Tensor& x) {
  const Tensor in = x.contiguous();
  Tensor out = empty(in.shape(), {.dtype = in.dtype(), .device = in.device()});
  plan.numel = in.numel();
  plan.dtype = in.dtype();
  if (plan.numel == 0) return out;
  KILN_ON_DEVICE(in.device(), "dropout", cpu::dropout(plan, in.data_ptr(), out.data_ptr()),
                 cuda::dropout(plan, in.data_ptr(), out.data_ptr(), in.device().index()));
  return out;
}

}  // namespace

Tensor dropout(const Tensor& x, double rate, bool training, Generator* gen) {
  KILN_CHECK(x.defined(), ValueError, "dropout: x is undefined");
  KILN_CHECK(rate >= 0.0 && rate < 1.0, ValueError, "dropout: rate must lie in [0, 1), got ", rate);
  KILN_CHECK(is_floating(x.dtype()), TypeError, "dropout: expects a floating tensor, got ", x.dtype(),
             " of shape ", x.shape());
  if (!training || rate == 0.0) return x;
  Generator& g = gen ? *gen : default_generator();
  const Generator::Draw draw = g.reserve(x.numel());
  DropoutPlan plan;
  plan.seed = draw.seed;
  plan.offset = draw.offset;
  plan.threshold = dropout_threshold(rate);
  plan.scale = 1.0 / (1.0 - rate);
  Tensor y = apply_dropout(plan, x.detach());
  if (needs_grad({&x})) {
    record("DropoutBackward", {x}, {y}, [plan, dtype = x.dtype()](std::vector<Tensor>& grads) {
      return std::vector<Tensor>{apply_dropout(plan, grads[0].to(dtype))};
    });
  }
  return y;
}

}  // namespace kiln
