// Shape: up to kMaxDims int64 extents stored inline (no heap), used for both sizes and
// strides (in elements). Value type; cheap to copy into kernel argument structs.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <span>
#include <string>

#include "kiln/core/error.h"

namespace kiln {

class Shape {
 public:
  static constexpr int kMaxDims = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::span<const std::int64_t> dims);

  int ndim() const { return ndim_; }
  bool empty() const { return ndim_ == 0; }
  std::int64_t operator[](int i) const { return dims_[i]; }
  std::int64_t& operator[](int i) { return dims_[i]; }
  const std::int64_t* begin() const { return dims_; }
  const std::int64_t* end() const { return dims_ + ndim_; }
  std::int64_t* begin() { return dims_; }
  std::int64_t* end() { return dims_ + ndim_; }
  std::span<const std::int64_t> span() const { return {dims_, static_cast<size_t>(ndim_)}; }

  void push_back(std::int64_t d);
  void insert(int pos, std::int64_t d);
  void erase(int pos);

  // Product of the extents (1 for a scalar shape). Assumes a validated shape.
  std::int64_t numel() const;

  // Maps a possibly negative axis into [0, ndim); throws IndexError naming `op`.
  int normalize_axis(std::int64_t axis, const char* op) const;

  std::string str() const;  // "(2, 3)", "()" for a scalar, "(5,)" for one dim

  friend bool operator==(const Shape& a, const Shape& b);

 private:
  std::int64_t dims_[kMaxDims] = {};
  int ndim_ = 0;
};

using Strides = Shape;

std::ostream& operator<<(std::ostream& os, const Shape& s);

// Throws ValueError naming `op` for negative extents, or when the element count or
// byte size (with `itemsize`) overflows int64.
void validate_shape(const Shape& shape, std::size_t itemsize, const char* op);

// Row-major (C order) strides for `shape`, in elements.
Strides contiguous_strides(const Shape& shape);

// NumPy broadcasting of two shapes; throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op = "broadcast");

}  // namespace kiln
