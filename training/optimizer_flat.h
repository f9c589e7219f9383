// Internal: the packed parameter groups of an optimizer (Note [Flat parameter buffers] in
// training/optimizers.h) and the step over them.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/training/optimizer_math.h"
#include "kiln/training/optimizers.h"

namespace kiln::optimizers::detail {

// The parameters of one (device, dtype): flat buffers of numel elements (a multiple of
// kChunk); member k occupies [offsets[k], offsets[k] + shapes[k].numel()), the rest of its
// chunks is zero padding.
struct Group {
  Device device;
  DType dtype = DType::float32;       // parameters and gradient buffer
  DType slot_dtype = DType::float32;  // float64 for float64, else float32
  std::vector<int> members;           // indices into FlatState::params
  std::vector<std::int64_t> offsets;
  std::vector<Shape> shapes;
  std::int64_t numel = 0;
  Tensor param, grad;                 // (numel,)
  std::vector<Tensor> slots;          // (numel,) each, in slot_specs order
  Tensor chunk_member;                // int32 (numel / kChunk,), on device
  Tensor member_chunks;               // int32 (members + 1,), on device
  Tensor partials, norm;              // float64 scratch for clipping (made on first use)
  Tensor active;                      // uint8 (members,), on device, while some are inactive
  std::vector<std::uint8_t> active_host;  // what `active` holds

  // Member k's view of a flat buffer, with the parameter's shape.
  Tensor view(const Tensor& flat, std::size_t k) const;
};

struct FlatState {
  std::vector<Tensor> params;                  // the packed list, in the caller's order
  std::vector<Group> groups;                   // in order of first appearance
  std::vector<std::pair<int, int>> location;   // params[i] -> (group, member)
  std::vector<SlotSpec> slot_specs;
};

// Checks `params` (defined, floating, leaves, no duplicates) and packs them; slots of
// parameters that `old` held carry over (copied, across devices if they moved), the
// others start at their SlotSpec's initial value. `op` names the caller in errors.
std::unique_ptr<FlatState> pack(const std::vector<Tensor>& params, const std::vector<SlotSpec>& slots,
                                const FlatState* old, const char* op);

// Whether `state` still describes `params`: the same tensors, each still in its view.
bool matches(const FlatState& state, const std::vector<Tensor>& params);

// One step over every group: gathers `grads` (undefined: skip that parameter; the others
// checked by the caller: the parameter's shape and device, floating) into the
// flat gradient buffers, computes the clipping norms when `mode` asks, and runs the fused
// update. `s` carries the scalars (clipnorm in s.clipnorm for both norm modes).
void step(FlatState& state, const std::vector<Tensor>& grads, const StepScalars& s, NormMode mode);

}  // namespace kiln::optimizers::detail
