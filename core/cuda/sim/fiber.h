// A minimal stackful fiber over Boost.Context's fcontext switch (internal). One fiber
// runs CUDA threads of a block; the OS thread that resumes it (the block scheduler) is
// where it returns on suspend(). Fibers never move between OS threads, so thread_local
// state (shared memory, threadIdx) stays valid across a switch. Switches are announced to
// ASan and TSan (sanitizer.h). A switch costs a few nanoseconds, which is what makes one
// fiber per CUDA thread affordable.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cstddef>

#include "kiln/core/cuda/sim/sanitizer.h"

namespace kiln::sim::detail {

class Fiber {
 public:
  using Body = void (*)(void* arg);

  // Allocates the stack (kFiberStackBytes plus a guard page); body(arg) starts on the
  // first resume(). When body returns the fiber is finished and may be destroyed.
  Fiber(Body body, void* arg);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // From the scheduler: runs the fiber until it suspends or finishes. Inline, as is
  // suspend(): an extra call level around a stack switch costs return mispredictions
  // that doubled the round trip (18 ns -> 44 ns) when measured.
  // The target is read before the sanitizer hears of the switch, so that TSan charges
  // the read to the side that owns it.
  void resume() {
    const boost::context::detail::fcontext_t target = context_;
    switch_out_of_caller();
    context_ = boost::context::detail::jump_fcontext(target, this).fctx;
    back_in_caller();
  }
  // From inside the fiber: returns to the scheduler that resumed it.
  void suspend() {
    const boost::context::detail::fcontext_t target = caller_;
    switch_out_of_fiber();
    caller_ = boost::context::detail::jump_fcontext(target, nullptr).fctx;
    back_in_fiber();
  }
  bool started() const { return caller_ != nullptr; }
  bool finished() const { return finished_; }

 private:
  static void entry(boost::context::detail::transfer_t t);
  [[noreturn]] void finish();
  // Sanitizer announcements around each switch (empty without sanitizers).
  void switch_out_of_caller();
  void back_in_caller();
  void switch_out_of_fiber();
  void back_in_fiber();

  Body body_;
  void* arg_;
  void* stack_base_ = nullptr;   // mmap'd region: guard page, then the stack
  std::size_t mapped_bytes_ = 0;
  std::size_t guard_bytes_ = 0;
  boost::context::detail::fcontext_t context_ = nullptr;  // the fiber, while not running
  boost::context::detail::fcontext_t caller_ = nullptr;   // the scheduler, while it runs
  bool finished_ = false;
  // Sanitizer bookkeeping: the scheduler's stack bounds, fake stacks, TSan fibers.
  const void* caller_stack_bottom_ = nullptr;
  std::size_t caller_stack_size_ = 0;
  void* caller_fake_stack_ = nullptr;
  void* fiber_fake_stack_ = nullptr;
  void* tsan_fiber_ = nullptr;
  void* tsan_caller_ = nullptr;
};

#if !KILN_SIM_ASAN && !KILN_SIM_TSAN
inline void Fiber::switch_out_of_caller() {}
inline void Fiber::back_in_caller() {}
inline void Fiber::switch_out_of_fiber() {}
inline void Fiber::back_in_fiber() {}
#endif

}  // namespace kiln::sim::detail
