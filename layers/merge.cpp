// Merge layers: elementwise Add/Subtract/Multiply/Average/Maximum/Minimum and
// Concatenate (see merge.h).
#include "kiln/layers/merge.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "kiln/kernels/binary.h"
#include "kiln/kernels/shape_ops.h"

namespace kiln::layers {

using nlohmann::json;

namespace {
const char* class_name_of(MergeOp op) {
  switch (op) {
    case MergeOp::add: return "Add";
    case MergeOp::subtract: return "Subtract";
    case MergeOp::multiply: return "Multiply";
    case MergeOp::average: return "Average";
    case MergeOp::maximum: return "Maximum";
    case MergeOp::minimum: return "Minimum";
  }
  return "Merge";
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::ostringstream os;
  for (std::size_t i = 0; i < shapes.size(); ++i) os << (i ? ", " : "") << shape_str(shapes[i]);
  return os.str();
}

// The elementwise merge of compatible shapes: known extents win over -1.
Shape merged(const std::vector<Shape>& shapes) {
  Shape out = shapes[0];
  for (const Shape& s : shapes) {
    for (int i = 0; i < s.ndim(); ++i) {
      if (out[i] < 0) out[i] = s[i];
    }
  }
  return out;
}
}  // namespace

// ---- elementwise ----

ElementwiseMergeLayer::ElementwiseMergeLayer(MergeOp op, MergeOptions options)
    : Layer(class_name_of(op), std::move(options)), op_(op) {}

void ElementwiseMergeLayer::check_shapes(const std::vector<Shape>& shapes) const {
  if (op_ == MergeOp::subtract) {
    KILN_CHECK(shapes.size() == 2, ShapeError, name(), ": Subtract takes exactly 2 inputs, got ", shapes.size());
  } else {
    KILN_CHECK(shapes.size() >= 2, ShapeError, name(), ": a merge layer takes at least 2 inputs, got ",
               shapes.size());
  }
  for (const Shape& s : shapes) {
    KILN_CHECK(shapes_compatible(shapes[0], s), ShapeError, name(),
               ": inputs must have one shape, got ", shapes_str(shapes));
  }
}

void ElementwiseMergeLayer::build(const std::vector<Shape>& input_shapes) { check_shapes(input_shapes); }

std::vector<Shape> ElementwiseMergeLayer::compute_output_shape(const std::vector<Shape>& input_shapes) const {
  check_shapes(input_shapes);
  return {merged(input_shapes)};
}

std::vector<Tensor> ElementwiseMergeLayer::call(const std::vector<Tensor>& inputs, bool) {
  std::vector<Shape> shapes;
  for (const Tensor& t : inputs) shapes.push_back(t.shape());
  check_shapes(shapes);
  Tensor out = inputs[0];
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    switch (op_) {
      case MergeOp::add:
      case MergeOp::average: out = add(out, inputs[i]); break;
      case MergeOp::subtract: out = sub(out, inputs[i]); break;
      case MergeOp::multiply: out = mul(out, inputs[i]); break;
      case MergeOp::maximum: out = maximum(out, inputs[i]); break;
      case MergeOp::minimum: out = minimum(out, inputs[i]); break;
    }
  }
  if (op_ == MergeOp::average) out = div(out, static_cast<double>(inputs.size()));
  return {out};
}

Ref<ElementwiseMergeLayer> Add(MergeOptions o) { return std::make_shared<ElementwiseMergeLayer>(MergeOp::add, std::move(o)); }
Ref<ElementwiseMergeLayer> Subtract(MergeOptions o) {
  return std::make_shared<ElementwiseMergeLayer>(MergeOp::subtract, std::move(o));
}
Ref<ElementwiseMergeLayer> Multiply(MergeOptions o) {
  return std::make_shared<ElementwiseMergeLayer>(MergeOp::multiply, std::move(o));
}
Ref<ElementwiseMergeLayer> Average(MergeOptions o) {
  return std::make_shared<ElementwiseMergeLayer>(MergeOp::average, std::move(o));
}
Ref<ElementwiseMergeLayer> Maximum(MergeOptions o) {
  return std::make_shared<ElementwiseMergeLayer>(MergeOp::maximum, std::move(o));
}
Ref<ElementwiseMergeLayer> Minimum(MergeOptions o) {
  return std::make_shared<ElementwiseMergeLayer>(MergeOp::minimum, std::move(o));
}

// ---- Concatenate ----

ConcatenateLayer::ConcatenateLayer(ConcatenateOptions options)
    : Layer("Concatenate", common_options(options)), axis_(options.axis) {}

void ConcatenateLayer::build(const std::vector<Shape>& input_shapes) { (void)compute_output_shape(input_shapes); }

std::vector<Shape> ConcatenateLayer::compute_output_shape(const std::vector<Shape>& shapes) const {
  KILN_CHECK(shapes.size() >= 2, ShapeError, name(), ": Concatenate takes at least 2 inputs, got ", shapes.size());
  const int rank = shapes[0].ndim();
  KILN_CHECK(axis_ >= -rank && axis_ < rank, IndexError, name(), ": axis ", axis_, " is out of range for inputs ",
             shapes_str(shapes));
  const int axis = static_cast<int>(axis_ < 0 ? axis_ + rank : axis_);
  Shape out = shapes[0];
  out[axis] = 0;
  for (const Shape& s : shapes) {
    bool ok = s.ndim() == rank;
    for (int i = 0; ok && i < rank; ++i) {
      if (i != axis && s[i] >= 0 && out[i] >= 0 && s[i] != out[i]) ok = false;
      if (i != axis && out[i] < 0) out[i] = s[i];
    }
    KILN_CHECK(ok, ShapeError, name(), ": inputs must match except along axis ", axis_, ", got ",
               shapes_str(shapes));
    out[axis] = (out[axis] < 0 || s[axis] < 0) ? -1 : out[axis] + s[axis];
  }
  return {out};
}

std::vector<Tensor> ConcatenateLayer::call(const std::vector<Tensor>& inputs, bool) {
  std::vector<Shape> shapes;
  for (const Tensor& t : inputs) shapes.push_back(t.shape());
  (void)compute_output_shape(shapes);
  return {concat(inputs, axis_)};
}

json ConcatenateLayer::get_config() const {
  json c = Layer::get_config();
  c["axis"] = axis_;
  return c;
}

Ref<ConcatenateLayer> Concatenate(ConcatenateOptions options) {
  return std::make_shared<ConcatenateLayer>(std::move(options));
}

}  // namespace kiln::layers
