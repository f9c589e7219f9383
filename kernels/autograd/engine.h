// Running the graph backwards: kiln::backward(loss) fills .grad() of every leaf that
// requires grad and took part in computing `loss`, like torch.autograd.backward.
#pragma once

#include "kiln/core/autograd_meta.h"
#include "kiln/core/tensor.h"

namespace kiln {

struct BackwardOptions {
  // Keep the graph's saved tensors so backward can run through it again.
  bool retain_graph = false;
};

// `grad` is d(something)/d(root); undefined means ones, allowed for one-element roots only.
// Gradients accumulate into existing .grad() values (zero them with zero_grad).
void backward(const Tensor& root, const Tensor& grad = Tensor(), BackwardOptions options = {});

// Clears .grad() of each tensor (sets it undefined, so the next backward starts at zero).
void zero_grad(const std::vector<Tensor>& tensors);

}  // namespace kiln
