#include "kiln/core/shape.h"

#include <limits>
#include <ostream>

namespace kiln {

Shape::Shape(std::initializer_list<std::int64_t> dims)
    : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const std::int64_t> dims) {
  KILN_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), ValueError,
             "Shape: at most ", kMaxDims, " dimensions are supported, got ", dims.size());
  for (auto d : dims) dims_[ndim_++] = d;
}

void Shape::push_back(std::int64_t d) {
  KILN_CHECK(ndim_ < kMaxDims, ValueError, "Shape: at most ", kMaxDims,
             " dimensions are supported; cannot append to ", str());
  dims_[ndim_++] = d;
}

void Shape::insert(int pos, std::int64_t d) {
  KILN_CHECK(ndim_ < kMaxDims, ValueError, "Shape: at most ", kMaxDims,
             " dimensions are supported; cannot insert into ", str());
  KILN_ASSERT(pos >= 0 && pos <= ndim_, "insert position ", pos, " into ", str());
  for (int i = ndim_; i > pos; --i) dims_[i] = dims_[i - 1];
  dims_[pos] = d;
  ++ndim_;
}

void Shape::erase(int pos) {
  KILN_ASSERT(pos >= 0 && pos < ndim_, "erase position ", pos, " from ", str());
  for (int i = pos; i + 1 < ndim_; ++i) dims_[i] = dims_[i + 1];
  dims_[--ndim_] = 0;
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (auto d : *this) n *= d;
  return n;
}

int Shape::normalize_axis(std::int64_t axis, const char* op) const {
  // A scalar has no axes, but NumPy lets axis 0 / -1 name it in reductions; we do not.
  KILN_CHECK(axis >= -ndim_ && axis < ndim_, IndexError, op, ": axis ", axis,
             " is out of range for a tensor of shape ", str(), " (", ndim_, " dims)");
  return static_cast<int>(axis < 0 ? axis + ndim_ : axis);
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < ndim_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  if (ndim_ == 1) s += ",";
  return s + ")";
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.ndim_ != b.ndim_) return false;
  for (int i = 0; i < a.ndim_; ++i) {
    if (a.dims_[i] != b.dims_[i]) return false;
  }
  return true;
}

std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

void validate_shape(const Shape& shape, std::size_t itemsize, const char* op) {
  for (int i = 0; i < shape.ndim(); ++i) {
    KILN_CHECK(shape[i] >= 0, ValueError, op, ": negative dimension ", shape[i], " at axis ",
               i, " in shape ", shape);
  }
  // Bytes, not just elements, must fit in int64 (a zero extent makes any shape empty).
  const auto limit = std::numeric_limits<std::int64_t>::max() /
                     static_cast<std::int64_t>(itemsize ? itemsize : 1);
  for (auto d : shape) {
    if (d == 0) return;
  }
  std::int64_t n = 1;
  for (auto d : shape) {
    KILN_CHECK(n <= limit / d, ValueError, op, ": shape ", shape, " with ", itemsize,
               "-byte elements is too large (its byte size overflows int64)");
    n *= d;
  }
}

Strides contiguous_strides(const Shape& shape) {
  Strides s = shape;
  std::int64_t stride = 1;
  for (int i = shape.ndim() - 1; i >= 0; --i) {
    s[i] = stride;
    // Only an empty tensor can overflow here (validate_shape bounds the others' byte
    // size), e.g. (0, 2^62, 8) read from a file; its strides address nothing, so they
    // saturate instead of overflowing.
    if (__builtin_mul_overflow(stride, shape[i] > 0 ? shape[i] : 1, &stride)) stride = INT64_MAX;
  }
  return s;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int nd = a.ndim() > b.ndim() ? a.ndim() : b.ndim();
  Shape out;
  for (int i = 0; i < nd; ++i) {
    const int ia = a.ndim() - nd + i;
    const int ib = b.ndim() - nd + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1;
    const std::int64_t db = ib >= 0 ? b[ib] : 1;
    KILN_CHECK(da == db || da == 1 || db == 1, ShapeError, op, ": shapes ", a, " and ", b,
               " cannot be broadcast together (axis ", i - nd, ": ", da, " vs ", db, ")");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

}  // namespace kiln
