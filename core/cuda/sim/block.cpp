// Block execution: fast path, fiber mode, block barriers and divergence checks.
//
// Note [Block execution]
// A block's CUDA threads run on the OS thread that took the block. Fast path: one fiber
// runs threads 0, 1, 2, ... as plain calls, one after another, so a kernel without
// barriers or warp collectives (elementwise work) never switches. When a thread first
// waits (a barrier or a warp collective) the block enters fiber mode: the waiting thread
// keeps the first fiber, every later thread gets a fiber of its own, and runnable threads
// run in FIFO order, each until it waits or exits; a fiber that stops hands over straight
// to the next runnable one (one switch, not two through the scheduler). Threads before
// the first waiter have exited by then, which is exactly what a barrier must report. The
// last thread to arrive at a barrier or warp collective releases the others and carries
// on without a switch. Fibers and their stacks belong to the OS thread and serve every block
// it runs; fibers never migrate, so thread_local state (__shared__, threadIdx) holds.
//
// Divergence checks (CUDA leaves these undefined; a GPU hangs or computes garbage):
//   - a thread arrives at a block barrier after another thread of the block exited, or
//     exits while others wait there: "barrier divergence";
//   - threads meet at different barrier kinds (__syncthreads vs __syncthreads_count);
//   - threads still wait but none can run (a barrier in a warp-divergent branch, a warp
//     collective whose lanes wait at a block barrier): "deadlock".
// Warp collectives (warp.cpp) follow CUDA's rules instead: exited lanes and lanes past a
// partial warp's end are simply not waited for.
//
// Note [TSan happens-before]
// Under ThreadSanitizer every CUDA thread runs on its own fiber from the start (no fast
// path), fibers switch without synchronising (fiber.cpp) and the emulator's bookkeeping
// runs inside ignore regions. Edges are added only where CUDA promises ordering: block
// start -> each thread; every arrival at a barrier generation -> every release from it
// (two tokens for alternating generations, so a fast thread's arrival at the next barrier
// is not mistaken for this one's); __syncwarp likewise per warp; each thread's exit -> the
// end of the launch. A missing __syncthreads between a shared-memory write and a read by
// another thread is then reported as a race at those source lines.
#include "kiln/core/cuda/sim/block.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>

#include "kiln/core/cuda/sim/scheduler.h"
#include "kiln/core/cuda/sim/state.h"

constinit thread_local uint3 threadIdx KILN_SIM_TLS = {};
constinit thread_local uint3 blockIdx KILN_SIM_TLS = {};
constinit thread_local uint3 blockDim KILN_SIM_TLS = {};
constinit thread_local uint3 gridDim KILN_SIM_TLS = {};

namespace kiln::sim::detail {

constinit thread_local unsigned char* t_dynamic_shared KILN_SIM_TLS = nullptr;

namespace {

constexpr bool kFastPath = !KILN_SIM_TSAN;
constexpr std::size_t kSharedAlignment = 128;
constexpr unsigned char kPoisonByte = 0xFF;

thread_local BlockRunner* t_active = nullptr;  // set while a CUDA thread runs here

const char* barrier_name(BarrierOp op) {
  switch (op) {
    case BarrierOp::sync: return "__syncthreads";
    case BarrierOp::count: return "__syncthreads_count";
    case BarrierOp::all: return "__syncthreads_and";
    case BarrierOp::any: return "__syncthreads_or";
  }
  return "a barrier";
}

}  // namespace

struct FiberArg {
  BlockRunner* runner;
  unsigned index;
};

BlockRunner& BlockRunner::of_this_thread() {
  thread_local std::unique_ptr<BlockRunner> runner;
  if (!runner) runner = std::make_unique<BlockRunner>();
  return *runner;
}

BlockRunner* BlockRunner::active() { return t_active; }

BlockRunner::BlockRunner() {
  // Fixed sizes: fibers hold pointers into these vectors while suspended.
  slots_.resize(kMaxThreadsPerBlock);
  warps_.resize(kMaxThreadsPerBlock / kWarpSize);
  fibers_.resize(kMaxThreadsPerBlock);
  warp_tokens_.resize(2 * warps_.size());
  run_queue_.reserve(kMaxThreadsPerBlock);
}

BlockRunner::~BlockRunner() {
  // Idle fibers wait at the top of run_fiber; let each return so its stack unwinds.
  TsanIgnore ignore;
  shutting_down_ = true;
  for (FiberSlot& f : fibers_) {
    if (f.fiber && f.fiber->started()) {
      while (!f.fiber->finished()) f.fiber->resume();
    }
  }
  ::operator delete(shared_, std::align_val_t(kSharedAlignment));
}

void BlockRunner::fiber_main(void* arg) {
  auto* a = static_cast<FiberArg*>(arg);
  a->runner->run_fiber(a->index);
}

void BlockRunner::run_fiber(unsigned f) {
  for (;;) {
    if (shutting_down_) return;
    FiberSlot& slot = fibers_[f];
    while (slot.next < slot.end) run_thread(slot.next++);
    slot.idle = true;
    hand_over(*slot.fiber);
  }
}

void BlockRunner::run_thread(unsigned t) {
  if (aborting_) return;
  ThreadSlot& s = slots_[t];
  s.state = State::running;
  current_ = t;
  threadIdx = s.index;
  t_active = this;
  tsan_acquire(&block_token_);
  bool returned = false;
  try {
    TsanCheck check;
    grid_->desc.invoke(grid_->desc.call);
    returned = true;
  } catch (const ThreadAbort&) {
  } catch (const std::exception& e) {
    record_fault(cudaErrorLaunchFailure,
                 "thread " + thread_name(t) + " threw an exception: " + e.what());
  } catch (...) {
    record_fault(cudaErrorLaunchFailure, "thread " + thread_name(t) + " threw an exception");
  }
  t_active = nullptr;
  tsan_release(&grid_->tsan_token);  // also for unwound threads: they touched memory too
  if (returned) thread_exited(t);
}

void BlockRunner::thread_exited(unsigned t) {
  slots_[t].state = State::exited;
  if (exited_++ == 0) first_exited_ = t;
  if (arrived_ > 0) {
    unsigned waiter = 0;
    while (slots_[waiter].state != State::at_barrier) ++waiter;
    record_fault(cudaErrorLaunchFailure,
                 "barrier divergence: thread " + thread_name(t) + " exited while thread " +
                     thread_name(waiter) + " waits at " + barrier_name(barrier_op_));
    return;
  }
  const unsigned warp = t / kWarpSize;
  WarpSlot& w = warps_[warp];
  w.exited |= 1u << (t % kWarpSize);
  // Lanes waiting in a collective no longer wait for this one.
  for (unsigned rest = w.waiting; rest != 0;) {
    const unsigned lane = static_cast<unsigned>(__builtin_ctz(rest));
    rest &= ~slots_[warp * kWarpSize + lane].mask;
    rest &= ~(1u << lane);
    try_complete_warp(warp, lane);
  }
  try_resolve_activemask(warp);
}

void BlockRunner::prepare(Grid& grid, uint3 block) {
  grid_ = &grid;
  block_ = block;
  threads_ = grid.threads_per_block;
  const dim3 bd = grid.desc.block;
  blockIdx = block;
  blockDim = uint3{bd.x, bd.y, bd.z};
  gridDim = uint3{grid.desc.grid.x, grid.desc.grid.y, grid.desc.grid.z};
  for (unsigned t = 0; t < threads_; ++t) {
    ThreadSlot& s = slots_[t];
    s.index = uint3{t % bd.x, (t / bd.x) % bd.y, t / (bd.x * bd.y)};
    s.state = State::pending;
    s.fiber = 0;
  }
  const unsigned warps = (threads_ + kWarpSize - 1) / kWarpSize;
  for (unsigned w = 0; w < warps; ++w) {
    const unsigned lanes = std::min(kWarpSize, static_cast<int>(threads_ - w * kWarpSize));
    warps_[w] = WarpSlot{};
    warps_[w].existing = lanes == 32 ? ~0u : (1u << lanes) - 1u;
  }
  current_ = 0;
  fiber_mode_ = false;
  aborting_ = false;
  arrived_ = 0;
  predicate_count_ = 0;
  exited_ = 0;
  fibers_used_ = 0;
  run_queue_.clear();
  run_head_ = 0;
  const std::size_t bytes = grid.desc.shared_bytes;
  if (bytes != shared_bytes_) {
    ::operator delete(shared_, std::align_val_t(kSharedAlignment));
    shared_ = bytes == 0 ? nullptr
                         : static_cast<unsigned char*>(
                               ::operator new(bytes, std::align_val_t(kSharedAlignment)));
    shared_bytes_ = bytes;
  }
  if (bytes != 0) std::memset(shared_, kPoisonByte, bytes);
  t_dynamic_shared = shared_;
}

void BlockRunner::run(Grid& grid, uint3 block) {
  TsanIgnore ignore;
  prepare(grid, block);
  tsan_release(&block_token_);
  if (kFastPath) {
    assign(0, 0, threads_);
    fibers_[0].fiber->resume();
  } else {
    fiber_mode_ = true;
    for (unsigned t = 0; t < threads_; ++t) {
      assign(t, t, t + 1);
      slots_[t].fiber = t;
      make_runnable(t);
    }
  }
  schedule();
  if (!aborting_ && exited_ != threads_) report_deadlock();
  if (aborting_) abort_block();
  tsan_acquire(&grid.tsan_token);
}

void BlockRunner::assign(unsigned fiber, unsigned first, unsigned last) {
  FiberSlot& f = fibers_[fiber];
  if (!f.fiber) {
    f.arg = std::make_unique<FiberArg>(FiberArg{this, fiber});
    f.fiber = std::make_unique<Fiber>(home_, &BlockRunner::fiber_main, f.arg.get());
  }
  f.next = first;
  f.end = last;
  f.idle = false;
  fibers_used_ = std::max(fibers_used_, fiber + 1);
}

// Fibers hand over to each other while threads are runnable (hand_over); control comes
// back here when none is, or when the block aborts.
void BlockRunner::schedule() {
  while (run_head_ < run_queue_.size() && !aborting_) {
    const unsigned t = run_queue_[run_head_++];
    fibers_[slots_[t].fiber].fiber->resume();
  }
}

// From a fiber whose thread waits or is done: continue the next runnable thread directly,
// or return to the scheduler when there is none (or the block is aborting).
void BlockRunner::hand_over(Fiber& self) {
  if (!aborting_ && run_head_ < run_queue_.size()) {
    const unsigned next = run_queue_[run_head_++];
    Fiber& target = *fibers_[slots_[next].fiber].fiber;
    if (&target == &self) {  // each waiting or idle fiber's threads are all done or waiting
      std::fprintf(stderr, "kiln sim: internal error: a fiber handed over to itself\n");
      std::abort();
    }
    self.switch_to(target);
    return;
  }
  self.suspend();
}

void BlockRunner::make_runnable(unsigned t) {
  if (run_head_ == run_queue_.size()) {
    run_queue_.clear();
    run_head_ = 0;
  }
  slots_[t].state = State::running;
  run_queue_.push_back(t);
}

void BlockRunner::enter_fiber_mode() {
  // The plain-call fiber stops after the current thread; each later thread gets its own.
  fiber_mode_ = true;
  const unsigned t = current_;
  fibers_[0].end = t + 1;
  for (unsigned u = t + 1; u < threads_; ++u) {
    assign(u - t, u, u + 1);
    slots_[u].fiber = u - t;
    make_runnable(u);
  }
}

void BlockRunner::suspend_current() {
  const unsigned t = current_;
  t_active = nullptr;
  hand_over(*fibers_[slots_[t].fiber].fiber);
  t_active = this;
  current_ = t;
  threadIdx = slots_[t].index;
  if (aborting_) throw ThreadAbort{};
}

int BlockRunner::barrier(BarrierOp op, int predicate) {
  TsanIgnore ignore;
  if (!fiber_mode_) enter_fiber_mode();
  const unsigned t = current_;
  if (exited_ > 0) {
    fault(cudaErrorLaunchFailure, "barrier divergence: thread " + thread_name(t) + " waits at " +
                                      barrier_name(op) + ", which thread " +
                                      thread_name(first_exited_) + " exited without reaching");
  }
  if (arrived_ == 0) {
    barrier_op_ = op;
  } else if (op != barrier_op_) {
    fault(cudaErrorLaunchFailure, "barrier divergence: thread " + thread_name(t) + " waits at " +
                                      barrier_name(op) + " while other threads wait at " +
                                      barrier_name(barrier_op_));
  }
  const unsigned generation = barrier_generation_;
  ++arrived_;
  predicate_count_ += predicate != 0 ? 1 : 0;
  tsan_release(&barrier_tokens_[generation & 1]);
  if (arrived_ == threads_) {
    release_barrier(t);
  } else {
    slots_[t].state = State::at_barrier;
    warps_[t / kWarpSize].at_barrier |= 1u << (t % kWarpSize);
    try_resolve_activemask(t / kWarpSize);
    suspend_current();
  }
  tsan_acquire(&barrier_tokens_[generation & 1]);
  return static_cast<int>(slots_[t].result);
}

void BlockRunner::release_barrier(unsigned arriving) {
  int result = 0;
  switch (barrier_op_) {
    case BarrierOp::sync: break;
    case BarrierOp::count: result = predicate_count_; break;
    case BarrierOp::all: result = predicate_count_ == static_cast<int>(threads_); break;
    case BarrierOp::any: result = predicate_count_ > 0; break;
  }
  for (unsigned u = 0; u < threads_; ++u) {
    if (slots_[u].state != State::at_barrier) continue;
    slots_[u].result = static_cast<std::uint64_t>(result);
    make_runnable(u);
  }
  slots_[arriving].result = static_cast<std::uint64_t>(result);
  for (unsigned w = 0; w < (threads_ + kWarpSize - 1) / kWarpSize; ++w) warps_[w].at_barrier = 0;
  arrived_ = 0;
  predicate_count_ = 0;
  ++barrier_generation_;
}

void BlockRunner::fault(cudaError_t code, const std::string& what) {
  record_fault(code, what);
  throw ThreadAbort{};
}

void BlockRunner::record_fault(cudaError_t code, const std::string& what) {
  aborting_ = true;
  grid_->record_fault(code, what + " (kernel '" + grid_->kernel_name + "', block " +
                                thread_name_of(block_) + ", launched at " + grid_->desc.file +
                                ":" + std::to_string(grid_->desc.line) + ")");
}

void BlockRunner::report_deadlock() {
  std::string waiting;
  bool barrier_shown = false, warp_shown = false;
  for (unsigned u = 0; u < threads_; ++u) {
    const ThreadSlot& s = slots_[u];
    if (s.state == State::at_barrier && !barrier_shown) {
      barrier_shown = true;
      waiting += "; thread " + thread_name(u) + " waits at " + barrier_name(barrier_op_);
    } else if (s.state == State::at_warp && !warp_shown) {
      warp_shown = true;
      waiting += "; thread " + thread_name(u) + " waits in " + warp_op_description(s);
    }
  }
  record_fault(cudaErrorLaunchFailure, "deadlock: no thread can continue" + waiting);
}

void BlockRunner::abort_block() {
  // Each suspended thread resumes, sees aborting_ and unwinds (ThreadAbort); threads not
  // started yet are skipped. Then every fiber is idle again for the next block.
  for (unsigned f = 0; f < fibers_used_; ++f) {
    while (!fibers_[f].idle) fibers_[f].fiber->resume();
  }
}

std::string BlockRunner::thread_name(unsigned t) const { return thread_name_of(slots_[t].index); }

std::string thread_name_of(uint3 i) {
  return "(" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
}

int block_barrier(BarrierOp op, int predicate) {
  BlockRunner* r = BlockRunner::active();
  if (r == nullptr) outside_kernel(barrier_name(op));
  return r->barrier(op, predicate);
}

unsigned active_mask() {
  BlockRunner* r = BlockRunner::active();
  if (r == nullptr) outside_kernel("__activemask");
  return r->active_mask();
}

void misaligned_access(const void* address, std::size_t alignment, const char* what) {
  BlockRunner* r = BlockRunner::active();
  if (r == nullptr) return;
  char text[160];
  std::snprintf(text, sizeof text, "misaligned address: %s at %p needs %zu-byte alignment", what,
                address, alignment);
  r->fault(cudaErrorMisalignedAddress, std::string(text) + " in thread " +
                                           thread_name_of(threadIdx));
}

void outside_kernel(const char* what) {
  std::fprintf(stderr, "kiln sim: %s called outside a kernel\n", what);
  std::abort();
}

}  // namespace kiln::sim::detail
