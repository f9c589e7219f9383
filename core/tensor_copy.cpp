// Copies between tensors: dtype conversion, strides, broadcasting and devices.
#include <cstring>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/cpu_loops.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/core/tensor.h"

namespace kiln {
namespace {

void cpu_copy_strided(const StridedView& dst, const StridedView& src) {
  visit_dtype(dst.dtype, [&]<class D>() {
    visit_dtype(src.dtype, [&]<class S>() {
      auto* d = static_cast<D*>(dst.data);
      const auto* s = static_cast<const S*>(src.data);
      detail::for_each_pair(dst, src, [&](std::int64_t od, std::int64_t os, std::int64_t) {
        d[od] = convert<D>(s[os]);
      });
    });
  });
}

// Same-device elementwise copy of src (already expanded to dst's shape) into dst.
void copy_same_device(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    if (dst.device().is_cpu()) {
      std::memmove(dst.data_ptr(), src.data_ptr(), dst.nbytes());
    } else {
      cuda::copy_bytes(dst.data_ptr(), dst.device(), src.data_ptr(), src.device(), dst.nbytes());
    }
    return;
  }
  if (dst.device().is_cpu()) {
    cpu_copy_strided(dst.strided_view(), src.strided_view());
  } else {
    cuda::copy_strided(dst.strided_view(), src.strided_view(), dst.device().index());
  }
}

}  // namespace

Tensor& Tensor::copy_(const Tensor& src) {
  KILN_CHECK(!(requires_grad() && GradMode::enabled()), ValueError,
             "copy_: in-place write into a tensor that requires grad while recording; wrap it in ",
             "a NoGradGuard (as optimizers do) or write into a detach()ed tensor");
  KILN_CHECK(broadcast_shapes(src.shape(), shape(), "copy_") == shape(), ShapeError,
             "copy_: source of shape ", src.shape(), " cannot be broadcast to the destination shape ",
             shape());
  const Tensor expanded = src.expand(shape());
  if (expanded.device() == device()) {
    copy_same_device(*this, expanded);
    return *this;
  }
  // Across devices: convert and compact on the source side, move the bytes, then scatter
  // on this side if this tensor is not contiguous.
  const Tensor packed = expanded.to(dtype()).contiguous();
  Tensor landing = is_contiguous() ? *this : empty(shape(), {.dtype = dtype(), .device = device()});
  if (nbytes() > 0) {
    cuda::copy_bytes(landing.data_ptr(), device(), packed.data_ptr(), packed.device(), nbytes());
  }
  if (!landing.is_same(*this)) copy_same_device(*this, landing);
  return *this;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), {.dtype = dtype(), .device = device()});
  copy_same_device(out, *this);
  return recorded(out, {.kind = ViewKind::copy});
}

Tensor Tensor::to(Device target) const { return to(target, dtype()); }
Tensor Tensor::to(DType target) const { return to(device(), target); }

Tensor Tensor::to(Device target, DType target_dtype) const {
  if (target == device() && target_dtype == dtype()) return *this;
  check_device(target, "to");
  Tensor out = empty(shape(), {.dtype = target_dtype, .device = target});
  out.copy_(detach());
  return recorded(out, {.kind = ViewKind::copy});
}

Tensor& Tensor::fill_(double value) {
  KILN_CHECK(!(requires_grad() && GradMode::enabled()), ValueError,
             "fill_: in-place write into a tensor that requires grad while recording; wrap it in a ",
             "NoGradGuard or write into a detach()ed tensor");
  if (numel() == 0) return *this;
  const StridedView v = strided_view();
  if (device().is_cuda()) {
    cuda::fill(v, value, device().index());
    return *this;
  }
  visit_dtype(dtype(), [&]<class T>() {
    const T x = convert<T>(value);
    auto* d = static_cast<T*>(v.data);
    detail::for_each_offset(v, [&](std::int64_t off, std::int64_t) { d[off] = x; });
  });
  return *this;
}

}  // namespace kiln
