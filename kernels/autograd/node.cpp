#include "kiln/kernels/autograd/node.h"

#include <cctype>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/binary.h"

namespace kiln {

namespace autograd_detail {
void record_view(const Tensor& base, Tensor& view, const ViewInfo& info);

// Every op that records links this file, so core's views record too from then on.
const bool kViewHookInstalled = (detail::view_hook = &record_view, true);
}  // namespace autograd_detail

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>& grads) {
  Tensor& g = grads[0];
  if (!g.defined()) return {};
  KILN_ASSERT(g.shape() == leaf_.shape(), "AccumulateGrad: gradient of shape ", g.shape(),
              " for a leaf of shape ", leaf_.shape());
  // Out-of-place accumulation: a stored gradient is never written in place, so it may
  // safely alias whatever produced it.
  const Tensor old = leaf_.grad();
  leaf_.set_grad(old.defined() ? add(old, g) : g.detach());
  return {};
}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>& grads) {
  KILN_CHECK(fn_ != nullptr, ValueError, "backward: ", name_,
             " was already run and its saved tensors freed; pass {.retain_graph = true} to ",
             "the first backward to run through the graph twice");
  return fn_(grads);
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor* t : inputs) {
    if (t && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

std::string backward_name(std::string_view op) {
  std::string out;
  bool upper = true;
  for (char c : op) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out + "Backward";
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  AutogradMeta& meta = t.autograd_meta();
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  // A leaf: one accumulator per leaf, shared by every use of it in live graphs.
  std::shared_ptr<Node> acc = meta.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    meta.grad_accumulator = acc;
  }
  return {acc, 0};
}

void record(std::string name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn fn) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<FunctionNode>(std::move(name), std::move(fn));
  node->num_outputs = static_cast<int>(outputs.size());
  node->next_edges.reserve(inputs.size());
  for (const Tensor& in : inputs) node->next_edges.push_back(gradient_edge(in));
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].defined() || !is_floating(outputs[i].dtype())) continue;
    AutogradMeta& meta = outputs[i].autograd_meta();
    meta.requires_grad = true;
    meta.grad_fn = node;
    meta.output_nr = static_cast<int>(i);
  }
}

}  // namespace kiln
