// What core stores for autograd on each tensor that takes part in it. The graph nodes,
// the engine and every backward formula live in kernels/autograd; core holds only this
// data so Tensor can answer requires_grad(), grad() and grad_fn().
#pragma once

#include <memory>

#include "kiln/core/tensor.h"

namespace kiln {

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient of a leaf (or a retained one)
  std::shared_ptr<Node> grad_fn;  // the node that produced this tensor; null for leaves
  int output_nr = 0;              // which output of grad_fn this tensor is
  // A leaf's gradient accumulator node, created once so every use of the leaf in a graph
  // feeds the same node (kernels/autograd keeps it alive through the graph's edges).
  std::weak_ptr<Node> grad_accumulator;
};

// Whether operations record the autograd graph in this thread (on by default).
// NoGradGuard turns it off for its scope: inference, optimizer updates, metrics.
class GradMode {
 public:
  static bool enabled();
  static void set_enabled(bool on);
};

class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Views (reshape, permute, slice, select, expand, ...) and copies (contiguous, clone, to)
// are core methods, but their gradients need ops from kernels/. Each records itself
// through this hook, which
// kernels/autograd installs during static initialisation of the translation unit that
// defines kiln::backward: any program that can run a backward pass has it, and a program
// that cannot has no use for the record.
enum class ViewKind { reshape, permute, slice, select, expand, copy };
struct ViewInfo {
  ViewKind kind = ViewKind::reshape;  // copy: a new tensor, maybe of another dtype/device
  Shape axes;                 // permute: the permutation
  std::int64_t axis = 0;      // slice, select
  std::int64_t start = 0;     // slice (normalised, in [0, extent])
  std::int64_t step = 1;      // slice
  std::int64_t index = 0;     // select (normalised)
};
namespace detail {
using ViewHook = void (*)(const Tensor& base, Tensor& view, const ViewInfo& info);
inline ViewHook view_hook = nullptr;
}  // namespace detail

}  // namespace kiln
