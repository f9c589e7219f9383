// The autograd graph: a Node per recorded operation, with edges to the nodes that made
// its inputs. Built by the ops as they run (define-by-run), walked by the engine in
// kiln::backward. A Node's saved tensors are detached copies of the handles (never the
// autograd-carrying tensors themselves), so a graph never holds itself alive in a cycle.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

class Node;

// Where a gradient goes: input `input_nr` of `node` (the node's forward output number).
struct Edge {
  std::shared_ptr<Node> node;
  int input_nr = 0;
};

class Node {
 public:
  virtual ~Node() = default;
  // grads[i] is the gradient of forward output i (undefined: no gradient reached it,
  // i.e. zero). Returns one gradient per next_edges entry (undefined: zero).
  virtual std::vector<Tensor> apply(std::vector<Tensor>& grads) = 0;
  virtual std::string name() const = 0;
  // Drops saved tensors after a backward without retain_graph.
  virtual void release() {}

  std::vector<Edge> next_edges;  // one per differentiable input of the forward op
  int num_outputs = 1;
};

// The gradient sink of a leaf tensor: adds what reaches it into leaf.grad().
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(Tensor leaf) : leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override;
  std::string name() const override { return "AccumulateGrad"; }
  const Tensor& leaf() const { return leaf_; }

 private:
  Tensor leaf_;
};

// The backward of one op as a function of the output gradients (saved state captured).
using BackwardFn = std::function<std::vector<Tensor>(std::vector<Tensor>& grads)>;

class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override;
  std::string name() const override { return name_; }
  void release() override { fn_ = nullptr; }

 private:
  std::string name_;
  BackwardFn fn_;
};

// True when grad mode is on and any of `inputs` requires grad: the op must record.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records an op: a FunctionNode named `name` whose edges lead to `inputs` (undefined or
// non-requiring inputs get empty edges and their gradients are dropped), and which becomes
// grad_fn of each of `outputs` (output i = forward output i). No-op unless needs_grad.
//   Tensor y = ...forward...;
//   record("ReluBackward", {x}, {y}, [x = x.detach()](std::vector<Tensor>& g) {
//     return std::vector<Tensor>{relu_backward(g[0], x)};
//   });
void record(std::string name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn fn);

// The graph-node name of an op: "leaky_relu" -> "LeakyReluBackward".
std::string backward_name(std::string_view op);

// The edge that carries a gradient into `t`: its grad_fn, its leaf accumulator, or none.
Edge gradient_edge(const Tensor& t);

}  // namespace kiln
