// Helpers shared by every op family's tests: float64 references, tolerance by dtype with
// the worst element reported (`|x - ref| <= atol + rtol * |ref|`), inputs of a given shape
// in every layout an op must handle (contiguous, transposed storage, strided slice,
// misaligned offset, expanded), and poisoned allocations so unwritten outputs show.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#ifdef __GLIBC__
#include <malloc.h>  // mallopt(M_PERTURB)
#endif

#include "kiln/core/random.h"
#include "kiln/core/tensor.h"

namespace kiln::test {

inline constexpr Device kCpu = Device::cpu();  // named: default_device() may be a GPU
inline constexpr DType kFloatDTypes[] = {float32, float16, bfloat16, float64};

// ---- tolerances ----

struct Tolerance {
  double atol = 0;
  double rtol = 0;
};

// For a well-conditioned elementwise formula computed in the dtype (16-bit floats in
// float32) against a float64 reference rounded to the dtype: a few units in the last
// place, plus an absolute floor for results near zero. Integers are exact.
inline Tolerance tolerance_for(DType dt) {
  switch (dt) {
    case DType::float64: return {1e-12, 1e-12};
    case DType::float32: return {1e-6, 1e-5};
    case DType::float16: return {1e-3, 2e-3};     // 2^-11 rounding, twice
    case DType::bfloat16: return {1e-2, 1.6e-2};  // 2^-8 rounding, twice
    default: return {0, 0};
  }
}

// ---- float64 references ----

// The elements of t (any device, dtype, layout) in row-major order, as double.
inline std::vector<double> host_values(const Tensor& t) { return t.to_vector<double>(); }

// f applied to every value (the float64 reference of an elementwise op).
template <class F>
std::vector<double> map_values(const std::vector<double>& x, F f) {
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = f(x[i]);
  return out;
}

// The float64 values rounded to `dt` and back: what a correctly rounded kernel stores
// (a float64 result past the dtype's range becomes the infinity the kernel must give).
inline std::vector<double> round_to(const std::vector<double>& v, DType dt) {
  if (dt == DType::float64 || v.empty()) return v;
  return from_vector<double>(v, {.dtype = DType::float64, .device = kCpu}).to(dt).to_vector<double>();
}

// "(i, j, ...)": the row-major multi-index of element `flat` of `shape`.
inline std::string index_string(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(static_cast<std::size_t>(shape.ndim()));
  for (int d = shape.ndim() - 1; d >= 0; --d) {
    index[static_cast<std::size_t>(d)] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  std::ostringstream os;
  os << '(';
  for (std::size_t d = 0; d < index.size(); ++d) os << (d ? ", " : "") << index[d];
  os << ')';
  return os.str();
}

// Whether a matches e: equal (NaN matches NaN; an infinity only itself), or within tol.
inline bool close_enough(double a, double e, Tolerance tol) {
  if (std::isnan(e) || std::isnan(a)) return std::isnan(e) && std::isnan(a);
  if (std::isinf(e) || std::isinf(a)) return a == e;
  return std::fabs(a - e) <= tol.atol + tol.rtol * std::fabs(e);
}

// Checks `actual` against float64 `expected` (row-major, rounded to actual's dtype first).
// On failure: how many elements differ, and the worst one with its index and both values.
//   EXPECT_TRUE(all_close(y, reference, tolerance_for(y.dtype()))) << "relu, (33, 65)";
inline ::testing::AssertionResult all_close(const Tensor& actual, const std::vector<double>& expected,
                                            Tolerance tol) {
  if (static_cast<std::int64_t>(expected.size()) != actual.numel()) {
    return ::testing::AssertionFailure() << "tensor of shape " << actual.shape() << " has " << actual.numel()
                                         << " elements, reference has " << expected.size();
  }
  const std::vector<double> a = host_values(actual);
  const std::vector<double> e = round_to(expected, actual.dtype());
  std::int64_t failures = 0, worst = -1;
  double worst_excess = -1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (close_enough(a[i], e[i], tol)) continue;
    ++failures;
    const double err = std::fabs(a[i] - e[i]);
    const double excess = std::isfinite(err) ? err - (tol.atol + tol.rtol * std::fabs(e[i]))
                                             : std::numeric_limits<double>::infinity();
    if (worst < 0 || excess > worst_excess) {
      worst_excess = excess;
      worst = static_cast<std::int64_t>(i);
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  const auto w = static_cast<std::size_t>(worst);
  return ::testing::AssertionFailure()
         << failures << " of " << a.size() << " elements of a " << actual.dtype() << " tensor of shape "
         << actual.shape() << " differ; worst at index " << index_string(worst, actual.shape()) << ": got "
         << a[w] << ", expected " << e[w] << " (atol " << tol.atol << ", rtol " << tol.rtol << ")";
}

// The same against another tensor (any device or dtype) as the reference.
inline ::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, Tolerance tol) {
  if (!(actual.shape() == expected.shape())) {
    return ::testing::AssertionFailure()
           << "shape " << actual.shape() << " vs reference shape " << expected.shape();
  }
  return all_close(actual, host_values(expected), tol);
}

// ---- inputs ----

// n values drawn uniformly from [lo, hi) (Philox, `seed`), as float64 on the host.
inline std::vector<double> uniform_values(std::int64_t n, double lo, double hi, std::uint64_t seed) {
  Generator gen(seed);
  return uniform({n}, lo, hi, {.dtype = DType::float64, .device = kCpu}, &gen).to_vector<double>();
}

// The memory layouts an op must handle for an input of a given shape.
enum class Layout {
  contiguous,
  transposed,  // storage holds the last two axes swapped; the input is its transpose
  strided,     // every other element of the last axis, NaN in the gaps, starting at 1
  offset,      // contiguous but one element into its storage (misaligned for vector loads)
  expanded,    // axis 0 broadcast from extent 1 (stride 0)
};
inline constexpr Layout kAllLayouts[] = {Layout::contiguous, Layout::transposed, Layout::strided,
                                         Layout::offset, Layout::expanded};

inline const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::contiguous: return "contiguous";
    case Layout::transposed: return "transposed";
    case Layout::strided: return "strided";
    case Layout::offset: return "offset";
    case Layout::expanded: return "expanded";
  }
  return "?";
}

// A tensor of `shape`, `dt` on `device` holding `values` (row-major, shape.numel() of
// them), laid out as `layout` (a 1-D "transposed" input is strided; a scalar contiguous).
// An expanded input repeats the values of its first row along axis 0, so read a test's
// reference inputs back with host_values(), not from `values`.
inline Tensor make_input(const std::vector<double>& values, const Shape& shape, DType dt, Device device,
                         Layout layout) {
  const TensorOptions opts{.dtype = dt, .device = device};
  const Tensor src = from_vector<double>(values, shape, {.dtype = DType::float64, .device = kCpu});
  const int nd = shape.ndim();
  if (nd == 0 || layout == Layout::contiguous) return src.to(device, dt).clone();
  const double gap = is_floating(dt) ? std::nan("") : -7;
  if (layout == Layout::transposed && nd >= 2) {
    Shape storage_shape = shape;
    std::swap(storage_shape[nd - 1], storage_shape[nd - 2]);
    Tensor view = full(storage_shape, gap, opts).transpose(-1, -2);
    return view.copy_(src);
  }
  if (layout == Layout::strided || layout == Layout::transposed) {
    Shape storage_shape = shape;
    storage_shape[nd - 1] = 2 * shape[nd - 1] + 1;
    Tensor view = full(storage_shape, gap, opts).slice(-1, 1, INT64_MAX, 2);
    return view.copy_(src);
  }
  if (layout == Layout::offset) {
    Tensor view = full({shape.numel() + 1}, gap, opts).slice(0, 1).view(shape);
    return view.copy_(src);
  }
  // expanded: one row along axis 0, broadcast.
  Shape row_shape = shape;
  row_shape[0] = 1;
  Tensor storage = empty(row_shape, opts);
  if (shape[0] > 0) storage.copy_(src.slice(0, 0, 1));
  return storage.expand(shape);
}

// ---- poisoned outputs ----

// Makes the next allocation of `nbytes` on `device` (the op's output) arrive poisoned,
// so an element a kernel forgets to write shows:
//   cpu (glibc): malloc's M_PERTURB, switched on for the rest of the process, fills every
//     allocation with 0x7F bytes (NaN in float16; ~3e38 in float32 and bfloat16, ~1e306 in
//     float64, huge in integers: values no test input leads to).
//   cuda: a block of that size is filled with 0xFF bytes (NaN in every float dtype) and
//     freed; the caching allocator hands it to the next same-size request on the stream.
inline void poison_next_allocation(std::size_t nbytes, Device device) {
  if (nbytes == 0) return;
#ifdef __GLIBC__
  if (device.is_cpu()) {
    static const bool perturbing = mallopt(M_PERTURB, 0x80) == 1;  // allocations get 0x80 ^ 0xFF
    if (perturbing) return;
  }
#endif
  Tensor block = empty({static_cast<std::int64_t>(nbytes)}, {.dtype = DType::uint8, .device = device});
  block.fill_(255);
}

}  // namespace kiln::test
