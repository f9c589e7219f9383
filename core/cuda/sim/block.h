// Runs the CUDA threads of one block on the current OS thread (internal): the fast path
// of plain calls, fibers once a thread waits, block barriers and warp collectives, and
// the divergence checks. One BlockRunner per OS thread, reused for every block it runs.
// Note [Block execution] in block.cpp explains the design.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/cuda/sim/device.h"
#include "kiln/core/cuda/sim/fiber.h"

namespace kiln::sim::detail {

struct Grid;
struct FiberArg;

// "(x,y,z)", the way messages name a thread or block.
std::string thread_name_of(uint3 index);
// Intrinsics reached outside any kernel (host code calling device helpers): a bug in
// SIM-only code, since nvcc would reject it. Prints what and aborts.
[[noreturn]] void outside_kernel(const char* what);

// Thrown inside a CUDA thread to unwind it when its launch has faulted; caught where the
// thread started. Not a std::exception, so kernel code cannot swallow it by accident.
struct ThreadAbort {};

class BlockRunner {
 public:
  // The runner of this OS thread (created on first use, destroyed with the thread).
  static BlockRunner& of_this_thread();
  // The runner whose CUDA thread is executing on this OS thread, or null outside kernels.
  static BlockRunner* active();

  BlockRunner();
  ~BlockRunner();
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;

  // Runs every thread of block `block` of `grid`; a fault is recorded in the grid.
  void run(Grid& grid, uint3 block);

  // Called by the intrinsics from a CUDA thread.
  int barrier(BarrierOp op, int predicate);
  std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int param,
                                int width);
  unsigned active_mask();
  // Records a fault of the running CUDA thread and unwinds it (throws ThreadAbort).
  [[noreturn]] void fault(cudaError_t code, const std::string& what);

 private:
  enum class State : std::uint8_t { pending, running, at_barrier, at_warp, exited };

  struct ThreadSlot {
    uint3 index{};
    State state = State::pending;
    unsigned fiber = 0;
    // The warp collective (or barrier predicate) this thread waits in, and its result.
    WarpOp op = WarpOp::sync;
    unsigned mask = 0;
    int param = 0;
    int width = 32;
    std::uint64_t value = 0;
    std::uint64_t result = 0;
  };

  struct WarpSlot {
    unsigned existing = 0;  // lanes inside the block (a partial last warp has fewer)
    unsigned exited = 0;
    unsigned waiting = 0;   // lanes suspended in a warp collective
    bool mixed = false;     // waiting lanes belong to more than one collective
    unsigned generation = 0;  // completed __syncwarp count (TSan tokens alternate on it)
    unsigned at_barrier = 0;     // lanes waiting at a block barrier
    unsigned at_activemask = 0;  // lanes waiting in __activemask
  };

  struct FiberSlot {
    std::unique_ptr<FiberArg> arg;
    std::unique_ptr<Fiber> fiber;
    unsigned next = 0;  // the CUDA threads [next, end) this fiber runs one after another
    unsigned end = 0;
    bool idle = true;
  };

  static void fiber_main(void* arg);
  void run_fiber(unsigned f);
  void run_thread(unsigned t);
  void thread_exited(unsigned t);
  void prepare(Grid& grid, uint3 block);
  void schedule();
  void assign(unsigned fiber, unsigned first, unsigned last);
  void enter_fiber_mode();
  void suspend_current();
  void hand_over(Fiber& self);
  void make_runnable(unsigned t);
  void release_barrier(unsigned arriving);
  bool try_complete_warp(unsigned warp, unsigned lane_in_group);
  bool try_resolve_activemask(unsigned warp);
  void complete_warp_group(unsigned warp, unsigned lanes);
  void check_warp_arrival(unsigned t, WarpOp op, unsigned mask);
  void record_fault(cudaError_t code, const std::string& what);
  void report_deadlock();
  void abort_block();
  std::string thread_name(unsigned t) const;
  static std::string warp_op_description(const ThreadSlot& s);

  Grid* grid_ = nullptr;
  uint3 block_{};
  unsigned threads_ = 0;
  unsigned current_ = 0;
  bool fiber_mode_ = false;
  bool aborting_ = false;
  bool shutting_down_ = false;
  std::vector<ThreadSlot> slots_;
  std::vector<WarpSlot> warps_;
  FiberHome home_;  // this OS thread's scheduler context, shared by its fibers
  std::vector<FiberSlot> fibers_;
  unsigned fibers_used_ = 0;  // fibers [0, fibers_used_) have work in the current block
  std::vector<unsigned> run_queue_;
  std::size_t run_head_ = 0;
  // Block barrier state for the current generation.
  unsigned arrived_ = 0;
  int predicate_count_ = 0;
  BarrierOp barrier_op_ = BarrierOp::sync;
  unsigned barrier_generation_ = 0;
  unsigned exited_ = 0;
  unsigned first_exited_ = 0;
  // Dynamic shared memory of the running block: exactly the launch's size, so ASan
  // reports an access past it.
  unsigned char* shared_ = nullptr;
  std::size_t shared_bytes_ = 0;
  // TSan happens-before tokens (Note [TSan happens-before]).
  char block_token_ = 0;
  char barrier_tokens_[2] = {};
  std::vector<char> warp_tokens_;
};

}  // namespace kiln::sim::detail
