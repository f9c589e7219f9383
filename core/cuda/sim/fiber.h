// A minimal stackful fiber over Boost.Context's fcontext switch (internal). The fibers of
// one OS thread share a FiberHome: the scheduler context that resumes them. A fiber that
// waits hands control straight to the next runnable fiber (switch_to) or back home
// (suspend); one jump per handover instead of two through the scheduler. Fibers never
// move between OS threads, so thread_local state (shared memory, threadIdx) stays valid
// across a switch. Switches are announced to ASan and TSan (sanitizer.h).
//
// Every jump carries a Handover naming sender (nullptr for the scheduler) and receiver;
// whoever lands stores the sender's saved context where it belongs (fcontext contexts
// are one-shot), and a fiber starting for the first time learns who it is.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cstddef>

#include "kiln/core/cuda/sim/sanitizer.h"

namespace kiln::sim::detail {

// The scheduler side of one OS thread's fibers.
struct FiberHome {
  boost::context::detail::fcontext_t context = nullptr;  // saved while a fiber runs
  const void* stack_bottom = nullptr;  // ASan: the scheduler's stack
  std::size_t stack_size = 0;
  void* fake_stack = nullptr;          // ASan: the scheduler's fake-stack save slot
  void* tsan_fiber = nullptr;          // TSan: the scheduler's fiber
};

class Fiber;

struct Handover {
  Fiber* from;  // nullptr: the scheduler
  Fiber* to;    // nullptr: the scheduler
};

class Fiber {
 public:
  using Body = void (*)(void* arg);

  // Allocates the stack (kFiberStackBytes plus a guard page); body(arg) starts on the
  // first switch into the fiber. When body returns the fiber is finished.
  Fiber(FiberHome& home, Body body, void* arg);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // From the scheduler: runs fibers, starting with this one, until one returns home.
  // Inline, as are the others: an extra call level around a stack switch costs return
  // mispredictions that doubled the round trip (18 ns -> 44 ns) when measured.
  void resume() {
    Handover h{nullptr, this};
    const boost::context::detail::fcontext_t target = context_;  // read before the
    enter_from_home();                                           // sanitizers switch
    land(*home_, boost::context::detail::jump_fcontext(target, &h));
    back_home();
  }
  // From inside this fiber: returns to the scheduler.
  void suspend() {
    Handover h{this, nullptr};
    const boost::context::detail::fcontext_t target = home_->context;
    leave_for(nullptr);
    from_home_ = land(*home_, boost::context::detail::jump_fcontext(target, &h));
    back_in_fiber();
  }
  // From inside this fiber: continues `next` (suspended or not yet started) directly.
  void switch_to(Fiber& next) {
    Handover h{this, &next};
    const boost::context::detail::fcontext_t target = next.context_;
    leave_for(&next);
    from_home_ = land(*home_, boost::context::detail::jump_fcontext(target, &h));
    back_in_fiber();
  }
  bool started() const { return started_; }
  bool finished() const { return finished_; }

 private:
  static void entry(boost::context::detail::transfer_t t);
  [[noreturn]] void finish();
  // Stores the sender's context: in the sender fiber, or home when it was the
  // scheduler. Returns whether it was the scheduler.
  static bool land(FiberHome& home, boost::context::detail::transfer_t t) {
    Fiber* from = static_cast<const Handover*>(t.data)->from;
    if (from == nullptr) {
      home.context = t.fctx;
      return true;
    }
    from->context_ = t.fctx;
    return false;
  }
  // Sanitizer announcements around each switch (empty without sanitizers).
  void enter_from_home();
  void back_home();
  void leave_for(Fiber* next);
  void back_in_fiber();

  FiberHome* home_;
  Body body_;
  void* arg_;
  void* stack_base_ = nullptr;   // mmap'd region: guard page, then the stack
  std::size_t mapped_bytes_ = 0;
  std::size_t guard_bytes_ = 0;
  boost::context::detail::fcontext_t context_ = nullptr;  // saved while not running
  bool started_ = false;
  bool finished_ = false;
  bool from_home_ = false;       // the last switch into this fiber came from the scheduler
  [[maybe_unused]] void* fake_stack_ = nullptr;  // ASan: this context's fake-stack slot
  Handover exit_handover_{nullptr, nullptr};
  [[maybe_unused]] void* tsan_fiber_ = nullptr;
};

#if !KILN_SIM_ASAN && !KILN_SIM_TSAN
inline void Fiber::enter_from_home() {}
inline void Fiber::back_home() {}
inline void Fiber::leave_for(Fiber*) {}
inline void Fiber::back_in_fiber() {}
#endif

}  // namespace kiln::sim::detail
