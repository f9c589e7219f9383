// Keras <-> kiln convolution kernel layouts (see conv_layout.h and Note [Kernel layout] in conv.h).
#include "kiln/layers/conv_layout.h"

#include <nlohmann/json.hpp>

#include "kiln/core/autograd_meta.h"

namespace kiln::layers {

using nlohmann::json;

// ---- kernel layout conversion (Note [Kernel layout]) ----

Tensor kernel_from_keras(const Tensor& k) {
  KILN_CHECK(k.ndim() == 4, ShapeError, "kernel_from_keras: expected a Keras kernel (kh, kw, a, b), got ", k.shape());
  return k.permute({3, 0, 1, 2}).clone();  // (b, kh, kw, a)
}

Tensor kernel_to_keras(const Tensor& k) {
  KILN_CHECK(k.ndim() == 4, ShapeError, "kernel_to_keras: expected a kiln kernel (b, kh, kw, a), got ", k.shape());
  return k.permute({1, 2, 3, 0}).clone();  // (kh, kw, a, b)
}

Tensor depthwise_kernel_from_keras(const Tensor& k) {
  KILN_CHECK(k.ndim() == 4, ShapeError,
             "depthwise_kernel_from_keras: expected a Keras depthwise kernel (kh, kw, in, dm), got ", k.shape());
  const std::int64_t kh = k.size(0), kw = k.size(1);
  // (kh, kw, in, dm) -> (kh, kw, in * dm): channel c * dm + m, as the grouped conv orders them.
  return k.reshape({kh, kw, k.size(2) * k.size(3)}).permute({2, 0, 1}).unsqueeze(3).clone();
}

Tensor depthwise_kernel_to_keras(const Tensor& k, std::int64_t depth_multiplier) {
  KILN_CHECK(k.ndim() == 4 && k.size(3) == 1 && depth_multiplier > 0 && k.size(0) % depth_multiplier == 0,
             ShapeError, "depthwise_kernel_to_keras: expected a kiln depthwise kernel (in * dm, kh, kw, 1) with dm = ",
             depth_multiplier, ", got ", k.shape());
  const std::int64_t in = k.size(0) / depth_multiplier;
  return k.squeeze(3).permute({1, 2, 0}).reshape({k.size(1), k.size(2), in, depth_multiplier}).clone();
}

namespace {

Tensor to_kiln(const KernelLayout& layout, const Tensor& keras) {
  return layout.depthwise ? depthwise_kernel_from_keras(keras) : kernel_from_keras(keras);
}
Tensor to_keras(const KernelLayout& layout, const Tensor& kiln) {
  return layout.depthwise ? depthwise_kernel_to_keras(kiln, layout.depth_multiplier) : kernel_to_keras(kiln);
}

// Draws with the user's initializer in Keras' shape (its fans and its values), then
// permutes into kiln's layout.
class KerasLayoutInitializer : public initializers::Initializer {
 public:
  KerasLayoutInitializer(initializers::InitializerPtr inner, Shape keras_shape, KernelLayout layout)
      : inner_(std::move(inner)), keras_shape_(keras_shape), layout_(layout) {}
  Tensor operator()(const Shape& shape, TensorOptions options) const override {
    Tensor out = to_kiln(layout_, (*inner_)(keras_shape_, options));
    KILN_ASSERT(out.shape() == shape, "kernel initializer: Keras shape ", keras_shape_, " maps to ", out.shape(),
                ", the layer asked for ", shape);
    return out;
  }
  std::string class_name() const override { return inner_->class_name(); }
  json get_config() const override { return inner_->get_config(); }

 private:
  initializers::InitializerPtr inner_;
  Shape keras_shape_;
  KernelLayout layout_;
};

// Applies the user's constraint to the kernel seen in Keras' layout.
class KerasLayoutConstraint : public constraints::Constraint {
 public:
  KerasLayoutConstraint(constraints::ConstraintPtr inner, KernelLayout layout)
      : inner_(std::move(inner)), layout_(layout) {}
  Tensor operator()(const Tensor& w) const override {
    NoGradGuard no_grad;  // a projection after the optimizer step, outside the graph
    return to_kiln(layout_, (*inner_)(to_keras(layout_, w)));
  }
  std::string class_name() const override { return inner_->class_name(); }
  json get_config() const override { return inner_->get_config(); }

 private:
  constraints::ConstraintPtr inner_;
  KernelLayout layout_;
};

}  // namespace

initializers::InitializerPtr keras_layout_initializer(initializers::InitializerPtr inner, const Shape& keras_shape,
                                                      KernelLayout layout) {
  return std::make_shared<KerasLayoutInitializer>(std::move(inner), keras_shape, layout);
}

constraints::ConstraintPtr keras_layout_constraint(constraints::ConstraintPtr inner, KernelLayout layout) {
  return inner ? std::make_shared<KerasLayoutConstraint>(std::move(inner), layout) : nullptr;
}

}  // namespace kiln::layers
