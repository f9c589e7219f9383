// Variable: the shared state behind a layer weight (see variable.h).
#include "kiln/layers/variable.h"

#include "kiln/core/autograd_meta.h"
#include "kiln/core/error.h"

namespace kiln::layers {

struct Variable::State {
  std::string name;
  Tensor value;
  bool trainable = true;
  bool frozen = false;
  regularizers::RegularizerPtr regularizer;
  constraints::ConstraintPtr constraint;
};

Variable::Variable(std::string name, Tensor value, bool trainable,
                   regularizers::RegularizerPtr regularizer, constraints::ConstraintPtr constraint)
    : state_(std::make_shared<State>()) {
  KILN_CHECK(value.defined(), ValueError, "Variable '", name, "': the value is undefined");
  state_->name = std::move(name);
  state_->value = value.detach();
  state_->trainable = trainable;
  state_->regularizer = std::move(regularizer);
  state_->constraint = std::move(constraint);
  update_requires_grad();
}

namespace {
void check_defined(const void* state) {
  KILN_CHECK(state != nullptr, ValueError, "Variable: undefined (default-constructed) variable");
}
}  // namespace

const std::string& Variable::name() const {
  check_defined(state_.get());
  return state_->name;
}
const Tensor& Variable::value() const {
  check_defined(state_.get());
  return state_->value;
}
bool Variable::trainable() const {
  check_defined(state_.get());
  return state_->trainable;
}
void Variable::set_trainable(bool trainable) {
  check_defined(state_.get());
  state_->trainable = trainable;
  update_requires_grad();
}
bool Variable::frozen() const {
  check_defined(state_.get());
  return state_->frozen;
}
void Variable::set_frozen(bool frozen) {
  check_defined(state_.get());
  state_->frozen = frozen;
  update_requires_grad();
}
const regularizers::RegularizerPtr& Variable::regularizer() const {
  check_defined(state_.get());
  return state_->regularizer;
}
const constraints::ConstraintPtr& Variable::constraint() const {
  check_defined(state_.get());
  return state_->constraint;
}

void Variable::update_requires_grad() const {
  // Only floating values can carry gradients (an integer step counter cannot).
  const bool wants = state_->trainable && !state_->frozen && is_floating(state_->value.dtype());
  if (state_->value.requires_grad() != wants) state_->value.requires_grad_(wants);
}

void Variable::assign(const Tensor& src) const {
  check_defined(state_.get());
  KILN_CHECK(src.shape() == shape(), ShapeError, "Variable '", name(), "': cannot assign shape ",
             src.shape(), " to shape ", shape());
  NoGradGuard no_grad;
  // The leaf itself is written in place: copy_ on a leaf that requires grad is an
  // in-place change autograd would reject, so write through a detached alias.
  Tensor alias = state_->value.detach();
  alias.copy_(src);
}

void Variable::set_value(const Tensor& value) const {
  check_defined(state_.get());
  KILN_CHECK(value.defined() && value.shape() == shape(), ShapeError, "Variable '", name(),
             "': set_value expects shape ", shape(), ", got ",
             value.defined() ? value.shape().str() : std::string("an undefined tensor"));
  const Tensor src = value.detach().contiguous();
  Tensor& own = state_->value;
  if (own.grad().defined()) own.set_grad(Tensor());
  TensorImpl& impl = own.unsafe_impl();
  impl.storage = src.storage();
  impl.offset = src.offset();
  impl.strides = src.strides();
  impl.dtype = src.dtype();
  update_requires_grad();
}

void Variable::bind_value(const Tensor& value) const {
  check_defined(state_.get());
  KILN_CHECK(value.defined() && value.shape() == shape(), ShapeError, "Variable '", name(),
             "': bind_value expects shape ", shape(), ", got ",
             value.defined() ? value.shape().str() : std::string("an undefined tensor"));
  state_->value = value;
}

Tensor Variable::regularization_loss() const {
  check_defined(state_.get());
  if (!state_->regularizer) return Tensor();
  return (*state_->regularizer)(state_->value);
}

void Variable::apply_constraint() const {
  check_defined(state_.get());
  if (!state_->constraint) return;
  Tensor projected;
  {
    NoGradGuard no_grad;
    projected = (*state_->constraint)(state_->value.detach());
  }
  assign(projected);
}

}  // namespace kiln::layers
