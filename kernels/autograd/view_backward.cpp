// The backward of core's views and copies (reshape, permute, slice, select, expand,
// contiguous/clone/to), recorded through core's detail::view_hook (see
// core/autograd_meta.h); node.cpp installs the hook.
#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/reduce.h"

namespace kiln::autograd_detail {

namespace {

// Zeros shaped like the base, with `g` written into the region the view covered.
template <class Region>
Tensor scatter_into_zeros(const Shape& base_shape, const Tensor& g, Region region) {
  Tensor z = zeros(base_shape, {.dtype = g.dtype(), .device = g.device()});
  region(z).copy_(g);
  return z;
}

BackwardFn view_backward(const Tensor& base, const Tensor& view, const ViewInfo& info) {
  const Shape base_shape = base.shape();
  switch (info.kind) {
    case ViewKind::reshape:
      return [base_shape](std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].reshape(base_shape)}; };
    case ViewKind::permute: {
      Shape inverse = info.axes;
      for (int d = 0; d < info.axes.ndim(); ++d) inverse[static_cast<int>(info.axes[d])] = d;
      return [inverse](std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0].permute(inverse.span())};
      };
    }
    case ViewKind::slice: {
      const std::int64_t n = view.shape()[static_cast<int>(info.axis)];
      return [base_shape, info, n](std::vector<Tensor>& g) {
        return std::vector<Tensor>{scatter_into_zeros(base_shape, g[0], [&](const Tensor& z) {
          return z.slice(info.axis, info.start, info.start + n * info.step, info.step);
        })};
      };
    }
    case ViewKind::select:
      return [base_shape, info](std::vector<Tensor>& g) {
        return std::vector<Tensor>{scatter_into_zeros(
            base_shape, g[0], [&](const Tensor& z) { return z.select(info.axis, info.index); })};
      };
    case ViewKind::expand:
      return [base_shape](std::vector<Tensor>& g) { return std::vector<Tensor>{sum_to(g[0], base_shape)}; };
    case ViewKind::copy: {
      const DType dtype = base.dtype();
      const Device device = base.device();
      return [dtype, device](std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].to(device, dtype)}; };
    }
  }
  KILN_THROW(InternalError, "view_backward: unknown view kind ", static_cast<int>(info.kind));
}

const char* view_name(ViewKind kind) {
  switch (kind) {
    case ViewKind::reshape: return "ReshapeBackward";
    case ViewKind::permute: return "PermuteBackward";
    case ViewKind::slice: return "SliceBackward";
    case ViewKind::select: return "SelectBackward";
    case ViewKind::expand: return "ExpandBackward";
    case ViewKind::copy: return "CopyBackward";
  }
  return "ViewBackward";
}

}  // namespace

void record_view(const Tensor& base, Tensor& view, const ViewInfo& info) {
  record(view_name(info.kind), {base}, {view}, view_backward(base, view, info));
}

}  // namespace kiln::autograd_detail
