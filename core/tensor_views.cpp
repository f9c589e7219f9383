// Views: new shape/strides/offset over the same storage. Nothing here copies data except
// reshape() when no view can express the new shape.
#include <algorithm>
#include <optional>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/tensor.h"

namespace kiln {
namespace {

// Resolves one -1 extent in `requested` so the element count matches `numel`.
Shape infer_shape(const Shape& requested, std::int64_t numel, const Shape& from, const char* op) {
  Shape out = requested;
  int infer = -1;
  std::int64_t known = 1;
  for (int d = 0; d < out.ndim(); ++d) {
    if (out[d] == -1) {
      KILN_CHECK(infer < 0, ShapeError, op, ": only one dimension can be -1, got ", requested);
      infer = d;
    } else {
      KILN_CHECK(out[d] >= 0, ShapeError, op, ": invalid extent ", out[d], " in ", requested);
      known *= out[d];
    }
  }
  if (infer >= 0) {
    KILN_CHECK(known != 0 && numel % known == 0, ShapeError, op, ": cannot infer -1 in ",
               requested, " for a tensor of shape ", from, " (", numel, " elements)");
    out[infer] = numel / known;
  }
  KILN_CHECK(out.numel() == numel, ShapeError, op, ": shape ", requested, " is invalid for a tensor of shape ",
             from, " (", numel, " elements)");
  return out;
}

// Strides for viewing (old_shape, old_strides) as new_shape without copying, or nullopt
// when the old layout cannot express it (groups of dims must stay contiguous among
// themselves; the same algorithm as PyTorch's computeStride).
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides,
                                    const Shape& new_shape) {
  Strides out = new_shape;
  if (old_shape.ndim() == 0 || old_shape.numel() == 0) return contiguous_strides(new_shape);
  int view_d = new_shape.ndim() - 1;
  std::int64_t chunk_base = old_strides[old_shape.ndim() - 1];
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (int d = old_shape.ndim() - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    const bool chunk_ends = d == 0 || (old_shape[d - 1] != 1 &&
                                       old_strides[d - 1] != tensor_numel * chunk_base);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
      out[view_d] = view_numel * chunk_base;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_base = old_strides[d - 1];
      tensor_numel = view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  const Shape target = infer_shape(requested, numel(), shape(), "view");
  auto strides = view_strides(shape(), this->strides(), target);
  KILN_CHECK(strides.has_value(), ShapeError, "view: cannot view a tensor of shape ", shape(),
             " and strides ", this->strides(), " as ", target,
             " without copying; call reshape() (which copies) or contiguous() first");
  return recorded(make_view(target, *strides, offset()), {.kind = ViewKind::reshape});
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape target = infer_shape(requested, numel(), shape(), "reshape");
  if (auto strides = view_strides(shape(), this->strides(), target)) {
    return recorded(make_view(target, *strides, offset()), {.kind = ViewKind::reshape});
  }
  return contiguous().view(target);
}

Tensor Tensor::permute(std::span<const std::int64_t> axes) const {
  KILN_CHECK(static_cast<int>(axes.size()) == ndim(), ShapeError, "permute: ", axes.size(),
             " axes given for a tensor of shape ", shape());
  Shape new_shape = shape(), new_strides = strides();
  bool seen[Shape::kMaxDims] = {};
  Shape order;
  for (int d = 0; d < ndim(); ++d) {
    const int a = shape().normalize_axis(axes[d], "permute");
    KILN_CHECK(!seen[a], ValueError, "permute: axis ", axes[d], " repeats in the permutation of shape ",
               shape());
    seen[a] = true;
    new_shape[d] = shape()[a];
    new_strides[d] = strides()[a];
    order.push_back(a);
  }
  return recorded(make_view(new_shape, new_strides, offset()), {.kind = ViewKind::permute, .axes = order});
}

Tensor Tensor::transpose(std::int64_t a, std::int64_t b) const {
  const int ia = shape().normalize_axis(a, "transpose");
  const int ib = shape().normalize_axis(b, "transpose");
  Shape new_shape = shape(), new_strides = strides();
  std::swap(new_shape[ia], new_shape[ib]);
  std::swap(new_strides[ia], new_strides[ib]);
  Shape order;
  for (int d = 0; d < ndim(); ++d) order.push_back(d);
  std::swap(order[ia], order[ib]);
  return recorded(make_view(new_shape, new_strides, offset()), {.kind = ViewKind::permute, .axes = order});
}

Tensor Tensor::t() const {
  KILN_CHECK(ndim() == 2, ShapeError, "t: expects a 2-D tensor, got shape ", shape(),
             "; use transpose(a, b) or permute()");
  return transpose(0, 1);
}

Tensor Tensor::slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) const {
  const int d = shape().normalize_axis(axis, "slice");
  KILN_CHECK(step > 0, ValueError, "slice: step must be positive, got ", step);
  const std::int64_t extent = shape()[d];
  auto clamp = [extent](std::int64_t i) {
    if (i < 0) i += extent;
    return std::clamp<std::int64_t>(i, 0, extent);
  };
  const std::int64_t lo = clamp(start);
  const std::int64_t hi = std::max(lo, clamp(stop));
  Shape new_shape = shape(), new_strides = strides();
  new_shape[d] = (hi - lo + step - 1) / step;
  new_strides[d] = strides()[d] * step;
  // An empty slice keeps the offset in range of the storage.
  const std::int64_t new_offset = new_shape[d] == 0 ? offset() : offset() + lo * strides()[d];
  return recorded(make_view(new_shape, new_strides, new_offset),
                  {.kind = ViewKind::slice, .axis = d, .start = lo, .step = step});
}

Tensor Tensor::select(std::int64_t axis, std::int64_t index) const {
  const int d = shape().normalize_axis(axis, "select");
  const std::int64_t extent = shape()[d];
  KILN_CHECK(index >= -extent && index < extent, IndexError, "select: index ", index,
             " is out of range for axis ", d, " with size ", extent, " (shape ", shape(), ")");
  if (index < 0) index += extent;
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(d);
  new_strides.erase(d);
  return recorded(make_view(new_shape, new_strides, offset() + index * strides()[d]),
                  {.kind = ViewKind::select, .axis = d, .index = index});
}

Tensor Tensor::expand(const Shape& target) const {
  KILN_CHECK(target.ndim() >= ndim(), ShapeError, "expand: cannot expand shape ", shape(),
             " to fewer dimensions ", target);
  Shape new_shape = target, new_strides = target;
  const int lead = target.ndim() - ndim();
  for (int d = target.ndim() - 1; d >= 0; --d) {
    const int src = d - lead;
    const std::int64_t have = src >= 0 ? shape()[src] : 1;
    std::int64_t want = target[d];
    if (want == -1) {
      KILN_CHECK(src >= 0, ShapeError, "expand: -1 is not allowed for the new leading axis ", d,
                 " in ", target);
      want = have;
    }
    KILN_CHECK(want >= 0 && (have == want || have == 1), ShapeError, "expand: cannot expand shape ",
               shape(), " to ", target, " (axis ", d, ": ", have, " vs ", want, ")");
    new_shape[d] = want;
    new_strides[d] = (src >= 0 && have == want) ? strides()[src] : 0;
  }
  return recorded(make_view(new_shape, new_strides, offset()), {.kind = ViewKind::expand});
}

Tensor Tensor::squeeze() const {
  Shape new_shape, new_strides;
  for (int d = 0; d < ndim(); ++d) {
    if (shape()[d] == 1) continue;
    new_shape.push_back(shape()[d]);
    new_strides.push_back(strides()[d]);
  }
  return recorded(make_view(new_shape, new_strides, offset()), {.kind = ViewKind::reshape});
}

Tensor Tensor::squeeze(std::int64_t axis) const {
  const int d = shape().normalize_axis(axis, "squeeze");
  KILN_CHECK(shape()[d] == 1, ShapeError, "squeeze: axis ", axis, " has size ", shape()[d],
             ", not 1 (shape ", shape(), ")");
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(d);
  new_strides.erase(d);
  return recorded(make_view(new_shape, new_strides, offset()), {.kind = ViewKind::reshape});
}

Tensor Tensor::unsqueeze(std::int64_t axis) const {
  KILN_CHECK(axis >= -(ndim() + 1) && axis <= ndim(), IndexError, "unsqueeze: axis ", axis,
             " is out of range for a tensor of shape ", shape(), " (valid: ", -(ndim() + 1), " to ",
             ndim(), ")");
  const int d = static_cast<int>(axis < 0 ? axis + ndim() + 1 : axis);
  Shape new_shape = shape(), new_strides = strides();
  const std::int64_t stride = d < ndim() ? strides()[d] * shape()[d] : 1;
  new_shape.insert(d, 1);
  new_strides.insert(d, stride);
  return recorded(make_view(new_shape, new_strides, offset()), {.kind = ViewKind::reshape});
}

}  // namespace kiln
