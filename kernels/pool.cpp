// 2-D pooling in NHWC: argument checks, Keras' output sizes and padding, dispatch, and the
// recorded backward (max from the saved argmax positions, avg from the geometry alone).
// Global pooling is a reduction over (H, W) (kiln::mean, kiln::max, whose backward also
// routes to the first maximum, NaN first).
#include "kiln/kernels/pool.h"

#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/pool_impl.h"
#include "kiln/kernels/reduce.h"

namespace kiln {
namespace {

std::string pair_string(const std::array<std::int64_t, 2>& p) {
  std::ostringstream os;
  os << '(' << p[0] << ", " << p[1] << ')';
  return os.str();
}

// x must be a defined floating NHWC tensor with a non-empty image (a window of an empty
// image has no elements to pool).
void check_image(const Tensor& x, const char* op) {
  KILN_CHECK(x.defined(), ValueError, op, ": the input tensor is undefined");
  KILN_CHECK(x.ndim() == 4, ShapeError, op, ": expects x of rank 4 (N, H, W, C), got shape ", x.shape());
  KILN_CHECK(is_floating(x.dtype()), TypeError, op, ": expects a floating tensor, got ", x.dtype(), " of shape ",
             x.shape());
  KILN_CHECK(x.shape()[1] > 0 && x.shape()[2] > 0, ShapeError, op,
             ": expects a non-empty image (H, W > 0), got x of shape ", x.shape());
}

// Keras' geometry. valid: OH = (H - ph) / sh + 1, needs ph <= H. same: OH = ceil(H / sh),
// padded by max((OH - 1) * sh + ph - H, 0) split with the extra row at the bottom; that
// total is below ph, so every window keeps at least one input row.
PoolGeometry geometry_of(const Tensor& x, const Pool2dOptions& o, const char* op) {
  check_image(x, op);
  KILN_CHECK(o.pool_size[0] > 0 && o.pool_size[1] > 0, ValueError, op, ": pool_size must be positive, got ",
             pair_string(o.pool_size), " for x of shape ", x.shape());
  const bool default_strides = o.strides[0] == -1 && o.strides[1] == -1;
  KILN_CHECK(default_strides || (o.strides[0] > 0 && o.strides[1] > 0), ValueError, op,
             ": strides must be positive (or {-1, -1} for pool_size), got ", pair_string(o.strides),
             " for x of shape ", x.shape());
  KILN_CHECK(o.padding == "valid" || o.padding == "same", ValueError, op,
             ": padding must be \"valid\" or \"same\", got \"", o.padding, "\"");
  PoolGeometry g;
  g.N = x.shape()[0];
  g.H = x.shape()[1];
  g.W = x.shape()[2];
  g.C = x.shape()[3];
  g.ph = o.pool_size[0];
  g.pw = o.pool_size[1];
  g.sh = default_strides ? g.ph : o.strides[0];
  g.sw = default_strides ? g.pw : o.strides[1];
  if (o.padding == "valid") {
    KILN_CHECK(g.ph <= g.H && g.pw <= g.W, ShapeError, op, ": pool_size ", pair_string(o.pool_size),
               " is larger than the image of x ", x.shape(), " with padding \"valid\"");
    g.OH = (g.H - g.ph) / g.sh + 1;
    g.OW = (g.W - g.pw) / g.sw + 1;
  } else {
    g.OH = (g.H + g.sh - 1) / g.sh;
    g.OW = (g.W + g.sw - 1) / g.sw;
    const std::int64_t pad_h = (g.OH - 1) * g.sh + g.ph - g.H, pad_w = (g.OW - 1) * g.sw + g.pw - g.W;
    g.pad_top = pad_h > 0 ? pad_h / 2 : 0;
    g.pad_left = pad_w > 0 ? pad_w / 2 : 0;
  }
  KILN_CHECK(g.H * g.W <= std::numeric_limits<std::int32_t>::max(), ShapeError, op,
             ": images of more than 2^31 - 1 pixels are not supported, got x of shape ", x.shape());
  return g;
}

Tensor pool_backward(PoolKind kind, const PoolGeometry& g, const Tensor& g_out, const Tensor& argmax, DType dtype) {
  const Tensor gy = g_out.to(dtype).contiguous();
  Tensor gx = empty({g.N, g.H, g.W, g.C}, {.dtype = dtype, .device = gy.device()});
  const PoolGradLayout layout{kind, g, dtype, gx.data_ptr(), gy.data_ptr(),
                              argmax.defined() ? static_cast<const std::int32_t*>(argmax.data_ptr()) : nullptr};
  if (gx.numel() > 0) {
    KILN_ON_DEVICE(gy.device(), "pool2d backward", cpu::pool2d_backward(layout),
                   cuda::pool2d_backward(layout, gy.device().index()));
  }
  return gx;
}

Tensor pool2d(PoolKind kind, const Tensor& x_in, const Pool2dOptions& options) {
  const char* op = kind == PoolKind::max ? "max_pool2d" : "avg_pool2d";
  const PoolGeometry g = geometry_of(x_in, options, op);
  const Tensor x = x_in.detach().contiguous();
  const TensorOptions out_opts{.dtype = x.dtype(), .device = x.device()};
  Tensor y = empty({g.N, g.OH, g.OW, g.C}, out_opts);
  const bool grad = needs_grad({&x_in});
  // The argmax positions are only worth writing when a backward will read them.
  Tensor argmax;
  if (kind == PoolKind::max && grad) argmax = empty(y.shape(), {.dtype = DType::int32, .device = x.device()});
  const PoolLayout layout{kind, g, x.dtype(), y.data_ptr(), x.data_ptr(),
                          argmax.defined() ? static_cast<std::int32_t*>(argmax.data_ptr()) : nullptr};
  if (y.numel() > 0) {
    KILN_ON_DEVICE(x.device(), op, cpu::pool2d_forward(layout), cuda::pool2d_forward(layout, x.device().index()));
  }
  if (grad) {
    record(kind == PoolKind::max ? "MaxPool2dBackward" : "AvgPool2dBackward", {x_in}, {y},
           [kind, g, argmax, dtype = x.dtype()](std::vector<Tensor>& grads) {
             return std::vector<Tensor>{pool_backward(kind, g, grads[0], argmax, dtype)};
           });
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) { return pool2d(PoolKind::max, x, options); }
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) { return pool2d(PoolKind::avg, x, options); }

Tensor global_avg_pool2d(const Tensor& x, bool keepdims) {
  check_image(x, "global_avg_pool2d");
  return mean(x, {1, 2}, keepdims);
}

Tensor global_max_pool2d(const Tensor& x, bool keepdims) {
  check_image(x, "global_max_pool2d");
  return max(x, {1, 2}, keepdims);
}

}  // namespace kiln
