// Keras' normalization layers (see normalization.h).
#include "kiln/layers/normalization.h"

#include <algorithm>
#include <numeric>

#include <nlohmann/json.hpp>

#include "kiln/kernels/binary.h"
#include "kiln/kernels/normalization.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/unary.h"
#include "kiln/layers/image_common.h"

namespace kiln::layers {

using nlohmann::json;

namespace {

// The permutation moving `axes` (in their order) after every other axis (kept in order).
std::vector<std::int64_t> axes_last(int rank, const std::vector<std::int64_t>& axes) {
  std::vector<std::int64_t> perm;
  for (std::int64_t a = 0; a < rank; ++a) {
    if (std::find(axes.begin(), axes.end(), a) == axes.end()) perm.push_back(a);
  }
  perm.insert(perm.end(), axes.begin(), axes.end());
  return perm;
}

std::vector<std::int64_t> inverse(const std::vector<std::int64_t>& perm) {
  std::vector<std::int64_t> inv(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inv[static_cast<std::size_t>(perm[i])] = static_cast<std::int64_t>(i);
  return inv;
}

bool is_identity(const std::vector<std::int64_t>& perm) {
  for (std::size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] != static_cast<std::int64_t>(i)) return false;
  }
  return true;
}

Tensor value_or_undefined(const Variable& v) { return v.defined() ? v.value() : Tensor(); }

}  // namespace

// ---- BatchNormalization ----

BatchNormalizationLayer::BatchNormalizationLayer(BatchNormalizationOptions options)
    : Layer("BatchNormalization", common_options(options)), options_(std::move(options)) {
  KILN_CHECK(!options_.synchronized, ValueError, name(),
             ": synchronized (cross-replica) batch statistics are not supported; use synchronized = false");
  KILN_CHECK(options_.momentum >= 0 && options_.momentum <= 1, ValueError, name(), ": momentum must be in [0, 1], got ",
             options_.momentum);
  KILN_CHECK(options_.epsilon > 0, ValueError, name(), ": epsilon must be positive, got ", options_.epsilon);
  options_.beta_initializer = image::resolve(options_.beta_initializer, "zeros");
  options_.gamma_initializer = image::resolve(options_.gamma_initializer, "ones");
  options_.moving_mean_initializer = image::resolve(options_.moving_mean_initializer, "zeros");
  options_.moving_variance_initializer = image::resolve(options_.moving_variance_initializer, "ones");
  options_.beta_regularizer = options_.beta_regularizer.resolve();
  options_.gamma_regularizer = options_.gamma_regularizer.resolve();
  options_.beta_constraint = options_.beta_constraint.resolve();
  options_.gamma_constraint = options_.gamma_constraint.resolve();
}

int BatchNormalizationLayer::feature_axis(const Shape& s) const {
  KILN_CHECK(s.ndim() >= 2, ShapeError, name(), ": expected an input of rank >= 2 (batch, ..., features), got ",
             shape_str(s));
  KILN_CHECK(options_.axis >= -s.ndim() && options_.axis < s.ndim(), ShapeError, name(), ": axis ", options_.axis,
             " is out of range for input ", shape_str(s));
  return static_cast<int>(options_.axis < 0 ? options_.axis + s.ndim() : options_.axis);
}

void BatchNormalizationLayer::check_input(const Shape& s) const {
  const int axis = feature_axis(s);
  const std::int64_t features = moving_mean_.defined() ? moving_mean_.shape()[0] : -1;
  KILN_CHECK(features < 0 || s[axis] == features, ShapeError, name(), ": expected input with ", features,
             " features on axis ", axis, ", got ", shape_str(s));
}

void BatchNormalizationLayer::build(const Shape& input_shape) {
  const int axis = feature_axis(input_shape);
  const std::int64_t c = input_shape[axis];
  KILN_CHECK(c > 0, ShapeError, name(), ": the feature axis ", axis, " must be known to build, got ",
             shape_str(input_shape));
  const auto& o = options_;
  if (o.scale) {
    gamma_ = add_weight("gamma", {c},
                        {.initializer = o.gamma_initializer, .regularizer = o.gamma_regularizer,
                         .constraint = o.gamma_constraint});
  }
  if (o.center) {
    beta_ = add_weight("beta", {c},
                       {.initializer = o.beta_initializer, .regularizer = o.beta_regularizer,
                        .constraint = o.beta_constraint});
  }
  moving_mean_ = add_weight("moving_mean", {c}, {.initializer = o.moving_mean_initializer, .trainable = false});
  moving_variance_ =
      add_weight("moving_variance", {c}, {.initializer = o.moving_variance_initializer, .trainable = false});
}

Tensor BatchNormalizationLayer::call(const Tensor& x, bool training) {
  check_input(x.shape());
  // Keras: a frozen BatchNormalization runs in inference mode even when training.
  const BatchNormOptions o{.training = training && trainable(), .momentum = options_.momentum,
                           .epsilon = options_.epsilon};
  const int axis = feature_axis(x.shape());
  // The op normalizes per last axis: move another feature axis there and back (views).
  const std::vector<std::int64_t> perm = axes_last(x.ndim(), {axis});
  const bool moved = !is_identity(perm);
  const Tensor y = batch_norm(moved ? x.permute(perm) : x, value_or_undefined(gamma_), value_or_undefined(beta_),
                              moving_mean_.value(), moving_variance_.value(), o);
  return moved ? y.permute(inverse(perm)) : y;
}

Shape BatchNormalizationLayer::compute_output_shape(const Shape& input_shape) const {
  check_input(input_shape);
  return input_shape;
}

json BatchNormalizationLayer::get_config() const {
  json c = Layer::get_config();
  const auto& o = options_;
  c["axis"] = o.axis;
  c["momentum"] = o.momentum;
  c["epsilon"] = o.epsilon;
  c["center"] = o.center;
  c["scale"] = o.scale;
  c["beta_initializer"] = image::to_json(o.beta_initializer.resolve());
  c["gamma_initializer"] = image::to_json(o.gamma_initializer.resolve());
  c["moving_mean_initializer"] = image::to_json(o.moving_mean_initializer.resolve());
  c["moving_variance_initializer"] = image::to_json(o.moving_variance_initializer.resolve());
  c["beta_regularizer"] = image::to_json(o.beta_regularizer.resolve());
  c["gamma_regularizer"] = image::to_json(o.gamma_regularizer.resolve());
  c["beta_constraint"] = image::to_json(o.beta_constraint.resolve());
  c["gamma_constraint"] = image::to_json(o.gamma_constraint.resolve());
  c["synchronized"] = o.synchronized;
  return c;
}

Ref<BatchNormalizationLayer> BatchNormalization(BatchNormalizationOptions options) {
  return std::make_shared<BatchNormalizationLayer>(std::move(options));
}

// ---- LayerNormalization ----

LayerNormalizationLayer::LayerNormalizationLayer(LayerNormalizationOptions options)
    : Layer("LayerNormalization", common_options(options)), options_(std::move(options)) {
  KILN_CHECK(!options_.axis.axes.empty(), ValueError, name(), ": axis must name at least one axis");
  KILN_CHECK(options_.epsilon > 0, ValueError, name(), ": epsilon must be positive, got ", options_.epsilon);
  options_.beta_initializer = image::resolve(options_.beta_initializer, "zeros");
  options_.gamma_initializer = image::resolve(options_.gamma_initializer, "ones");
  options_.beta_regularizer = options_.beta_regularizer.resolve();
  options_.gamma_regularizer = options_.gamma_regularizer.resolve();
  options_.beta_constraint = options_.beta_constraint.resolve();
  options_.gamma_constraint = options_.gamma_constraint.resolve();
}

std::vector<std::int64_t> LayerNormalizationLayer::normalized_axes(const Shape& s) const {
  std::vector<std::int64_t> axes;
  for (std::int64_t a : options_.axis.axes) {
    KILN_CHECK(a >= -s.ndim() && a < s.ndim(), ShapeError, name(), ": axis ", a, " is out of range for input ",
               shape_str(s));
    const std::int64_t p = a < 0 ? a + s.ndim() : a;
    KILN_CHECK(std::find(axes.begin(), axes.end(), p) == axes.end(), ValueError, name(), ": axis ", a,
               " is listed twice");
    axes.push_back(p);
  }
  // Once built, the normalized extents must match the weights' (gamma or beta).
  const Variable& w = gamma_.defined() ? gamma_ : beta_;
  if (w.defined()) {
    Shape extents;
    for (std::int64_t a : axes) extents.push_back(s[static_cast<int>(a)]);
    KILN_CHECK(extents == w.shape(), ShapeError, name(), ": expected extents ", shape_str(w.shape()),
               " on the normalized axes, got ", shape_str(extents), " in input ", shape_str(s));
  }
  return axes;
}

void LayerNormalizationLayer::build(const Shape& input_shape) {
  const std::vector<std::int64_t> axes = normalized_axes(input_shape);
  Shape param;
  for (std::int64_t a : axes) {
    KILN_CHECK(input_shape[static_cast<int>(a)] > 0, ShapeError, name(), ": normalized axis ", a,
               " must be known to build, got ", shape_str(input_shape));
    param.push_back(input_shape[static_cast<int>(a)]);
  }
  const auto& o = options_;
  if (o.scale || o.rms_scaling) {
    gamma_ = add_weight("gamma", param,
                        {.initializer = o.gamma_initializer, .regularizer = o.gamma_regularizer,
                         .constraint = o.gamma_constraint});
  }
  if (o.center && !o.rms_scaling) {
    beta_ = add_weight("beta", param,
                       {.initializer = o.beta_initializer, .regularizer = o.beta_regularizer,
                        .constraint = o.beta_constraint});
  }
}

Tensor LayerNormalizationLayer::call(const Tensor& x, bool) {
  const std::vector<std::int64_t> axes = normalized_axes(x.shape());
  // The op normalizes over the last axis: move the normalized axes last (in the order
  // given, matching the weights' layout) and flatten them: (rest..., P).
  const std::vector<std::int64_t> perm = axes_last(x.ndim(), axes);
  const Tensor xp = x.permute(perm);
  Shape flat;
  std::int64_t p = 1;
  for (int i = 0; i < xp.ndim(); ++i) {
    if (i < xp.ndim() - static_cast<int>(axes.size())) {
      flat.push_back(xp.size(i));
    } else {
      p *= xp.size(i);
    }
  }
  flat.push_back(p);
  const Tensor xf = xp.reshape(flat);
  const Tensor gamma = gamma_.defined() ? gamma_.value().reshape({p}) : Tensor();
  const Tensor beta = beta_.defined() ? beta_.value().reshape({p}) : Tensor();
  Tensor yf;
  if (options_.rms_scaling) {
    yf = mul(mul(xf, rsqrt(add(var(xf, {-1}, /*keepdims=*/true), options_.epsilon))), gamma);
  } else {
    yf = layer_norm(xf, gamma, beta, options_.epsilon);
  }
  return is_identity(perm) ? yf.reshape(x.shape()) : yf.reshape(xp.shape()).permute(inverse(perm));
}

Shape LayerNormalizationLayer::compute_output_shape(const Shape& input_shape) const {
  (void)normalized_axes(input_shape);
  return input_shape;
}

json LayerNormalizationLayer::get_config() const {
  json c = Layer::get_config();
  const auto& o = options_;
  c["axis"] = o.axis.is_list ? json(o.axis.axes) : json(o.axis.axes[0]);
  c["epsilon"] = o.epsilon;
  c["center"] = o.center;
  c["scale"] = o.scale;
  c["rms_scaling"] = o.rms_scaling;
  c["beta_initializer"] = image::to_json(o.beta_initializer.resolve());
  c["gamma_initializer"] = image::to_json(o.gamma_initializer.resolve());
  c["beta_regularizer"] = image::to_json(o.beta_regularizer.resolve());
  c["gamma_regularizer"] = image::to_json(o.gamma_regularizer.resolve());
  c["beta_constraint"] = image::to_json(o.beta_constraint.resolve());
  c["gamma_constraint"] = image::to_json(o.gamma_constraint.resolve());
  return c;
}

Ref<LayerNormalizationLayer> LayerNormalization(LayerNormalizationOptions options) {
  return std::make_shared<LayerNormalizationLayer>(std::move(options));
}

}  // namespace kiln::layers
