// Variable: a layer's weight, as Keras' keras.Variable. A handle (copies share one
// variable) holding a name ("dense_1/kernel", Keras' variable path), a leaf Tensor value
// that requires grad while the variable is trainable and its layer is, the trainable flag,
// and an optional regularizer and constraint. Identity (operator==) is the shared state,
// which is how models deduplicate weights of shared layers.
#pragma once

#include <memory>
#include <string>

#include "kiln/core/tensor.h"
#include "kiln/layers/regularizers.h"

namespace kiln::layers {

class Variable {
 public:
  Variable() = default;  // undefined; defined() is false
  // `value` becomes the variable's leaf (detached from any history).
  Variable(std::string name, Tensor value, bool trainable = true,
           regularizers::RegularizerPtr regularizer = nullptr,
           constraints::ConstraintPtr constraint = nullptr);

  bool defined() const { return state_ != nullptr; }
  const std::string& name() const;  // "dense_1/kernel"
  // The leaf tensor the layer computes with and the optimizer updates in place.
  const Tensor& value() const;
  Tensor grad() const { return value().grad(); }
  const Shape& shape() const { return value().shape(); }
  DType dtype() const { return value().dtype(); }
  Device device() const { return value().device(); }
  std::int64_t numel() const { return value().numel(); }

  // The variable's own flag (Keras' variable.trainable): false for statistics such as
  // BatchNormalization's moving mean. A non-trainable layer freezes all its variables
  // without changing this flag (see Layer::set_trainable).
  bool trainable() const;
  void set_trainable(bool trainable);
  // Whether the value requires grad: trainable() and not frozen by its layer.
  bool frozen() const;
  void set_frozen(bool frozen);

  const regularizers::RegularizerPtr& regularizer() const;
  const constraints::ConstraintPtr& constraint() const;

  // Copies `src` (same shape; any dtype or device, converted) into the value in place,
  // outside autograd: loading weights, moving averages, constraints. Optimizer state
  // that refers to value() stays valid.
  void assign(const Tensor& src) const;
  // Makes `value` (same shape; its data, dtype and device) the variable's data while
  // keeping the value tensor itself, as torch's `param.data = value` does: every handle
  // taken from value() (a compiled model's parameter list, an optimizer's state keyed by
  // it) follows a move to another device or dtype, so training continues with its
  // optimizer moments. A gradient the value held (old device or dtype) is dropped;
  // requires_grad stays as the flags say. Views taken of the old value keep the old data.
  void set_value(const Tensor& value) const;

  // Makes `value` itself (same shape; not detached, requires_grad left as it is) the
  // value: for gradient checkers that differentiate a layer with respect to a weight by
  // handing it their own leaf. Undo by binding the previous value() again.
  void bind_value(const Tensor& value) const;

  // The regularizer's penalty on the value (undefined Tensor when there is none).
  Tensor regularization_loss() const;
  // Projects the value with the constraint in place (nothing when there is none).
  void apply_constraint() const;

  friend bool operator==(const Variable& a, const Variable& b) { return a.state_ == b.state_; }
  const void* id() const { return state_.get(); }

 private:
  struct State;
  std::shared_ptr<State> state_;
  void update_requires_grad() const;
};

}  // namespace kiln::layers
