// The one gradient checker for layers: d(sum(v * layer(inputs)))/d(inputs) and /d(weights)
// in float64, through kernels/autograd/gradcheck.h. The layer is converted to float64
// (Layer::to(float64)) and built from the inputs if needed; each trainable weight is handed
// to the layer as one of gradcheck's inputs (Variable::bind_value) and restored after.
//   EXPECT_TRUE(kiln::test::layer_gradcheck(Dense(3), {x})) ;
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/layers/layer.h"

namespace kiln::test {

struct LayerGradcheckOptions {
  bool training = false;
  bool check_inputs = true;   // false for inputs that are not differentiable (indices)
  bool check_weights = true;
  GradcheckOptions gradcheck;
};

inline ::testing::AssertionResult layer_gradcheck(const layers::LayerRef& layer, std::vector<Tensor> inputs,
                                                  LayerGradcheckOptions options = {}) {
  layer->to(DType::float64);
  {
    std::vector<Shape> shapes;
    for (const Tensor& x : inputs) shapes.push_back(x.shape());
    layer->maybe_build(shapes);
  }
  const std::size_t n_inputs = inputs.size();
  std::vector<layers::Variable> weights;
  if (options.check_weights) {
    for (const layers::Variable& v : layer->trainable_weights()) {
      if (is_floating(v.dtype())) weights.push_back(v);
    }
  }
  std::vector<Tensor> originals;
  std::vector<Tensor> all = inputs;
  for (const layers::Variable& v : weights) {
    originals.push_back(v.value());
    all.push_back(v.value().detach().clone());
  }
  // gradcheck checks the inputs that require grad (or every floating one when none does).
  for (std::size_t i = 0; i < all.size(); ++i) {
    const bool checked = i < n_inputs ? options.check_inputs : true;
    if (checked && is_floating(all[i].dtype())) all[i] = all[i].detach().requires_grad_(true);
  }
  auto f = [&](const std::vector<Tensor>& in) {
    for (std::size_t k = 0; k < weights.size(); ++k) weights[k].bind_value(in[n_inputs + k]);
    std::vector<Tensor> outs = (*layer)(std::vector<Tensor>(in.begin(), in.begin() + n_inputs), options.training);
    if (outs.size() == 1) return outs[0];
    std::vector<Tensor> flat;
    for (const Tensor& o : outs) flat.push_back(o.reshape({-1}));
    return concat(flat, 0);
  };
  GradcheckResult r;
  try {
    r = gradcheck(f, all, options.gradcheck);
  } catch (...) {
    for (std::size_t k = 0; k < weights.size(); ++k) weights[k].bind_value(originals[k]);
    throw;
  }
  for (std::size_t k = 0; k < weights.size(); ++k) weights[k].bind_value(originals[k]);
  if (r.ok) return ::testing::AssertionSuccess();
  std::string names;
  for (std::size_t k = 0; k < weights.size(); ++k) {
    names += "\n  input " + std::to_string(n_inputs + k) + " = " + weights[k].name();
  }
  return ::testing::AssertionFailure() << layer->name() << ": " << r.message << names;
}

}  // namespace kiln::test
