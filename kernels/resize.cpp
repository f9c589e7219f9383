// upsample2d and zero_pad2d: argument checks, dispatch and the recorded backward.
// zero_pad2d is kiln::pad over the two image axes (a strided copy into zeros; its
// recorded backward slices the gradient), so it works on every dtype and device.
#include "kiln/kernels/resize.h"

#include <vector>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/resize_impl.h"
#include "kiln/kernels/shape_ops.h"

namespace kiln {
namespace {

Tensor upsample_backward(Interpolation mode, const ResizeGeometry& g, const Tensor& g_out, DType dtype) {
  const Tensor gy = g_out.to(dtype).contiguous();
  Tensor gx = empty({g.N, g.H, g.W, g.C}, {.dtype = dtype, .device = gy.device()});
  const ResizeGradLayout layout{mode, g, dtype, gx.data_ptr(), gy.data_ptr()};
  if (gx.numel() > 0) {
    KILN_ON_DEVICE(gy.device(), "upsample2d backward", cpu::upsample2d_backward(layout),
                   cuda::upsample2d_backward(layout, gy.device().index()));
  }
  return gx;
}

}  // namespace

Tensor upsample2d(const Tensor& x_in, std::array<std::int64_t, 2> size, const std::string& interpolation) {
  KILN_CHECK(x_in.defined(), ValueError, "upsample2d: the input tensor is undefined");
  KILN_CHECK(x_in.ndim() == 4, ShapeError, "upsample2d: expects x of rank 4 (N, H, W, C), got shape ",
             x_in.shape());
  KILN_CHECK(is_floating(x_in.dtype()), TypeError, "upsample2d: expects a floating tensor, got ", x_in.dtype(),
             " of shape ", x_in.shape());
  KILN_CHECK(size[0] > 0 && size[1] > 0, ValueError, "upsample2d: size must be positive, got (", size[0], ", ",
             size[1], ") for x of shape ", x_in.shape());
  KILN_CHECK(interpolation == "nearest" || interpolation == "bilinear", ValueError,
             "upsample2d: interpolation must be \"nearest\" or \"bilinear\", got \"", interpolation, "\"");
  const Interpolation mode = interpolation == "nearest" ? Interpolation::nearest : Interpolation::bilinear;
  const ResizeGeometry g{x_in.shape()[0], x_in.shape()[1], x_in.shape()[2], x_in.shape()[3], size[0], size[1]};
  const Tensor x = x_in.detach().contiguous();
  Tensor y = empty({g.N, g.OH(), g.OW(), g.C}, {.dtype = x.dtype(), .device = x.device()});
  const ResizeLayout layout{mode, g, x.dtype(), y.data_ptr(), x.data_ptr()};
  if (y.numel() > 0) {
    KILN_ON_DEVICE(x.device(), "upsample2d", cpu::upsample2d_forward(layout),
                   cuda::upsample2d_forward(layout, x.device().index()));
  }
  if (needs_grad({&x_in})) {
    record(mode == Interpolation::nearest ? "UpsampleNearest2dBackward" : "UpsampleBilinear2dBackward", {x_in},
           {y}, [mode, g, dtype = x.dtype()](std::vector<Tensor>& grads) {
             return std::vector<Tensor>{upsample_backward(mode, g, grads[0], dtype)};
           });
  }
  return y;
}

Tensor zero_pad2d(const Tensor& x, std::array<std::int64_t, 4> pads) {
  KILN_CHECK(x.defined(), ValueError, "zero_pad2d: the input tensor is undefined");
  KILN_CHECK(x.ndim() == 4, ShapeError, "zero_pad2d: expects x of rank 4 (N, H, W, C), got shape ", x.shape());
  KILN_CHECK(pads[0] >= 0 && pads[1] >= 0 && pads[2] >= 0 && pads[3] >= 0, ValueError,
             "zero_pad2d: pads (top, bottom, left, right) must be >= 0, got (", pads[0], ", ", pads[1], ", ",
             pads[2], ", ", pads[3], ") for x of shape ", x.shape());
  return pad(x, {{0, 0}, {pads[0], pads[1]}, {pads[2], pads[3]}}, 0.0);
}

}  // namespace kiln
