// Dataset: in-memory host tensors or a Reader, gathered by index into batches.
#include <algorithm>
#include <cstring>

#include "kiln/training/data/loader.h"

namespace kiln::data {
namespace {

Tensor to_host(const Tensor& t) { return t.detach().to(Device::cpu()).contiguous(); }

// Rows `indices` of the contiguous host tensor t (N, ...) as a new (B, ...) tensor.
Tensor gather_rows(const Tensor& t, std::span<const std::int64_t> indices) {
  Shape shape = t.shape();
  shape[0] = static_cast<std::int64_t>(indices.size());
  Tensor out = empty(shape, {.dtype = t.dtype(), .device = Device::cpu()});
  const std::size_t row = t.size(0) == 0 ? 0 : t.nbytes() / static_cast<std::size_t>(t.size(0));
  const auto* src = static_cast<const std::uint8_t*>(t.data_ptr());
  auto* dst = static_cast<std::uint8_t*>(out.data_ptr());
  for (std::size_t i = 0; i < indices.size(); ++i) {
    std::memcpy(dst + i * row, src + static_cast<std::size_t>(indices[i]) * row, row);
  }
  return out;
}

// A reader's batch, checked against the contract in loader.h.
void check_reader_batch(Batch& b, std::size_t count) {
  const auto n = static_cast<std::int64_t>(count);
  KILN_CHECK(b.x.defined() && b.x.ndim() >= 1 && b.x.size(0) == n, ShapeError,
             "Reader::gather: x must have a leading axis of ", n, " (the indices), got ",
             b.x.defined() ? b.x.shape().str() : std::string("an undefined x"));
  b.x = to_host(b.x);
  if (b.y.defined()) {
    KILN_CHECK(b.y.ndim() >= 1 && b.y.size(0) == n, ShapeError, "Reader::gather: y of shape ",
               b.y.shape(), " for ", n, " indices");
    b.y = to_host(b.y);
  }
  for (auto* list : {&b.more_x, &b.more_y}) {
    for (Tensor& t : *list) {
      KILN_CHECK(t.defined() && t.ndim() >= 1 && t.size(0) == n, ShapeError,
                 "Reader::gather: every extra input and target needs a leading axis of ", n,
                 " (the indices), got ", t.defined() ? t.shape().str() : std::string("an undefined tensor"));
      t = to_host(t);
    }
  }
  KILN_CHECK(b.y.defined() || b.more_y.empty(), ValueError,
             "Reader::gather: more_y without y (the first target goes in y)");
  if (b.sample_weight.defined()) {
    KILN_CHECK(b.sample_weight.ndim() == 1 && b.sample_weight.size(0) == n, ShapeError,
               "Reader::gather: sample_weight of shape ", b.sample_weight.shape(), " for ", n,
               " indices");
    b.sample_weight = to_host(b.sample_weight);
  }
}

const Tensor& first_input(const std::vector<Tensor>& xs) {
  KILN_CHECK(!xs.empty(), ValueError, "Dataset: xs is empty (a model takes at least one input)");
  return xs[0];
}

}  // namespace

Dataset::Dataset(Tensor x, Tensor y, Tensor sample_weight) {
  KILN_CHECK(x.defined() && x.ndim() >= 1, ValueError,
             "Dataset: x must be a tensor with a leading example axis, got ",
             x.defined() ? x.shape().str() : std::string("an undefined tensor"));
  const std::int64_t n = x.size(0);
  KILN_CHECK(!y.defined() || (y.ndim() >= 1 && y.size(0) == n), ShapeError,
             "Dataset: x and y must hold the same number of examples, got x ", x.shape(), " and y ",
             y.defined() ? y.shape().str() : std::string());
  KILN_CHECK(!sample_weight.defined() || (sample_weight.ndim() == 1 && sample_weight.size(0) == n),
             ShapeError, "Dataset: sample_weight must have shape (", n, ",) for x ", x.shape(),
             ", got ", sample_weight.defined() ? sample_weight.shape().str() : std::string());
  x_ = to_host(x);
  if (y.defined()) y_ = to_host(y);
  if (sample_weight.defined()) sample_weight_ = to_host(sample_weight);
  size_ = n;
}

Dataset::Dataset(std::vector<Tensor> xs, std::vector<Tensor> ys, Tensor sample_weight)
    : Dataset(first_input(xs), ys.empty() ? Tensor() : ys[0], std::move(sample_weight)) {
  const Tensor& x0 = xs[0];
  auto add = [&](const std::vector<Tensor>& list, const char* what, std::vector<Tensor>& dst) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Tensor& t = list[i];
      KILN_CHECK(t.defined() && t.ndim() >= 1 && t.size(0) == size_, ShapeError, "Dataset: ", what, "[", i,
                 "] must hold the ", size_, " examples of x[0] (shape ", x0.shape(), "), got ",
                 t.defined() ? t.shape().str() : std::string("an undefined tensor"));
      if (i > 0) dst.push_back(to_host(t));
    }
  };
  add(xs, "x", more_x_);
  add(ys, "y", more_y_);
}

Dataset::Dataset(std::shared_ptr<const Reader> reader) : reader_(std::move(reader)) {
  KILN_CHECK(reader_ != nullptr, ValueError, "Dataset: the reader is null");
  size_ = reader_->size();
  KILN_CHECK(size_ >= 0, ValueError, "Dataset: the reader reports ", size_, " examples");
}

std::int64_t Dataset::size() const { return size_; }

bool Dataset::has_y() const { return reader_ ? reader_->has_y() : y_.defined(); }

bool Dataset::has_sample_weight() const {
  return reader_ ? reader_->has_sample_weight() : sample_weight_.defined();
}

Dataset Dataset::slice(std::int64_t start, std::int64_t stop) const {
  auto clamp = [&](std::int64_t i) {
    if (i < 0) i += size_;
    return std::clamp<std::int64_t>(i, 0, size_);
  };
  const std::int64_t lo = clamp(start);
  const std::int64_t hi = std::max(lo, clamp(stop));
  Dataset out = *this;
  out.size_ = hi - lo;
  if (reader_) {
    out.start_ = start_ + lo;
    return out;
  }
  out.x_ = x_.slice(0, lo, hi);
  if (y_.defined()) out.y_ = y_.slice(0, lo, hi);
  if (sample_weight_.defined()) out.sample_weight_ = sample_weight_.slice(0, lo, hi);
  for (auto& t : out.more_x_) t = t.slice(0, lo, hi);
  for (auto& t : out.more_y_) t = t.slice(0, lo, hi);
  return out;
}

Batch Dataset::gather(std::span<const std::int64_t> indices) const {
  for (std::size_t i = 0; i < indices.size(); ++i) {
    KILN_CHECK(indices[i] >= 0 && indices[i] < size_, IndexError, "Dataset::gather: index ",
               indices[i], " (position ", i, ") is out of range for ", size_, " examples");
  }
  if (reader_) {
    std::vector<std::int64_t> shifted(indices.begin(), indices.end());
    for (auto& i : shifted) i += start_;
    Batch b = reader_->gather(shifted);
    check_reader_batch(b, indices.size());
    return b;
  }
  Batch b;
  b.x = gather_rows(x_, indices);
  if (y_.defined()) b.y = gather_rows(y_, indices);
  if (sample_weight_.defined()) b.sample_weight = gather_rows(sample_weight_, indices);
  for (const auto& t : more_x_) b.more_x.push_back(gather_rows(t, indices));
  for (const auto& t : more_y_) b.more_y.push_back(gather_rows(t, indices));
  return b;
}

}  // namespace kiln::data
