// One kernel launch in flight (internal): its blocks, the order they are handed out in,
// and the first fault any of them hit.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/core/cuda/sim/control.h"
#include "kiln/core/cuda/sim/launch.h"

namespace kiln::sim::detail {

struct Grid {
  Grid(const LaunchDesc& desc, BlockOrderSetting order);

  const LaunchDesc& desc;
  std::string kernel_name;
  std::uint64_t blocks = 0;
  unsigned threads_per_block = 0;

  // The block that position `i` of the hand-out order runs (Note [Block order]).
  uint3 block_at(std::uint64_t i) const;

  // The first fault of the launch wins; later blocks are skipped once one is set.
  void record_fault(cudaError_t code, const std::string& detail);
  bool faulted() const { return faulted_.load(std::memory_order_relaxed); }
  cudaError_t fault_code() const { return fault_code_; }
  const std::string& fault_detail() const { return fault_detail_; }

  // Hand-out and completion counters, shared by the threads running the grid.
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> done{0};
  int users = 0;  // pool threads working on it; guarded by the pool's mutex
  char tsan_token = 0;  // kernel threads' writes happen before the launch returns

 private:
  BlockOrder order_;
  std::vector<std::uint32_t> permutation_;  // random order, small grids
  std::uint64_t stride_ = 1, offset_ = 0;   // random order, large grids: affine bijection
  std::atomic<bool> faulted_{false};
  std::mutex fault_mutex_;
  cudaError_t fault_code_ = cudaSuccess;
  std::string fault_detail_;
};

}  // namespace kiln::sim::detail
