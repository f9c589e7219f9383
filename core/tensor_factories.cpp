// Tensor factories: empty/zeros/ones/full/arange, random fills, and tensors from host data.
#include <cmath>
#include <cstring>

#include "kiln/core/cpu_loops.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/core/random.h"
#include "kiln/core/random_math.h"
#include "kiln/core/tensor.h"

namespace kiln {
namespace {

DType dtype_or(const TensorOptions& o, DType fallback) { return o.dtype.value_or(fallback); }
Device device_of(const TensorOptions& o) { return o.device ? *o.device : default_device(); }

// A new contiguous tensor; errors name `op`, the factory the user called.
Tensor new_tensor(const Shape& shape, const TensorOptions& options, const char* op) {
  const DType dtype = dtype_or(options, DType::float32);
  validate_shape(shape, itemsize(dtype), op);
  const Device device = device_of(options);
  check_device(device, op);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(device, static_cast<std::size_t>(shape.numel()) * itemsize(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor filled(const Shape& shape, double value, const TensorOptions& options, const char* op) {
  Tensor t = new_tensor(shape, options, op);
  t.fill_(value);
  return t;
}

}  // namespace

Tensor empty(const Shape& shape, TensorOptions options) { return new_tensor(shape, options, "empty"); }
Tensor full(const Shape& shape, double value, TensorOptions options) {
  return filled(shape, value, options, "full");
}
Tensor zeros(const Shape& shape, TensorOptions options) { return filled(shape, 0.0, options, "zeros"); }
Tensor ones(const Shape& shape, TensorOptions options) { return filled(shape, 1.0, options, "ones"); }

Tensor empty_like(const Tensor& t, TensorOptions options) {
  return empty(t.shape(), {.dtype = options.dtype.value_or(t.dtype()),
                           .device = options.device.value_or(t.device())});
}

Tensor zeros_like(const Tensor& t, TensorOptions options) {
  Tensor out = empty_like(t, options);
  out.zero_();
  return out;
}

Tensor arange(double start, double stop, double step, TensorOptions options) {
  KILN_CHECK(step != 0 && std::isfinite(step) && std::isfinite(start) && std::isfinite(stop),
             ValueError, "arange: start, stop and step must be finite and step nonzero; got (",
             start, ", ", stop, ", ", step, ")");
  const double count = std::ceil((stop - start) / step);
  KILN_CHECK(count < 9.2e18, ValueError, "arange: [", start, ", ", stop, ") in steps of ", step,
             " has ", count, " elements, more than a tensor can hold");
  const auto n = static_cast<std::int64_t>(count > 0 ? count : 0);
  Tensor t = new_tensor({n}, options, "arange");
  const StridedView v = t.strided_view();
  if (t.device().is_cuda()) {
    cuda::arange(v, start, step, t.device().index());
    return t;
  }
  visit_dtype(t.dtype(), [&]<class T>() {
    auto* d = static_cast<T*>(v.data);
    for (std::int64_t i = 0; i < n; ++i) d[i] = convert<T>(std::fma(static_cast<double>(i), step, start));
  });
  return t;
}

Tensor arange(double stop, TensorOptions options) { return arange(0.0, stop, 1.0, options); }

namespace {

Tensor random_fill(const Shape& shape, cuda::RandomKind kind, double a, double b,
                   TensorOptions options, Generator* gen, const char* op) {
  const DType dtype = dtype_or(options, DType::float32);
  KILN_CHECK(is_floating(dtype), TypeError, op, ": random fills need a floating dtype, got ", dtype);
  Tensor t = new_tensor(shape, options, op);
  const Generator::Draw draw = (gen ? *gen : default_generator()).reserve(t.numel());
  const StridedView v = t.strided_view();
  if (t.device().is_cuda()) {
    cuda::random(v, kind, a, b, draw.seed, draw.offset, t.device().index());
    return t;
  }
  const auto dist = static_cast<detail::RandomDistribution>(kind);
  visit_dtype(t.dtype(), [&]<class T>() {
    if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, Half> ||
                  std::is_same_v<T, BFloat16>) {
      auto* d = static_cast<T*>(v.data);
      const std::int64_t n = t.numel();
      for (std::int64_t first = 0; first < n; first += 4) {
        const PhiloxBlock block = philox_block(draw.seed, draw.offset, static_cast<std::uint64_t>(first));
        for (int lane = 0; lane < 4 && first + lane < n; ++lane) {
          d[first + lane] = detail::random_value<T>(dist, a, b, block, lane);
        }
      }
    }
  });
  return t;
}

}  // namespace

Tensor rand(const Shape& shape, TensorOptions options, Generator* gen) {
  return random_fill(shape, cuda::RandomKind::uniform, 0.0, 1.0, options, gen, "rand");
}
Tensor randn(const Shape& shape, TensorOptions options, Generator* gen) {
  return random_fill(shape, cuda::RandomKind::normal, 0.0, 1.0, options, gen, "randn");
}
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator* gen) {
  KILN_CHECK(low <= high, ValueError, "uniform: low (", low, ") must not exceed high (", high, ")");
  return random_fill(shape, cuda::RandomKind::uniform, low, high, options, gen, "uniform");
}
Tensor normal(const Shape& shape, double mean, double stddev, TensorOptions options, Generator* gen) {
  KILN_CHECK(stddev >= 0, ValueError, "normal: stddev must be >= 0, got ", stddev);
  return random_fill(shape, cuda::RandomKind::normal, mean, stddev, options, gen, "normal");
}

Tensor from_host(const void* data, DType data_dtype, const Shape& shape, TensorOptions options) {
  validate_shape(shape, itemsize(data_dtype), "from_host");
  KILN_CHECK(data != nullptr || shape.numel() == 0, ValueError,
             "from_host: null data pointer for shape ", shape);
  // Wrap the caller's memory as a cpu tensor without owning it, then copy.
  auto impl = std::make_shared<TensorImpl>();
  const std::size_t nbytes = static_cast<std::size_t>(shape.numel()) * itemsize(data_dtype);
  impl->storage = std::make_shared<Storage>(
      DataPtr(const_cast<void*>(data), nullptr, nullptr, Device::cpu()), nbytes);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = data_dtype;
  const Tensor borrowed(std::move(impl));
  Tensor out = empty(shape, {.dtype = options.dtype.value_or(data_dtype), .device = options.device});
  out.copy_(borrowed);
  return out;
}

}  // namespace kiln
