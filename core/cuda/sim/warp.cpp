// Warp collectives: shuffles, votes, __syncwarp and the sm_80 reductions.
//
// A lane arriving at a collective records its operands and waits until every lane of its
// group has arrived: the lanes named in its mask that exist (a partial last warp has
// fewer) and have not exited. The last to arrive computes every lane's result. CUDA's
// rules are checked: a lane must be in its own mask, a shuffle width must be a power of
// two up to 32, and lanes named in each other's masks must be in the same collective with
// the same mask. Shuffles compute their source lane with the PTX definition of shfl.sync
// (including the segment clamping that `width` sets up); reading a lane that does not
// take part gives poison (all bits set) where a GPU gives an undefined value.
#include <cstdio>

#include "kiln/core/cuda/sim/block.h"
#include "kiln/core/cuda/sim/state.h"

namespace kiln::sim::detail {
namespace {

constexpr std::uint64_t kPoison = ~std::uint64_t{0};

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl_idx: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::ballot: return "__ballot_sync";
    case WarpOp::any: return "__any_sync";
    case WarpOp::all: return "__all_sync";
    case WarpOp::sync: return "__syncwarp";
    case WarpOp::activemask: return "__activemask";
    case WarpOp::reduce_add_u: return "__reduce_add_sync";
    case WarpOp::reduce_min_u:
    case WarpOp::reduce_min_i: return "__reduce_min_sync";
    case WarpOp::reduce_max_u:
    case WarpOp::reduce_max_i: return "__reduce_max_sync";
  }
  return "a warp collective";
}

bool is_shuffle(WarpOp op) {
  return op == WarpOp::shfl_idx || op == WarpOp::shfl_up || op == WarpOp::shfl_down ||
         op == WarpOp::shfl_xor;
}

// The source lane of `lane` for a shuffle (PTX shfl.sync): b is the lane/delta/mask
// operand, c packs the segment mask and clamp value that `width` selects.
unsigned shuffle_source(WarpOp op, unsigned lane, int param, int width) {
  const int b = param & 31;
  const int segmask = (32 - width) & 31;
  const int clamp = op == WarpOp::shfl_up ? 0 : 31;
  const int max_lane = (static_cast<int>(lane) & segmask) | (clamp & ~segmask);
  const int min_lane = static_cast<int>(lane) & segmask;
  int j = static_cast<int>(lane);
  bool valid = false;
  switch (op) {
    case WarpOp::shfl_up: j -= b; valid = j >= max_lane; break;
    case WarpOp::shfl_down: j += b; valid = j <= max_lane; break;
    case WarpOp::shfl_xor: j ^= b; valid = j <= max_lane; break;
    default: j = min_lane | (b & ~segmask); valid = j <= max_lane; break;
  }
  return valid ? static_cast<unsigned>(j) : lane;
}

std::uint64_t reduce(WarpOp op, const std::uint32_t* values, unsigned lanes) {
  std::uint32_t u = op == WarpOp::reduce_min_u ? ~0u : 0u;
  std::int32_t i = op == WarpOp::reduce_min_i ? INT32_MAX : INT32_MIN;
  for (unsigned rest = lanes; rest != 0; rest &= rest - 1) {
    const std::uint32_t v = values[__builtin_ctz(rest)];
    const auto s = static_cast<std::int32_t>(v);
    switch (op) {
      case WarpOp::reduce_add_u: u += v; break;
      case WarpOp::reduce_min_u: u = v < u ? v : u; break;
      case WarpOp::reduce_max_u: u = v > u ? v : u; break;
      case WarpOp::reduce_min_i: i = s < i ? s : i; break;
      default: i = s > i ? s : i; break;
    }
  }
  const bool is_signed = op == WarpOp::reduce_min_i || op == WarpOp::reduce_max_i;
  return is_signed ? static_cast<std::uint32_t>(i) : u;
}

std::string hex(unsigned mask) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", mask);
  return text;
}

}  // namespace

std::string BlockRunner::warp_op_description(const ThreadSlot& s) {
  return std::string(op_name(s.op)) + "(mask " + hex(s.mask) + ")";
}

std::uint64_t BlockRunner::warp_collective(WarpOp op, unsigned mask, std::uint64_t value,
                                           int param, int width) {
  TsanIgnore ignore;
  if (!fiber_mode_) enter_fiber_mode();
  const unsigned t = current_;
  const unsigned warp = t / kWarpSize;
  const unsigned lane = t % kWarpSize;
  if ((mask & (1u << lane)) == 0) {
    fault(cudaErrorLaunchFailure, "thread " + thread_name(t) + " (lane " + std::to_string(lane) +
                                      ") calls " + op_name(op) + " with mask " + hex(mask) +
                                      ", which leaves it out");
  }
  if (is_shuffle(op) && (width < 1 || width > 32 || (width & (width - 1)) != 0)) {
    fault(cudaErrorLaunchFailure, "thread " + thread_name(t) + " calls " + op_name(op) +
                                      " with width " + std::to_string(width) +
                                      "; it must be a power of two from 1 to 32");
  }
  check_warp_arrival(t, op, mask);
  ThreadSlot& s = slots_[t];
  s.op = op;
  s.mask = mask;
  s.param = param;
  s.width = width;
  s.value = value;
  WarpSlot& w = warps_[warp];
  w.waiting |= 1u << lane;
  char* token = &warp_tokens_[2 * warp + (w.generation & 1)];
  if (op == WarpOp::sync) tsan_release(token);
  if (!try_complete_warp(warp, lane)) {
    s.state = State::at_warp;
    try_resolve_activemask(warp);
    suspend_current();
  }
  if (op == WarpOp::sync) tsan_acquire(token);
  return slots_[t].result;
}

unsigned BlockRunner::active_mask() {
  TsanIgnore ignore;
  if (!fiber_mode_) enter_fiber_mode();
  const unsigned t = current_;
  const unsigned warp = t / kWarpSize;
  ThreadSlot& s = slots_[t];
  s.op = WarpOp::activemask;
  s.mask = 0;
  warps_[warp].at_activemask |= 1u << (t % kWarpSize);
  if (!try_resolve_activemask(warp)) {
    s.state = State::at_warp;
    suspend_current();
  }
  return static_cast<unsigned>(slots_[t].result);
}

bool BlockRunner::try_resolve_activemask(unsigned warp) {
  WarpSlot& w = warps_[warp];
  if (w.at_activemask == 0) return false;
  const unsigned blocked = w.exited | w.waiting | w.at_barrier | w.at_activemask;
  if ((w.existing & ~blocked) != 0) return false;  // a lane still runs: it may come too
  const unsigned lanes = w.at_activemask;
  w.at_activemask = 0;
  for (unsigned rest = lanes; rest != 0; rest &= rest - 1) {
    const unsigned t = warp * kWarpSize + static_cast<unsigned>(__builtin_ctz(rest));
    slots_[t].result = lanes;
    if (slots_[t].state == State::at_warp) make_runnable(t);
  }
  return true;
}

void BlockRunner::check_warp_arrival(unsigned t, WarpOp op, unsigned mask) {
  WarpSlot& w = warps_[t / kWarpSize];
  const unsigned lane = t % kWarpSize;
  const unsigned base = t - lane;
  if (w.waiting == 0) {
    w.mixed = false;
    return;
  }
  // Lanes that name each other must be in the same collective with the same mask.
  auto conflicts = [&](unsigned k) {
    const ThreadSlot& other = slots_[base + k];
    const bool related = ((mask >> k) & 1u) != 0 || ((other.mask >> lane) & 1u) != 0;
    return related && (other.mask != mask || other.op != op);
  };
  auto report = [&](unsigned k) {
    fault(cudaErrorLaunchFailure, "warp divergence: thread " + thread_name(t) + " calls " +
                                      op_name(op) + "(mask " + hex(mask) + ") while thread " +
                                      thread_name(base + k) + " of its warp waits in " +
                                      warp_op_description(slots_[base + k]));
  };
  if (!w.mixed) {  // one collective waiting so far: compare with one of its lanes
    const auto k = static_cast<unsigned>(__builtin_ctz(w.waiting));
    const ThreadSlot& other = slots_[base + k];
    if (other.mask == mask && other.op == op) return;
    if ((w.waiting & mask) != 0 || ((other.mask >> lane) & 1u) != 0) report(k);
    w.mixed = true;  // a second, disjoint collective
    return;
  }
  for (unsigned rest = w.waiting; rest != 0; rest &= rest - 1) {
    const auto k = static_cast<unsigned>(__builtin_ctz(rest));
    if (conflicts(k)) report(k);
  }
}

bool BlockRunner::try_complete_warp(unsigned warp, unsigned lane_in_group) {
  WarpSlot& w = warps_[warp];
  const unsigned mask = slots_[warp * kWarpSize + lane_in_group].mask;
  const unsigned group = mask & w.existing & ~w.exited;
  if ((w.waiting & group) != group) return false;
  complete_warp_group(warp, group);
  return true;
}

void BlockRunner::complete_warp_group(unsigned warp, unsigned lanes) {
  ThreadSlot* lane_slots = &slots_[warp * kWarpSize];
  const WarpOp op = lane_slots[__builtin_ctz(lanes)].op;
  std::uint32_t words[32];
  unsigned votes = 0;
  for (unsigned rest = lanes; rest != 0; rest &= rest - 1) {
    const auto k = static_cast<unsigned>(__builtin_ctz(rest));
    words[k] = static_cast<std::uint32_t>(lane_slots[k].value);
    if (lane_slots[k].value != 0) votes |= 1u << k;
  }
  std::uint64_t common = 0;
  switch (op) {
    case WarpOp::ballot: common = votes; break;
    case WarpOp::any: common = votes != 0; break;
    case WarpOp::all: common = votes == lanes; break;
    case WarpOp::sync: break;
    default:
      if (!is_shuffle(op)) common = reduce(op, words, lanes);
      break;
  }
  for (unsigned rest = lanes; rest != 0; rest &= rest - 1) {
    const auto k = static_cast<unsigned>(__builtin_ctz(rest));
    ThreadSlot& s = lane_slots[k];
    if (is_shuffle(op)) {
      const unsigned src = shuffle_source(op, k, s.param, s.width);
      s.result = ((lanes >> src) & 1u) != 0 ? lane_slots[src].value : kPoison;
    } else {
      s.result = common;
    }
  }
  WarpSlot& w = warps_[warp];
  w.waiting &= ~lanes;
  if (w.waiting == 0) w.mixed = false;
  if (op == WarpOp::sync) ++w.generation;
  // Wake the waiting lanes; the arriving lane (if it is one of them) is still running.
  for (unsigned rest = lanes; rest != 0; rest &= rest - 1) {
    const unsigned t = warp * kWarpSize + static_cast<unsigned>(__builtin_ctz(rest));
    if (slots_[t].state == State::at_warp) make_runnable(t);
  }
}

std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int param,
                              int width) {
  BlockRunner* r = BlockRunner::active();
  if (r == nullptr) outside_kernel(op_name(op));
  return r->warp_collective(op, mask, value, param, width);
}

}  // namespace kiln::sim::detail
