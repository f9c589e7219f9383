// Tensor basics: metadata, data pointers, element access.
#include "kiln/core/tensor.h"

#include <ostream>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/cuda/tensor_cuda.h"

namespace kiln {

const TensorImpl& Tensor::impl() const {
  KILN_CHECK(impl_ != nullptr, ValueError, "operation on an undefined tensor");
  return *impl_;
}

std::int64_t Tensor::size(std::int64_t axis) const {
  return shape()[shape().normalize_axis(axis, "size")];
}

std::int64_t Tensor::stride(std::int64_t axis) const {
  return strides()[shape().normalize_axis(axis, "stride")];
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    const std::int64_t extent = shape()[d];
    if (extent == 0) return true;
    if (extent != 1 && strides()[d] != expected) return false;
    expected *= extent;
  }
  return true;
}

void* Tensor::data_ptr() const {
  char* base = static_cast<char*>(storage()->data());
  return base ? base + offset() * static_cast<std::int64_t>(itemsize()) : nullptr;
}

StridedView Tensor::strided_view() const {
  StridedView v;
  v.data = data_ptr();
  v.dtype = dtype();
  v.ndim = ndim();
  for (int d = 0; d < ndim(); ++d) {
    v.shape[d] = shape()[d];
    v.strides[d] = strides()[d];
  }
  return v;
}

Tensor Tensor::make_view(Shape shape, Strides strides, std::int64_t offset) const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

std::int64_t Tensor::element_offset(std::span<const std::int64_t> index, const char* op) const {
  KILN_CHECK(static_cast<int>(index.size()) == ndim(), IndexError, op, ": ", index.size(),
             " indices given for a tensor of shape ", shape(), " (", ndim(), " dims)");
  std::int64_t off = 0;
  for (int d = 0; d < ndim(); ++d) {
    std::int64_t i = index[d];
    const std::int64_t extent = shape()[d];
    KILN_CHECK(i >= -extent && i < extent, IndexError, op, ": index ", i, " is out of range for axis ",
               d, " with size ", extent, " (shape ", shape(), ")");
    if (i < 0) i += extent;
    off += i * strides()[d];
  }
  return off;
}

void Tensor::read_element(std::int64_t element, void* out) const {
  const char* src = static_cast<const char*>(data_ptr()) + element * static_cast<std::int64_t>(itemsize());
  if (device().is_cpu()) {
    std::memcpy(out, src, itemsize());
  } else {
    cuda::copy_bytes(out, Device::cpu(), src, device(), itemsize());
  }
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

AutogradMeta& Tensor::autograd_meta() const {
  impl();  // raises for an undefined tensor
  if (!impl_->autograd) impl_->autograd = std::make_shared<AutogradMeta>();
  return *impl_->autograd;
}

bool Tensor::requires_grad() const {
  const auto& meta = impl().autograd;
  return meta && meta->requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  KILN_CHECK(is_leaf(), ValueError,
             "requires_grad_: only leaf tensors can change requires_grad; this one was produced by ",
             "an operation (call detach() first)");
  KILN_CHECK(!on || is_floating(dtype()), TypeError,
             "requires_grad_: only floating tensors can require gradients, got ", dtype());
  autograd_meta().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& meta = impl().autograd;
  return meta ? meta->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  KILN_CHECK(!grad.defined() || grad.shape() == shape(), ShapeError, "set_grad: gradient of shape ",
             grad.defined() ? grad.shape() : Shape{}, " for a tensor of shape ", shape());
  autograd_meta().grad = grad;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> kNone;
  const auto& meta = impl().autograd;
  return meta ? meta->grad_fn : kNone;
}

namespace {
thread_local bool t_grad_enabled = true;
}  // namespace

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool on) { t_grad_enabled = on; }

Tensor Tensor::recorded(Tensor out, const ViewInfo& info) const {
  if (detail::view_hook && requires_grad() && GradMode::enabled()) detail::view_hook(*this, out, info);
  return out;
}

Tensor Tensor::detach() const { return make_view(shape(), strides(), offset()); }

}  // namespace kiln
