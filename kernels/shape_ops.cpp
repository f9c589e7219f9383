// The shape and indexing ops: checks, layouts, dispatch and recorded backwards.
// concat, stack, split and pad are views and core's strided copies (run with grad mode
// off, then recorded here as one node); take/index_select/gather/scatter_add/one_hot call
// the kernels of kernels/shape_ops_impl.h.
#include "kiln/kernels/shape_ops.h"

#include <string>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/shape_ops_impl.h"

namespace kiln {
namespace {

void check_index_dtype(const char* op, const Tensor& indices) {
  KILN_CHECK(indices.dtype() == DType::int32 || indices.dtype() == DType::int64, TypeError, op,
             ": indices must be int32 or int64, got ", indices.dtype(), " of shape ", indices.shape());
}

// Indices (contiguous) must lie in [lo, hi): IndexError naming the first bad one otherwise.
void check_indices(const char* op, const Tensor& indices, std::int64_t lo, std::int64_t hi,
                   const std::string& what) {
  std::int64_t bad = -1;
  KILN_ON_DEVICE(indices.device(), op,
                 bad = cpu::first_bad_index(indices.data_ptr(), indices.dtype(), indices.numel(), lo, hi),
                 bad = cuda::first_bad_index(indices.data_ptr(), indices.dtype(), indices.numel(), lo, hi,
                                             indices.device().index()));
  if (bad < 0) return;
  const auto value = indices.reshape({-1}).select(0, bad).item<std::int64_t>();
  KILN_THROW(IndexError, op, ": index ", value, " (at flat position ", bad, " of indices of shape ",
             indices.shape(), ") is out of range for ", what, " ", hi);
}

TakePlan take_plan(const Shape& shape, int axis, const Tensor& indices, DType dtype) {
  TakePlan p;
  for (int d = 0; d < axis; ++d) p.outer *= shape[d];
  for (int d = axis + 1; d < shape.ndim(); ++d) p.inner *= shape[d];
  p.extent = shape[axis];
  p.count = indices.numel();
  p.dtype = dtype;
  p.index_dtype = indices.dtype();
  return p;
}

// x's shape with `axis` replaced by the indices' shape (numpy.take).
Shape take_shape(const Shape& shape, int axis, const Shape& index_shape) {
  Shape out;
  for (int d = 0; d < axis; ++d) out.push_back(shape[d]);
  for (std::int64_t e : index_shape) out.push_back(e);
  for (int d = axis + 1; d < shape.ndim(); ++d) out.push_back(shape[d]);
  return out;
}

void check_scatter_dtype(const char* op, DType dtype) {
  KILN_CHECK(dtype != DType::bool_ && dtype != DType::uint8, TypeError, op,
             ": accumulates floating, int32 or int64 data, got ", dtype);
}

// zeros(shape) with src (contiguous, (outer, count, inner)) added at the indices.
Tensor scatter_add_raw(const Shape& shape, int axis, const Tensor& indices, const Tensor& src) {
  const DType dtype = src.dtype();
  Tensor acc = zeros(shape, {.dtype = accumulate_dtype(dtype), .device = src.device()});
  const TakePlan p = take_plan(shape, axis, indices, dtype);
  KILN_ON_DEVICE(
      src.device(), "scatter_add", cpu::scatter_add(p, src.data_ptr(), indices.data_ptr(), acc.data_ptr()),
      cuda::scatter_add(p, src.data_ptr(), indices.data_ptr(), acc.data_ptr(), src.device().index()));
  return acc.to(dtype);
}

// Gathers x's rows at the checked, contiguous indices: x's shape with axis -> indices' shape.
Tensor take_raw(const Tensor& x, int axis, const Tensor& indices) {
  const Tensor xc = x.contiguous();
  Tensor out =
      empty(take_shape(x.shape(), axis, indices.shape()), {.dtype = x.dtype(), .device = x.device()});
  const TakePlan p = take_plan(x.shape(), axis, indices, x.dtype());
  KILN_ON_DEVICE(x.device(), "take", cpu::take(p, xc.data_ptr(), indices.data_ptr(), out.data_ptr()),
                 cuda::take(p, xc.data_ptr(), indices.data_ptr(), out.data_ptr(), x.device().index()));
  return out;
}

GatherPlan gather_plan(const Tensor& indices, int axis, const Strides& x_strides, std::int64_t extent,
                       DType dtype) {
  GatherPlan p;
  p.ndim = indices.ndim();
  p.axis = axis;
  p.numel = indices.numel();
  for (int d = 0; d < p.ndim; ++d) {
    p.shape[d] = indices.shape()[d];
    p.x_strides[d] = x_strides[d];
  }
  p.extent = extent;
  p.dtype = dtype;
  p.index_dtype = indices.dtype();
  return p;
}

Tensor gather_backward(const Shape& x_shape, int axis, const Tensor& indices, const Tensor& g) {
  const DType dtype = g.dtype();
  const Tensor src = g.contiguous();
  Tensor acc = zeros(x_shape, {.dtype = accumulate_dtype(dtype), .device = g.device()});
  const GatherPlan p = gather_plan(indices, axis, acc.strides(), x_shape[axis], dtype);
  KILN_ON_DEVICE(
      g.device(), "gather backward",
      cpu::gather_backward(p, src.data_ptr(), indices.data_ptr(), acc.data_ptr()),
      cuda::gather_backward(p, src.data_ptr(), indices.data_ptr(), acc.data_ptr(), g.device().index()));
  return acc.to(dtype);
}

}  // namespace

Tensor take(const Tensor& x, const Tensor& indices, std::int64_t axis) {
  detail::check_same_device("take", {&x, &indices});
  check_index_dtype("take", indices);
  KILN_CHECK(x.ndim() >= 1, ShapeError, "take: x needs at least one axis, got shape ", x.shape());
  const int ax = x.shape().normalize_axis(axis, "take");
  KILN_CHECK(x.ndim() - 1 + indices.ndim() <= Shape::kMaxDims, ShapeError, "take: the result of x ",
             x.shape(), " indexed by ", indices.shape(), " along axis ", ax, " has more than ",
             Shape::kMaxDims, " axes");
  const Tensor idx = indices.detach().contiguous();
  const std::int64_t extent = x.shape()[ax];
  check_indices("take", idx, -extent, extent, std::string("the extent of axis ") + std::to_string(ax) + " =");
  Tensor out = take_raw(x.detach(), ax, idx);
  if (needs_grad({&x})) {
    record("TakeBackward", {x}, {out}, [idx, shape = x.shape(), ax](std::vector<Tensor>& g) {
      return std::vector<Tensor>{scatter_add_raw(shape, ax, idx, g[0].contiguous())};
    });
  }
  return out;
}

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices) {
  KILN_CHECK(indices.ndim() == 1, ShapeError, "index_select: indices must be 1-D, got shape ",
             indices.shape());
  return take(x, indices, axis);
}

Tensor scatter_add(const Shape& shape, const Tensor& indices, const Tensor& src, std::int64_t axis) {
  detail::check_same_device("scatter_add", {&indices, &src});
  check_index_dtype("scatter_add", indices);
  check_scatter_dtype("scatter_add", src.dtype());
  validate_shape(shape, itemsize(src.dtype()), "scatter_add");
  KILN_CHECK(shape.ndim() >= 1, ShapeError, "scatter_add: the output needs at least one axis, got shape ",
             shape);
  const int ax = shape.normalize_axis(axis, "scatter_add");
  KILN_CHECK(shape.ndim() - 1 + indices.ndim() <= Shape::kMaxDims, ShapeError,
             "scatter_add: indices of shape ", indices.shape(), " along axis ", ax, " of ", shape,
             " need more than ", Shape::kMaxDims, " axes");
  const Shape expected = take_shape(shape, ax, indices.shape());
  KILN_CHECK(src.shape() == expected, ShapeError, "scatter_add: src of shape ", src.shape(),
             " does not fit indices of shape ", indices.shape(), " into ", shape, " along axis ", ax,
             " (expected ", expected, ")");
  const Tensor idx = indices.detach().contiguous();
  const std::int64_t extent = shape[ax];
  check_indices("scatter_add", idx, -extent, extent,
                std::string("the extent of axis ") + std::to_string(ax) + " =");
  Tensor out = scatter_add_raw(shape, ax, idx, src.detach().contiguous());
  if (needs_grad({&src})) {
    record("ScatterAddBackward", {src}, {out}, [idx, ax](std::vector<Tensor>& g) {
      return std::vector<Tensor>{take_raw(g[0], ax, idx)};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, const Tensor& indices, std::int64_t axis) {
  detail::check_same_device("gather", {&x, &indices});
  check_index_dtype("gather", indices);
  KILN_CHECK(x.ndim() >= 1, ShapeError, "gather: x needs at least one axis, got shape ", x.shape());
  const int ax = x.shape().normalize_axis(axis, "gather");
  bool fits = indices.ndim() == x.ndim();
  for (int d = 0; fits && d < x.ndim(); ++d) fits = d == ax || indices.shape()[d] <= x.shape()[d];
  KILN_CHECK(fits, ShapeError, "gather: indices of shape ", indices.shape(), " do not fit x of shape ",
             x.shape(), " along axis ", ax, " (same rank, and no larger than x on the other axes)");
  const Tensor idx = indices.detach().contiguous();
  const std::int64_t extent = x.shape()[ax];
  check_indices("gather", idx, -extent, extent,
                std::string("the extent of axis ") + std::to_string(ax) + " =");
  const Tensor xd = x.detach();
  Tensor out = empty(idx.shape(), {.dtype = x.dtype(), .device = x.device()});
  const GatherPlan p = gather_plan(idx, ax, xd.strides(), extent, x.dtype());
  KILN_ON_DEVICE(x.device(), "gather", cpu::gather(p, xd.data_ptr(), idx.data_ptr(), out.data_ptr()),
                 cuda::gather(p, xd.data_ptr(), idx.data_ptr(), out.data_ptr(), x.device().index()));
  if (needs_grad({&x})) {
    record("GatherBackward", {x}, {out}, [idx, shape = x.shape(), ax](std::vector<Tensor>& g) {
      return std::vector<Tensor>{gather_backward(shape, ax, idx, g[0])};
    });
  }
  return out;
}

Tensor one_hot(const Tensor& indices, std::int64_t depth, DType dtype) {
  check_index_dtype("one_hot", indices);
  KILN_CHECK(depth >= 0, ValueError, "one_hot: depth must be >= 0, got ", depth);
  KILN_CHECK(indices.ndim() < Shape::kMaxDims, ShapeError, "one_hot: indices of shape ", indices.shape(),
             " leave no room for the class axis");
  const Tensor idx = indices.detach().contiguous();
  check_indices("one_hot", idx, 0, depth, "depth");
  Shape shape = indices.shape();
  shape.push_back(depth);
  Tensor out = empty(shape, {.dtype = dtype, .device = indices.device()});
  KILN_ON_DEVICE(indices.device(), "one_hot",
                 cpu::one_hot(idx.data_ptr(), idx.dtype(), idx.numel(), depth, out.data_ptr(), dtype),
                 cuda::one_hot(idx.data_ptr(), idx.dtype(), idx.numel(), depth, out.data_ptr(), dtype,
                               indices.device().index()));
  return out;
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis) {
  KILN_CHECK(!tensors.empty(), ValueError, "concat: expects at least one tensor");
  const Tensor& first = tensors[0];
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    KILN_CHECK(tensors[i].defined(), ValueError, "concat: tensor ", i, " is undefined");
  }
  KILN_CHECK(first.ndim() >= 1, ShapeError, "concat: tensors need at least one axis, got shape ",
             first.shape());
  const int ax = first.shape().normalize_axis(axis, "concat");
  Shape shape = first.shape();
  shape[ax] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::check_same_device("concat", {&first, &t});
    KILN_CHECK(t.dtype() == first.dtype(), TypeError, "concat: tensor ", i, " has dtype ", t.dtype(),
               ", tensor 0 has ", first.dtype());
    bool fits = t.ndim() == first.ndim();
    for (int d = 0; fits && d < t.ndim(); ++d) fits = d == ax || t.shape()[d] == first.shape()[d];
    KILN_CHECK(fits, ShapeError, "concat: tensor ", i, " of shape ", t.shape(),
               " does not match tensor 0 of shape ", first.shape(), " off axis ", ax);
    shape[ax] += t.shape()[ax];
  }
  Tensor out = empty(shape, {.dtype = first.dtype(), .device = first.device()});
  std::vector<std::int64_t> sizes;
  {
    NoGradGuard no_grad;  // core's copies would record otherwise; one node is recorded below
    std::int64_t offset = 0;
    for (const Tensor& t : tensors) {
      const std::int64_t n = t.shape()[ax];
      if (n > 0) out.slice(ax, offset, offset + n).copy_(t.detach());
      sizes.push_back(n);
      offset += n;
    }
  }
  if (needs_grad(tensors)) {
    record("ConcatBackward", tensors, {out}, [sizes, ax](std::vector<Tensor>& g) {
      std::vector<Tensor> grads;
      std::int64_t offset = 0;
      for (std::int64_t n : sizes) {
        grads.push_back(g[0].slice(ax, offset, offset + n));
        offset += n;
      }
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis) {
  KILN_CHECK(!tensors.empty(), ValueError, "stack: expects at least one tensor");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    KILN_CHECK(tensors[i].defined(), ValueError, "stack: tensor ", i, " is undefined");
    KILN_CHECK(tensors[i].shape() == tensors[0].shape(), ShapeError, "stack: tensor ", i, " has shape ",
               tensors[i].shape(), ", tensor 0 has ", tensors[0].shape());
  }
  Shape stacked = tensors[0].shape();
  KILN_CHECK(stacked.ndim() < Shape::kMaxDims, ShapeError, "stack: tensors of shape ", stacked,
             " leave no room for a new axis");
  stacked.push_back(1);
  const int ax = stacked.normalize_axis(axis, "stack");
  std::vector<Tensor> expanded;
  for (const Tensor& t : tensors) expanded.push_back(t.unsqueeze(ax));
  return concat(expanded, ax);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t axis) {
  KILN_CHECK(x.ndim() >= 1, ShapeError, "split: x needs at least one axis, got shape ", x.shape());
  const int ax = x.shape().normalize_axis(axis, "split");
  std::int64_t total = 0;
  for (std::int64_t n : sizes) {
    KILN_CHECK(n >= 0, ValueError, "split: sizes must be >= 0, got ", n);
    total += n;
  }
  KILN_CHECK(total == x.shape()[ax], ShapeError, "split: sizes sum to ", total, " but axis ", ax, " of x ",
             x.shape(), " has extent ", x.shape()[ax]);
  std::vector<Tensor> pieces;
  std::int64_t offset = 0;
  const Tensor base = x.detach();  // views of x; one SplitBackward node is recorded below
  for (std::int64_t n : sizes) {
    pieces.push_back(base.slice(ax, offset, offset + n));
    offset += n;
  }
  if (needs_grad({&x})) {
    std::vector<Shape> shapes;
    for (const Tensor& p : pieces) shapes.push_back(p.shape());
    record("SplitBackward", {x}, pieces,
           [shapes, ax, dtype = x.dtype(), device = x.device()](std::vector<Tensor>& g) {
             std::vector<Tensor> parts;  // a piece no gradient reached contributes zeros
             for (std::size_t i = 0; i < g.size(); ++i) {
               parts.push_back(g[i].defined() ? g[i] : zeros(shapes[i], {.dtype = dtype, .device = device}));
             }
             return std::vector<Tensor>{concat(parts, ax)};
           });
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, std::int64_t sections, std::int64_t axis) {
  KILN_CHECK(x.ndim() >= 1, ShapeError, "split: x needs at least one axis, got shape ", x.shape());
  const int ax = x.shape().normalize_axis(axis, "split");
  const std::int64_t extent = x.shape()[ax];
  KILN_CHECK(sections > 0 && extent % sections == 0, ValueError, "split: ", sections,
             " sections do not divide axis ", ax, " of x ", x.shape(), " (extent ", extent, ")");
  return split(x, std::vector<std::int64_t>(static_cast<std::size_t>(sections), extent / sections), ax);
}

Tensor pad(const Tensor& x, const std::vector<std::pair<std::int64_t, std::int64_t>>& pads, double value) {
  KILN_CHECK(static_cast<int>(pads.size()) <= x.ndim(), ValueError, "pad: ", pads.size(),
             " (before, after) pairs for x of shape ", x.shape());
  Shape shape = x.shape();
  for (std::size_t d = 0; d < pads.size(); ++d) {
    KILN_CHECK(pads[d].first >= 0 && pads[d].second >= 0, ValueError, "pad: pads must be >= 0, got (",
               pads[d].first, ", ", pads[d].second, ") for axis ", d);
    shape[static_cast<int>(d)] += pads[d].first + pads[d].second;
  }
  Tensor out = full(shape, value, {.dtype = x.dtype(), .device = x.device()});
  // The region x lands in, as a view of out (and of its gradient).
  auto region = [pads, extents = x.shape()](const Tensor& t) {
    Tensor r = t;
    for (std::size_t d = 0; d < pads.size(); ++d) {
      r = r.slice(static_cast<std::int64_t>(d), pads[d].first, pads[d].first + extents[static_cast<int>(d)]);
    }
    return r;
  };
  {
    NoGradGuard no_grad;
    if (x.numel() > 0) region(out).copy_(x.detach());
  }
  if (needs_grad({&x})) {
    record("PadBackward", {x}, {out},
           [region](std::vector<Tensor>& g) { return std::vector<Tensor>{region(g[0])}; });
  }
  return out;
}

Tensor cast(const Tensor& x, DType dtype) { return x.to(dtype); }

}  // namespace kiln
