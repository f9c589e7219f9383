// Shape and indexing ops that copy: concat, stack, split, pad, gather/index_select/take,
// scatter_add (the backward of gathers, used by Embedding), one_hot, cast. cpu and cuda.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis = 0);
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis = 0);
// Splits into pieces of the given sizes along `axis` (views of x).
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0);
// Splits into `sections` equal pieces (the extent must divide).
std::vector<Tensor> split(const Tensor& x, std::int64_t sections, std::int64_t axis = 0);
// Constant padding: pads[i] = (before, after) for axis i; fewer entries pad leading axes only.
Tensor pad(const Tensor& x, const std::vector<std::pair<std::int64_t, std::int64_t>>& pads,
           double value = 0.0);

// Rows of x along `axis` picked by integer `indices` (any shape): the result's shape is
// x's with `axis` replaced by indices' shape (numpy.take). Backward: scatter_add.
Tensor take(const Tensor& x, const Tensor& indices, std::int64_t axis = 0);
// index_select: take with 1-D indices (PyTorch's name).
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices);
// numpy.take_along_axis / torch.gather: indices has x's rank; picks along `axis`.
Tensor gather(const Tensor& x, const Tensor& indices, std::int64_t axis);
// out = zeros(shape) with src added at `indices` along `axis` (the inverse of take).
Tensor scatter_add(const Shape& shape, const Tensor& indices, const Tensor& src, std::int64_t axis = 0);

Tensor one_hot(const Tensor& indices, std::int64_t depth, DType dtype = DType::float32);
Tensor cast(const Tensor& x, DType dtype);  // = x.to(dtype), recorded

}  // namespace kiln
