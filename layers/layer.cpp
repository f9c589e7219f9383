// Layer: building, symbolic and eager calls, weights, device moves (see layer.h).
#include "kiln/layers/layer.h"

#include <atomic>
#include <sstream>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/layers/registry.h"

namespace kiln::layers {

// ---- KerasTensor ----

KerasTensor::KerasTensor(std::shared_ptr<const KerasNode> node, int index)
    : node_(std::move(node)), index_(index) {
  KILN_ASSERT(node_ && index_ >= 0 && index_ < static_cast<int>(node_->output_shapes.size()),
              "KerasTensor: output ", index_, " of a node with ",
              node_ ? node_->output_shapes.size() : 0, " outputs");
}

namespace {
const KerasNode& checked_node(const std::shared_ptr<const KerasNode>& node) {
  KILN_CHECK(node != nullptr, ValueError, "KerasTensor: undefined (default-constructed) symbolic tensor");
  return *node;
}
}  // namespace

const Shape& KerasTensor::shape() const { return checked_node(node_).output_shapes[index_]; }
DType KerasTensor::dtype() const { return checked_node(node_).output_dtypes[index_]; }
const std::shared_ptr<Layer>& KerasTensor::layer() const { return checked_node(node_).layer; }

std::string KerasTensor::str() const {
  if (!node_) return "<KerasTensor undefined>";
  std::ostringstream os;
  os << "<KerasTensor shape=" << shape_str(shape()) << ", dtype=" << name(dtype())
     << ", source=" << node_->layer->name() << "[" << node_->node_index << "][" << index_ << "]>";
  return os.str();
}

// ---- Layer ----

Layer::Layer(std::string class_name, LayerOptions options)
    : class_name_(std::move(class_name)),
      name_(options.name.empty() ? unique_name(to_snake_case(class_name_)) : std::move(options.name)),
      dtype_(options.dtype.value_or(DType::float32)),
      trainable_(options.trainable),
      declared_input_shape_(std::move(options.input_shape)) {
  KILN_CHECK(is_floating(dtype_), TypeError, name_, ": a layer's dtype must be floating, got ", dtype_);
  if (!declared_input_shape_.empty()) (void)batch_shape(declared_input_shape_);  // validates
}

Layer::~Layer() = default;

void Layer::build(const std::vector<Shape>& input_shapes) {
  check_input_count(input_shapes.size(), 1);
  build(input_shapes[0]);
}

void Layer::build(const Shape&) {}

std::vector<Tensor> Layer::call(const std::vector<Tensor>& inputs, bool training) {
  check_input_count(inputs.size(), 1);
  return {call(inputs[0], training)};
}

Tensor Layer::call(const Tensor&, bool) {
  KILN_THROW(ValueError, name_, " (", class_name_,
             "): the layer overrides neither call(const Tensor&, bool) nor "
             "call(const std::vector<Tensor>&, bool)");
}

std::vector<Shape> Layer::compute_output_shape(const std::vector<Shape>& input_shapes) const {
  check_input_count(input_shapes.size(), 1);
  return {compute_output_shape(input_shapes[0])};
}

Shape Layer::compute_output_shape(const Shape& input_shape) const { return input_shape; }

std::vector<DType> Layer::compute_output_dtype(const std::vector<DType>&, std::size_t num_outputs) const {
  return std::vector<DType>(num_outputs, dtype_);
}

nlohmann::json Layer::get_config() const {
  nlohmann::json config;
  config["name"] = name_;
  config["trainable"] = trainable_;
  config["dtype"] = dtype_to_json(dtype_);
  return config;
}

void Layer::check_input_count(std::size_t got, std::size_t expected) const {
  KILN_CHECK(got == expected, ShapeError, name_, ": expected ", expected, " input",
             expected == 1 ? "" : "s", ", got ", got);
}

void Layer::maybe_build(const std::vector<Shape>& input_shapes) {
  if (built_) return;
  std::vector<Shape> shapes;
  shapes.reserve(input_shapes.size());
  for (const Shape& s : input_shapes) shapes.push_back(with_unknown_batch(s));
  build(shapes);
  built_input_shapes_ = std::move(shapes);
  built_ = true;
}

void Layer::set_built(const std::vector<Shape>& input_shapes) {
  built_input_shapes_ = input_shapes;
  built_ = true;
}

// ---- calling ----

KerasTensor Layer::operator()(const KerasTensor& x) {
  std::vector<KerasTensor> out = (*this)(std::vector<KerasTensor>{x});
  KILN_CHECK(out.size() == 1, ValueError, name_, ": has ", out.size(),
             " outputs; call it on a list to get them all");
  return out[0];
}

namespace {
std::atomic<std::uint64_t> next_node_id{1};
}  // namespace

Outputs<KerasTensor> Layer::operator()(const std::vector<KerasTensor>& xs) {
  std::shared_ptr<Layer> self = weak_from_this().lock();
  KILN_CHECK(self != nullptr, ValueError, name_,
             ": a layer called on symbolic tensors must be held by a shared_ptr (make it with its "
             "factory, kiln::layers::make_layer, or std::make_shared)");
  KILN_CHECK(!xs.empty(), ValueError, name_, ": called on an empty list of inputs");
  std::vector<Shape> shapes;
  std::vector<DType> dtypes;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    KILN_CHECK(xs[i].defined(), ValueError, name_, ": input ", i, " is an undefined KerasTensor");
    shapes.push_back(xs[i].shape());
    dtypes.push_back(xs[i].dtype());
  }
  maybe_build(shapes);
  std::vector<Shape> out_shapes = compute_output_shape(shapes);
  std::vector<DType> out_dtypes = compute_output_dtype(dtypes, out_shapes.size());
  return make_node(xs, std::move(out_shapes), std::move(out_dtypes));
}

std::vector<KerasTensor> Layer::make_node(std::vector<KerasTensor> inputs, std::vector<Shape> output_shapes,
                                          std::vector<DType> output_dtypes) {
  std::shared_ptr<Layer> self = weak_from_this().lock();
  KILN_CHECK(self != nullptr, ValueError, name_,
             ": a layer called on symbolic tensors must be held by a shared_ptr (make it with its "
             "factory, kiln::layers::make_layer, or std::make_shared)");
  KILN_ASSERT(output_dtypes.size() == output_shapes.size(), name_, ": ", output_dtypes.size(),
              " output dtypes for ", output_shapes.size(), " outputs");
  auto node = std::make_shared<KerasNode>();
  node->layer = std::move(self);
  node->inputs = std::move(inputs);
  node->output_shapes = std::move(output_shapes);
  node->output_dtypes = std::move(output_dtypes);
  node->node_index = num_nodes_++;
  node->id = next_node_id.fetch_add(1);
  std::vector<KerasTensor> out;
  for (std::size_t i = 0; i < node->output_shapes.size(); ++i) out.emplace_back(node, static_cast<int>(i));
  return out;
}

Tensor Layer::operator()(const Tensor& x, bool training) {
  std::vector<Tensor> out = (*this)(std::vector<Tensor>{x}, training);
  KILN_CHECK(out.size() == 1, ValueError, name_, ": has ", out.size(),
             " outputs; call it on a list to get them all");
  return out[0];
}

Outputs<Tensor> Layer::operator()(const std::vector<Tensor>& xs, bool training) {
  KILN_CHECK(!xs.empty(), ValueError, name_, ": called on an empty list of inputs");
  std::vector<Shape> shapes;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    KILN_CHECK(xs[i].defined(), ValueError, name_, ": input ", i, " is undefined");
    shapes.push_back(xs[i].shape());
  }
  maybe_build(shapes);
  // Layers with weights compute where their weights are; weightless ones (Activation,
  // Flatten, a model's InputLayer) run on any device.
  if (!variables_.empty()) {
    const Device dev = variables_.front().device();
    for (std::size_t i = 0; i < xs.size(); ++i) {
      KILN_CHECK(xs[i].device() == dev, DeviceError, name_, ": input ", i, " is on ", xs[i].device(),
                 " but the layer's weights are on ", dev, "; move the layer or model with to(",
                 xs[i].device(), ")");
    }
  }
  if (!autocast_inputs()) return call(xs, training);
  std::vector<Tensor> cast_inputs;
  cast_inputs.reserve(xs.size());
  for (const Tensor& x : xs) {
    cast_inputs.push_back(is_floating(x.dtype()) && x.dtype() != dtype_ ? cast(x, dtype_) : x);
  }
  return call(cast_inputs, training);
}

// ---- weights ----

Variable Layer::add_weight(const std::string& name, const Shape& shape, WeightOptions options) {
  const DType dt = options.dtype.value_or(dtype_);
  const initializers::InitializerPtr init = options.initializer.resolve();
  KILN_CHECK(init != nullptr, ValueError, name_, ": weight '", name, "' has no initializer");
  Tensor value = (*init)(shape, {.dtype = dt, .device = device()});
  Variable v(name_ + "/" + name, value, options.trainable, options.regularizer.resolve(),
             options.constraint.resolve());
  if (!trainable_) v.set_frozen(true);
  variables_.push_back(v);
  return v;
}

void Layer::track_layer(const LayerRef& layer) {
  KILN_CHECK(layer.get() != nullptr, ValueError, name_, ": cannot track an empty layer handle");
  KILN_CHECK(layer.get() != this, ValueError, name_, ": a layer cannot track itself");
  for (const LayerRef& l : sublayers_) {
    if (l == layer) return;
  }
  sublayers_.push_back(layer);
}

void Layer::untrack_layers() { sublayers_.clear(); }

namespace {
void append_unique(std::vector<Variable>& out, std::unordered_set<const void*>& seen,
                   const std::vector<Variable>& vars) {
  for (const Variable& v : vars) {
    if (seen.insert(v.id()).second) out.push_back(v);
  }
}
}  // namespace

std::vector<Variable> Layer::weights() const {
  std::vector<Variable> out;
  std::unordered_set<const void*> seen;
  append_unique(out, seen, variables_);
  for (const LayerRef& l : sublayers_) append_unique(out, seen, l->weights());
  return out;
}

std::vector<Variable> Layer::trainable_weights() const {
  std::vector<Variable> out;
  if (!trainable_) return out;
  std::unordered_set<const void*> seen;
  for (const Variable& v : variables_) {
    if (v.trainable() && seen.insert(v.id()).second) out.push_back(v);
  }
  for (const LayerRef& l : sublayers_) append_unique(out, seen, l->trainable_weights());
  return out;
}

std::vector<Variable> Layer::non_trainable_weights() const {
  if (!trainable_) return weights();
  std::vector<Variable> out;
  std::unordered_set<const void*> seen;
  for (const Variable& v : variables_) {
    if (!v.trainable() && seen.insert(v.id()).second) out.push_back(v);
  }
  for (const LayerRef& l : sublayers_) append_unique(out, seen, l->non_trainable_weights());
  // A variable shared with a trainable place elsewhere stays trainable (Keras keeps the
  // first occurrence); drop those.
  const std::vector<Variable> trainable = trainable_weights();
  std::unordered_set<const void*> t;
  for (const Variable& v : trainable) t.insert(v.id());
  std::erase_if(out, [&](const Variable& v) { return t.count(v.id()) != 0; });
  return out;
}

std::vector<Tensor> Layer::trainable_parameters() const {
  std::vector<Tensor> out;
  for (const Variable& v : trainable_weights()) out.push_back(v.value());
  return out;
}

std::int64_t Layer::count_params() const {
  KILN_CHECK(built_, ValueError, name_, ": count_params needs a built layer (call it on an input, "
             "or give input_shape)");
  std::int64_t n = 0;
  for (const Variable& v : weights()) n += v.numel();
  return n;
}

void Layer::set_trainable(bool trainable) {
  trainable_ = trainable;
  for (Variable& v : variables_) v.set_frozen(!trainable);
  for (const LayerRef& l : sublayers_) l->set_trainable(trainable);
}

Tensor Layer::regularization_loss() const {
  Tensor total = zeros({}, {.dtype = DType::float32, .device = device()});
  for (const Variable& v : weights()) {
    Tensor penalty = v.regularization_loss();
    if (penalty.defined()) total = add(total, cast(penalty, DType::float32));
  }
  return total;
}

void Layer::apply_constraints() {
  for (const Variable& v : weights()) v.apply_constraint();
}

void Layer::set_weights(const std::vector<Tensor>& values) {
  const std::vector<Variable> vars = weights();
  KILN_CHECK(values.size() == vars.size(), ValueError, name_, ": set_weights expects ", vars.size(),
             " arrays, got ", values.size());
  for (std::size_t i = 0; i < vars.size(); ++i) {
    KILN_CHECK(values[i].shape() == vars[i].shape(), ShapeError, name_, ": set_weights: weight ", i,
               " ('", vars[i].name(), "') has shape ", vars[i].shape(), ", got ", values[i].shape());
  }
  for (std::size_t i = 0; i < vars.size(); ++i) vars[i].assign(values[i]);
}

std::vector<Tensor> Layer::get_weights() const {
  std::vector<Tensor> out;
  for (const Variable& v : weights()) out.push_back(v.value().detach().to(Device::cpu()).clone());
  return out;
}

// ---- device and dtype ----

Device Layer::device() const { return device_.value_or(default_device()); }

Layer& Layer::to(Device device) {
  device_ = device;
  for (Variable& v : variables_) {
    if (v.device() != device) v.set_value(v.value().detach().to(device));
  }
  for (const LayerRef& l : sublayers_) l->to(device);
  return *this;
}

Layer& Layer::to(DType dtype) {
  KILN_CHECK(is_floating(dtype), TypeError, name_, ": to(dtype) needs a floating dtype, got ", dtype);
  dtype_ = dtype;
  for (Variable& v : variables_) {
    if (is_floating(v.dtype()) && v.dtype() != dtype) v.set_value(v.value().detach().to(dtype));
  }
  for (const LayerRef& l : sublayers_) l->to(dtype);
  return *this;
}

}  // namespace kiln::layers
