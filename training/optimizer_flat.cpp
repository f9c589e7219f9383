// Packing parameters into flat buffers and running one step over them (Note [Flat
// parameter buffers] in training/optimizers.h).
#include "kiln/training/optimizer_flat.h"

#include <unordered_map>
#include <unordered_set>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/device_dispatch.h"

namespace kiln::optimizers::detail {
namespace {

DType slot_dtype_for(DType dtype) { return dtype == DType::float64 ? DType::float64 : DType::float32; }

std::int64_t round_up_to_chunk(std::int64_t n) { return (n + kChunk - 1) / kChunk * kChunk; }

void check_params(const std::vector<Tensor>& params, const char* op) {
  std::unordered_set<const TensorImpl*> seen;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    KILN_CHECK(p.defined(), ValueError, op, ": parameter ", i, " is an undefined tensor");
    KILN_CHECK(is_floating(p.dtype()), TypeError, op, ": parameter ", i, " of shape ", p.shape(), " has dtype ",
               p.dtype(), "; optimizers update floating tensors");
    KILN_CHECK(p.is_leaf(), ValueError, op, ": parameter ", i, " of shape ", p.shape(),
               " is not a leaf tensor (it was computed by an op); pass the leaf it was computed from");
    KILN_CHECK(seen.insert(&p.unsafe_impl()).second, ValueError, op, ": parameter ", i, " of shape ", p.shape(),
               " appears twice in the parameter list");
  }
}

// Lays out the members of each (device, dtype) group and allocates the flat buffers.
std::vector<Group> layout_groups(const std::vector<Tensor>& params, std::size_t nslots,
                                 std::vector<std::pair<int, int>>& location) {
  std::vector<Group> groups;
  location.resize(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    std::size_t g = 0;
    while (g < groups.size() && !(groups[g].device == p.device() && groups[g].dtype == p.dtype())) ++g;
    if (g == groups.size()) {
      groups.emplace_back();
      groups[g].device = p.device();
      groups[g].dtype = p.dtype();
      groups[g].slot_dtype = slot_dtype_for(p.dtype());
    }
    Group& group = groups[g];
    location[i] = {static_cast<int>(g), static_cast<int>(group.members.size())};
    group.members.push_back(static_cast<int>(i));
    group.offsets.push_back(group.numel);
    group.shapes.push_back(p.shape());
    group.numel += round_up_to_chunk(p.numel());
  }
  for (Group& g : groups) {
    const TensorOptions on{.dtype = g.dtype, .device = g.device};
    g.param = zeros({g.numel}, on);  // padding stays zero: it never changes the norms
    g.grad = zeros({g.numel}, on);
    g.slots.resize(nslots);
    std::vector<std::int32_t> chunk_member(static_cast<std::size_t>(g.numel / kChunk));
    std::vector<std::int32_t> member_chunks;
    for (std::size_t k = 0; k < g.members.size(); ++k) {
      const std::int64_t first = g.offsets[k] / kChunk;
      const std::int64_t last = (g.offsets[k] + round_up_to_chunk(g.shapes[k].numel())) / kChunk;
      member_chunks.push_back(static_cast<std::int32_t>(first));
      for (std::int64_t c = first; c < last; ++c) chunk_member[c] = static_cast<std::int32_t>(k);
    }
    member_chunks.push_back(static_cast<std::int32_t>(g.numel / kChunk));
    g.chunk_member = from_vector(chunk_member, {.device = g.device});
    g.member_chunks = from_vector(member_chunks, {.device = g.device});
  }
  return groups;
}

// Points the parameter's TensorImpl at its view of the group's flat buffer.
void repoint(const Tensor& p, const Group& g, std::size_t k) {
  TensorImpl& impl = p.unsafe_impl();
  impl.storage = g.param.storage();
  impl.offset = g.param.offset() + g.offsets[k];
  impl.strides = contiguous_strides(impl.shape);
}

// The group's args for the device code; chunk_member only when something reads it.
FlatArgs flat_args(const Group& g, bool masked, NormMode mode) {
  FlatArgs a;
  a.dtype = g.dtype;
  a.param = g.param.data_ptr();
  a.grad = g.grad.data_ptr();
  a.nslots = static_cast<int>(g.slots.size());
  for (int j = 0; j < a.nslots; ++j) a.slots[j] = g.slots[j].data_ptr();
  a.numel = g.numel;
  a.chunk = kChunk;
  if (masked || mode == NormMode::per_param) a.chunk_member = g.chunk_member.data<std::int32_t>();
  if (masked) a.active = g.active.data<std::uint8_t>();
  a.norm_mode = mode;
  if (mode != NormMode::none) a.norm = g.norm.data<double>();
  return a;
}

void run_norms(Group& g, NormMode mode, double clipnorm) {
  const auto members = static_cast<std::int64_t>(g.members.size());
  if (!g.norm.defined()) {
    g.partials = empty({g.numel / kChunk}, {.dtype = DType::float64, .device = g.device});
    g.norm = empty({members + 1}, {.dtype = DType::float64, .device = g.device});
  }
  NormArgs a;
  a.dtype = g.dtype;
  a.grad = g.grad.data_ptr();
  a.numel = g.numel;
  a.chunk = kChunk;
  a.member_chunks = g.member_chunks.data<std::int32_t>();
  a.members = static_cast<int>(members);
  a.partials = g.partials.data<double>();
  a.mode = mode;
  a.clipnorm = clipnorm;
  a.norm = g.norm.data<double>();
  KILN_ON_DEVICE(g.device, "optimizer clip norms", cpu::clip_norms(a), cuda::clip_norms(a, g.device.index()));
}

}  // namespace

Tensor Group::view(const Tensor& flat, std::size_t k) const {
  return flat.slice(0, offsets[k], offsets[k] + shapes[k].numel()).view(shapes[k]);
}

std::unique_ptr<FlatState> pack(const std::vector<Tensor>& params, const std::vector<SlotSpec>& slots,
                                const FlatState* old, const char* op) {
  check_params(params, op);
  NoGradGuard no_grad;
  auto st = std::make_unique<FlatState>();
  st->params = params;
  st->slot_specs = slots;
  st->groups = layout_groups(params, slots.size(), st->location);
  std::unordered_map<const TensorImpl*, std::size_t> previous;
  if (old) {
    for (std::size_t i = 0; i < old->params.size(); ++i) previous.emplace(&old->params[i].unsafe_impl(), i);
  }
  for (Group& g : st->groups) {
    for (std::size_t j = 0; j < slots.size(); ++j) {
      g.slots[j] = full({g.numel}, slots[j].initial, {.dtype = g.slot_dtype, .device = g.device});
    }
    for (std::size_t k = 0; k < g.members.size(); ++k) {
      const Tensor& p = params[g.members[k]];
      g.view(g.param, k).copy_(p.detach());
      const auto it = previous.find(&p.unsafe_impl());
      if (it == previous.end()) continue;
      const auto [og, ok] = old->location[it->second];
      const Group& from = old->groups[og];
      if (!(from.shapes[ok] == g.shapes[k])) continue;
      for (std::size_t j = 0; j < slots.size(); ++j) g.view(g.slots[j], k).copy_(from.view(from.slots[j], ok));
    }
  }
  // Re-point only after every copy: a parameter's old view may be read above.
  for (const Group& g : st->groups) {
    for (std::size_t k = 0; k < g.members.size(); ++k) repoint(params[g.members[k]], g, k);
  }
  return st;
}

bool matches(const FlatState& state, const std::vector<Tensor>& params) {
  if (params.size() != state.params.size()) return false;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!params[i].is_same(state.params[i])) return false;
    const auto [gi, k] = state.location[i];
    const Group& g = state.groups[gi];
    const Tensor& p = params[i];
    if (p.storage() != g.param.storage() || p.offset() != g.param.offset() + g.offsets[k] ||
        !(p.shape() == g.shapes[k]) || p.dtype() != g.dtype || !p.is_contiguous()) {
      return false;
    }
  }
  return true;
}

void step(FlatState& st, const std::vector<Tensor>& grads, const StepScalars& s, NormMode mode) {
  NoGradGuard no_grad;
  std::vector<Group*> live;  // groups with at least one gradient this step
  std::vector<bool> masked;
  for (Group& g : st.groups) {
    std::vector<std::uint8_t> active(g.members.size(), 0);
    bool any = false, all = true;
    for (std::size_t k = 0; k < g.members.size(); ++k) {
      const Tensor& grad = grads[g.members[k]];
      if (!grad.defined()) {
        all = false;
        // A skipped parameter adds nothing to the norms (Keras filters it out first).
        if (mode != NormMode::none) g.view(g.grad, k).zero_();
        continue;
      }
      g.view(g.grad, k).copy_(grad.detach());
      active[k] = 1;
      any = true;
    }
    if (!any || g.numel == 0) continue;
    if (!all && active != g.active_host) {
      g.active = from_vector(active, {.device = g.device});
      g.active_host = active;
    }
    live.push_back(&g);
    masked.push_back(!all);
  }
  if (mode != NormMode::none) {
    for (Group* g : live) run_norms(*g, mode, s.clipnorm);
    if (mode == NormMode::global && live.size() > 1) {
      // One norm over every group (mixed dtypes or devices): the group totals meet on the
      // host, the one place a step syncs.
      double total = 0.0;
      for (Group* g : live) total += g->norm.select(0, static_cast<std::int64_t>(g->members.size())).item<double>();
      const double scale = global_clip_scale(total, s.clipnorm);
      for (Group* g : live) g->norm.slice(0, 0, 1).fill_(scale);
    }
  }
  for (std::size_t i = 0; i < live.size(); ++i) {
    const Group& g = *live[i];
    const FlatArgs a = flat_args(g, masked[i], mode);
    KILN_ON_DEVICE(g.device, "optimizer step", cpu::fused_step(a, s), cuda::fused_step(a, s, g.device.index()));
  }
}

}  // namespace kiln::optimizers::detail
