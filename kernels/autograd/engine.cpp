// The backward pass: count how many edges lead into each node reachable from the root,
// then run nodes as their last incoming gradient arrives (a topological order), summing
// gradients that reach the same node input from several uses.
#include "kiln/kernels/autograd/engine.h"

#include <unordered_map>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/binary.h"

namespace kiln {
namespace {

std::unordered_map<Node*, int> count_dependencies(Node* root) {
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root};
  deps[root] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.node) continue;
      auto [it, first_visit] = deps.try_emplace(e.node.get(), 0);
      ++it->second;
      if (first_visit) stack.push_back(e.node.get());
    }
  }
  return deps;
}

void accumulate(std::vector<Tensor>& buffer, int slot, const Tensor& g) {
  Tensor& into = buffer[slot];
  into = into.defined() ? add(into, g) : g;
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad, BackwardOptions options) {
  KILN_CHECK(root.defined() && root.requires_grad(), ValueError,
             "backward: the tensor does not require grad and has no grad_fn (did an input call ",
             "requires_grad_(), and was the computation outside a NoGradGuard?)");
  Tensor seed = grad;
  if (!seed.defined()) {
    KILN_CHECK(root.numel() == 1, ValueError,
               "backward: a gradient can be implied only for one-element outputs; got shape ",
               root.shape(), ", pass grad explicitly");
    seed = ones(root.shape(), {.dtype = root.dtype(), .device = root.device()});
  }
  KILN_CHECK(seed.shape() == root.shape(), ShapeError, "backward: grad of shape ", seed.shape(),
             " for an output of shape ", root.shape());
  NoGradGuard no_grad;  // backward formulas do not record (no higher-order gradients)

  const Edge start = gradient_edge(root);
  std::unordered_map<Node*, int> deps = count_dependencies(start.node.get());
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  buffers[start.node.get()].resize(start.node->num_outputs);
  accumulate(buffers[start.node.get()], start.input_nr, seed.detach());

  std::vector<std::shared_ptr<Node>> ready{start.node};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    std::vector<Tensor> grads = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    std::vector<Tensor> outs = node->apply(grads);
    if (!options.retain_graph) node->release();
    KILN_ASSERT(outs.empty() || outs.size() == node->next_edges.size(), node->name(), " returned ",
                outs.size(), " gradients for ", node->next_edges.size(), " inputs");
    for (std::size_t i = 0; i < outs.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.node) continue;
      if (outs[i].defined()) {
        auto& buffer = buffers[e.node.get()];
        if (buffer.empty()) buffer.resize(e.node->num_outputs);
        accumulate(buffer, e.input_nr, outs[i]);
      }
      if (--deps[e.node.get()] == 0) ready.push_back(e.node);
    }
    // A node with no outputs (a leaf accumulator) still releases its dependants' counts.
    if (outs.empty()) {
      for (const Edge& e : node->next_edges) {
        if (e.node && --deps[e.node.get()] == 0) ready.push_back(e.node);
      }
    }
  }
}

void zero_grad(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    if (t.defined() && t.grad().defined()) t.set_grad(Tensor());
  }
}

}  // namespace kiln
