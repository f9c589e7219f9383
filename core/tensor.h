// Tensor: a view (shape, strides in elements, storage offset, dtype) of a Storage on one
// device. Tensors are handles: copying a Tensor shares the same tensor, as in PyTorch;
// views (reshape, permute, slice, expand, ...) share the storage; contiguous(), to(),
// clone() copy only when needed. Broadcasting follows NumPy.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/convert.h"
#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/shape.h"
#include "kiln/core/storage.h"
#include "kiln/core/strided.h"

namespace kiln {

class Generator;
class Node;  // an autograd graph node (kernels/autograd/node.h)
struct AutogradMeta;
struct ViewInfo;

// Keyword-style options: kiln::zeros({2, 3}, {.dtype = kiln::float64, .device = Device::cuda()}).
// Unset fields mean float32 (or the C++ type's dtype for data factories) and
// default_device().
struct TensorOptions {
  std::optional<DType> dtype;
  std::optional<Device> device;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  std::int64_t offset = 0;  // in elements
  DType dtype = DType::float32;
  // Autograd state (requires_grad, grad, grad_fn); null until autograd touches the tensor.
  std::shared_ptr<AutogradMeta> autograd;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor; defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }

  // Metadata.
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int ndim() const { return shape().ndim(); }
  std::int64_t numel() const { return shape().numel(); }
  std::int64_t size(std::int64_t axis) const;    // negative axes count from the end
  std::int64_t stride(std::int64_t axis) const;
  std::int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  std::size_t itemsize() const { return kiln::itemsize(dtype()); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * itemsize(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  bool shares_storage(const Tensor& other) const { return storage() == other.storage(); }

  // Pointer to the first element (a device pointer for cuda tensors).
  void* data_ptr() const;
  template <class T> T* data() const;  // checks that T matches dtype()
  StridedView strided_view() const;

  // Views: share storage, never copy.
  Tensor view(const Shape& shape) const;        // one -1 is inferred; strides must allow it
  Tensor reshape(const Shape& shape) const;     // a view when possible, else a copy
  Tensor flatten() const { return reshape({-1}); }
  Tensor permute(std::span<const std::int64_t> axes) const;
  Tensor permute(std::initializer_list<std::int64_t> axes) const {
    return permute(std::span<const std::int64_t>(axes.begin(), axes.size()));
  }
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  Tensor t() const;                             // transpose of a 2-D tensor
  // Elements start, start+step, ... < stop along `axis`; Python rules for negative and
  // out-of-range bounds; step > 0.
  Tensor slice(std::int64_t axis, std::int64_t start, std::int64_t stop = INT64_MAX,
               std::int64_t step = 1) const;
  Tensor select(std::int64_t axis, std::int64_t index) const;  // removes `axis`
  Tensor operator[](std::int64_t index) const { return select(0, index); }
  Tensor expand(const Shape& shape) const;      // NumPy broadcast to `shape`; -1 keeps a dim
  Tensor squeeze() const;                       // removes every extent-1 axis
  Tensor squeeze(std::int64_t axis) const;
  Tensor unsqueeze(std::int64_t axis) const;

  // Copies.
  Tensor contiguous() const;                    // *this when already contiguous
  Tensor clone() const;                         // always a new contiguous tensor
  Tensor to(Device device) const;               // *this when already there
  Tensor to(DType dtype) const;                 // *this when already that dtype
  Tensor to(Device device, DType dtype) const;
  // Copies src into this tensor's elements: src broadcasts to shape(), converts dtype,
  // and may live on another device.
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // Element access (for tests and small host work; on cuda it copies one element).
  template <class T> T item() const;
  template <class T> T at(std::initializer_list<std::int64_t> index) const;
  template <class T> std::vector<T> to_vector() const;  // row-major, converted to T

  std::string str() const;  // see tensor_print.cpp

  // Autograd state. The graph itself is built and run by kernels/autograd (kiln::backward);
  // core only stores it. A tensor that requires grad and has no grad_fn is a leaf.
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);  // leaves only (ValueError otherwise)
  Tensor grad() const;                           // undefined until a backward reaches it
  void set_grad(const Tensor& grad) const;
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const { return grad_fn() == nullptr; }
  // The same data with no autograd history (shares storage).
  Tensor detach() const;
  AutogradMeta& autograd_meta() const;  // created on first use
  TensorImpl& unsafe_impl() const { return *impl_; }

 private:
  const TensorImpl& impl() const;
  Tensor make_view(Shape shape, Strides strides, std::int64_t offset) const;
  // Records `out` (a view or copy of *this) in the autograd graph when *this requires grad.
  Tensor recorded(Tensor out, const ViewInfo& info) const;
  std::int64_t element_offset(std::span<const std::int64_t> index, const char* op) const;
  void read_element(std::int64_t offset, void* out) const;  // one element, raw bytes

  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Factories. Shapes are validated (no negative extents, no overflow).
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
// [start, stop) in steps of `step`, like numpy.arange. The one-argument form is [0, stop).
Tensor arange(double start, double stop, double step = 1.0, TensorOptions options = {});
Tensor arange(double stop, TensorOptions options = {});
Tensor empty_like(const Tensor& t, TensorOptions options = {});
Tensor zeros_like(const Tensor& t, TensorOptions options = {});

// Random fills (floating dtypes) from a Philox generator (default_generator() if null).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double stddev, TensorOptions options = {},
              Generator* gen = nullptr);

// From host data (copied). The dtype defaults to the C++ type's; the values convert
// when another dtype is asked for.
Tensor from_host(const void* data, DType data_dtype, const Shape& shape, TensorOptions options = {});
template <class T>
Tensor from_host(const T* data, const Shape& shape, TensorOptions options = {}) {
  return from_host(static_cast<const void*>(data), dtype_of<T>(), shape, options);
}
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options = {}) {
  validate_shape(shape, sizeof(T), "from_vector");
  KILN_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), ShapeError,
             "from_vector: ", values.size(), " values cannot fill shape ", shape, " (",
             shape.numel(), " elements)");
  if constexpr (std::is_same_v<T, bool>) {
    std::vector<std::uint8_t> bytes(values.begin(), values.end());
    return from_host(bytes.data(), DType::bool_, shape, options);
  } else {
    return from_host(values.data(), shape, options);
  }
}
template <class T>
Tensor from_vector(const std::vector<T>& values, TensorOptions options = {}) {
  return from_vector(values, Shape{static_cast<std::int64_t>(values.size())}, options);
}

// ---- template definitions ----

template <class T>
T* Tensor::data() const {
  KILN_CHECK(dtype() == dtype_of<T>(), TypeError, "data<", name(dtype_of<T>()),
             ">: tensor has dtype ", dtype());
  return static_cast<T*>(data_ptr());
}

template <class T>
T Tensor::item() const {
  KILN_CHECK(numel() == 1, ValueError, "item: only a tensor with one element has an item; got shape ",
             shape());
  alignas(8) unsigned char raw[8];
  read_element(0, raw);
  return visit_dtype(dtype(), [&]<class S>() {
    S v;
    std::memcpy(&v, raw, sizeof(S));
    return convert<T>(v);
  });
}

template <class T>
T Tensor::at(std::initializer_list<std::int64_t> index) const {
  alignas(8) unsigned char raw[8];
  read_element(element_offset(std::span<const std::int64_t>(index.begin(), index.size()), "at"), raw);
  return visit_dtype(dtype(), [&]<class S>() {
    S v;
    std::memcpy(&v, raw, sizeof(S));
    return convert<T>(v);
  });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = to(Device::cpu(), dtype_of<T>()).contiguous();
  std::vector<T> out(static_cast<std::size_t>(numel()));
  if constexpr (std::is_same_v<T, bool>) {
    const auto* p = static_cast<const bool*>(host.data_ptr());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else if (!out.empty()) {
    std::memcpy(out.data(), host.data_ptr(), out.size() * sizeof(T));
  }
  return out;
}

}  // namespace kiln
