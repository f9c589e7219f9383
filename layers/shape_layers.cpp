// Flatten, Reshape, Permute (see shape_layers.h). All are views where strides allow.
#include "kiln/layers/shape_layers.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "kiln/layers/registry.h"

namespace kiln::layers {

using nlohmann::json;

namespace {
// Product of the non-batch extents, or -1 when one is unknown.
std::int64_t feature_count(const Shape& s) {
  std::int64_t n = 1;
  for (int i = 1; i < s.ndim(); ++i) {
    if (s[i] < 0) return -1;
    n *= s[i];
  }
  return n;
}
}  // namespace

// ---- Flatten ----

FlattenLayer::FlattenLayer(ShapeLayerOptions options) : Layer("Flatten", std::move(options)) {}

Shape FlattenLayer::compute_output_shape(const Shape& s) const {
  KILN_CHECK(s.ndim() >= 1, ShapeError, name(), ": expected input with a batch axis, got ", shape_str(s));
  return Shape{s[0], feature_count(s)};
}

Tensor FlattenLayer::call(const Tensor& x, bool) {
  return x.reshape(compute_output_shape(x.shape()));
}

json FlattenLayer::get_config() const {
  json c = Layer::get_config();
  c["data_format"] = "channels_last";
  return c;
}

Ref<FlattenLayer> Flatten(ShapeLayerOptions options) { return std::make_shared<FlattenLayer>(std::move(options)); }

// ---- Reshape ----

ReshapeLayer::ReshapeLayer(std::vector<std::int64_t> target_shape, ShapeLayerOptions options)
    : Layer("Reshape", std::move(options)), target_shape_(std::move(target_shape)) {
  KILN_CHECK(static_cast<int>(target_shape_.size()) < Shape::kMaxDims, ShapeError, name(),
             ": target_shape has too many axes (", target_shape_.size(), ")");
  int unknown = 0;
  for (std::int64_t d : target_shape_) {
    KILN_CHECK(d > 0 || d == -1, ShapeError, name(), ": target_shape extents must be positive or -1, got ",
               shape_str(Shape(std::span<const std::int64_t>(target_shape_))));
    unknown += d == -1;
  }
  KILN_CHECK(unknown <= 1, ShapeError, name(), ": at most one -1 in target_shape, got ",
             shape_str(Shape(std::span<const std::int64_t>(target_shape_))));
}

Shape ReshapeLayer::resolve(const Shape& input_shape) const {
  KILN_CHECK(input_shape.ndim() >= 1, ShapeError, name(), ": expected input with a batch axis, got ",
             shape_str(input_shape));
  Shape out{input_shape[0]};
  std::int64_t known = 1;
  int unknown_at = -1;
  for (std::size_t i = 0; i < target_shape_.size(); ++i) {
    out.push_back(target_shape_[i]);
    if (target_shape_[i] == -1) {
      unknown_at = static_cast<int>(i) + 1;
    } else {
      known *= target_shape_[i];
    }
  }
  const std::int64_t n = feature_count(input_shape);
  if (n < 0) return out;  // input features unknown: the -1 stays unknown
  const Shape target{std::span<const std::int64_t>(target_shape_)};
  if (unknown_at >= 0) {
    KILN_CHECK(known > 0 && n % known == 0, ShapeError, name(), ": cannot reshape input ",
               shape_str(input_shape), " to target_shape ", shape_str(target));
    out[unknown_at] = n / known;
  } else {
    KILN_CHECK(n == known, ShapeError, name(), ": cannot reshape input ", shape_str(input_shape),
               " (", n, " features) to target_shape ", shape_str(target), " (", known, " features)");
  }
  return out;
}

Shape ReshapeLayer::compute_output_shape(const Shape& input_shape) const { return resolve(input_shape); }

Tensor ReshapeLayer::call(const Tensor& x, bool) { return x.reshape(resolve(x.shape())); }

json ReshapeLayer::get_config() const {
  json c = Layer::get_config();
  c["target_shape"] = target_shape_;
  return c;
}

Ref<ReshapeLayer> Reshape(std::vector<std::int64_t> target_shape, ShapeLayerOptions options) {
  return std::make_shared<ReshapeLayer>(std::move(target_shape), std::move(options));
}

// ---- Permute ----

PermuteLayer::PermuteLayer(std::vector<std::int64_t> dims, ShapeLayerOptions options)
    : Layer("Permute", std::move(options)), dims_(std::move(dims)) {
  std::vector<std::int64_t> sorted = dims_;
  std::sort(sorted.begin(), sorted.end());
  bool ok = !dims_.empty() && static_cast<int>(dims_.size()) < Shape::kMaxDims;
  for (std::size_t i = 0; ok && i < sorted.size(); ++i) ok = sorted[i] == static_cast<std::int64_t>(i) + 1;
  KILN_CHECK(ok, ValueError, name(), ": dims must be a permutation of 1..", dims_.size(),
             " (axis 0 is the batch), got ", shape_str(Shape(std::span<const std::int64_t>(dims_))));
}

Shape PermuteLayer::compute_output_shape(const Shape& s) const {
  KILN_CHECK(s.ndim() == static_cast<int>(dims_.size()) + 1, ShapeError, name(), ": dims ",
             shape_str(Shape(std::span<const std::int64_t>(dims_))), " need input of rank ", dims_.size() + 1,
             ", got ", shape_str(s));
  Shape out{s[0]};
  for (std::int64_t d : dims_) out.push_back(s[static_cast<int>(d)]);
  return out;
}

Tensor PermuteLayer::call(const Tensor& x, bool) {
  (void)compute_output_shape(x.shape());  // checks the rank
  std::vector<std::int64_t> axes{0};
  axes.insert(axes.end(), dims_.begin(), dims_.end());
  return x.permute(std::span<const std::int64_t>(axes));
}

json PermuteLayer::get_config() const {
  json c = Layer::get_config();
  c["dims"] = dims_;
  return c;
}

Ref<PermuteLayer> Permute(std::vector<std::int64_t> dims, ShapeLayerOptions options) {
  return std::make_shared<PermuteLayer>(std::move(dims), std::move(options));
}

}  // namespace kiln::layers
