// Fibers over fcontext (make_fcontext / jump_fcontext, the switch that Boost.Context's
// own fiber class is built on). Used directly so that a fiber starts only when first
// switched to, fibers can hand over to each other, and every switch can be announced to
// the sanitizers.
#include "kiln/core/cuda/sim/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace kiln::sim::detail {
namespace bctx = boost::context::detail;

namespace {
#if KILN_SIM_TSAN
// Switches never synchronise: barriers add the happens-before edges kernels are owed.
constexpr unsigned kTsanNoSync = 1;
#endif
}  // namespace

Fiber::Fiber(FiberHome& home, Body body, void* arg) : home_(&home), body_(body), arg_(arg) {
  guard_bytes_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  mapped_bytes_ = kFiberStackBytes + guard_bytes_;
  void* p = ::mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (::mprotect(p, guard_bytes_, PROT_NONE) != 0) {  // the guard page, at the low end
    ::munmap(p, mapped_bytes_);
    throw std::bad_alloc();
  }
  stack_base_ = p;
  context_ = bctx::make_fcontext(static_cast<char*>(p) + mapped_bytes_, kFiberStackBytes,
                                 &Fiber::entry);
#if KILN_SIM_TSAN
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
}

Fiber::~Fiber() {
  // A fiber that started and has not finished still has live frames on its stack;
  // unmapping it would skip their destructors, so owners let fibers finish first.
  if (started_ && !finished_) {
    std::fprintf(stderr, "kiln sim: internal error: destroying a suspended fiber\n");
    std::abort();
  }
#if KILN_SIM_TSAN
  __tsan_destroy_fiber(tsan_fiber_);
#endif
  ::munmap(stack_base_, mapped_bytes_);
}

void Fiber::entry(bctx::transfer_t t) {
#if KILN_SIM_TSAN
  // A fiber runs emulator code unchecked; the body re-enables checks around kernel code
  // (TsanCheck in block.cpp). Ignores are per TSan fiber, so this stays with this one.
  __tsan_ignore_thread_begin();
#endif
  Fiber* self = static_cast<const Handover*>(t.data)->to;
  self->started_ = true;
  self->from_home_ = land(*self->home_, t);
#if KILN_SIM_ASAN
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  if (self->from_home_) {
    self->home_->stack_bottom = bottom;
    self->home_->stack_size = size;
  }
#endif
  self->body_(self->arg_);
  self->finish();
}

void Fiber::finish() {
  finished_ = true;
  // A member, not a local: ASan frees this fiber's fake stack (where locals may live)
  // before the scheduler reads the handover.
  exit_handover_ = Handover{this, nullptr};
  Handover* h = &exit_handover_;
  FiberHome& home = *home_;
  const bctx::fcontext_t target = home.context;
#if KILN_SIM_TSAN
  void* tsan_home = home.tsan_fiber;
  __tsan_ignore_thread_end();  // the ignore that entry() began; no member access after it
  __tsan_switch_to_fiber(tsan_home, kTsanNoSync);
#endif
#if KILN_SIM_ASAN
  // No fake-stack slot: ASan frees this fiber's fake frames.
  __sanitizer_start_switch_fiber(nullptr, home.stack_bottom, home.stack_size);
#endif
  bctx::jump_fcontext(target, h);
  std::abort();  // a finished fiber is never switched to again
}

#if KILN_SIM_ASAN || KILN_SIM_TSAN
void Fiber::enter_from_home() {
#if KILN_SIM_TSAN
  home_->tsan_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(tsan_fiber_, kTsanNoSync);
#endif
#if KILN_SIM_ASAN
  __sanitizer_start_switch_fiber(&home_->fake_stack,
                                 static_cast<char*>(stack_base_) + guard_bytes_,
                                 kFiberStackBytes);
#endif
}

void Fiber::back_home() {
#if KILN_SIM_ASAN
  __sanitizer_finish_switch_fiber(home_->fake_stack, nullptr, nullptr);
#endif
}

void Fiber::leave_for(Fiber* next) {
#if KILN_SIM_TSAN
  __tsan_switch_to_fiber(next != nullptr ? next->tsan_fiber_ : home_->tsan_fiber, kTsanNoSync);
#endif
#if KILN_SIM_ASAN
  if (next != nullptr) {
    __sanitizer_start_switch_fiber(&fake_stack_,
                                   static_cast<char*>(next->stack_base_) + next->guard_bytes_,
                                   kFiberStackBytes);
  } else {
    __sanitizer_start_switch_fiber(&fake_stack_, home_->stack_bottom, home_->stack_size);
  }
#endif
}

void Fiber::back_in_fiber() {
#if KILN_SIM_ASAN
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(fake_stack_, &bottom, &size);
  if (from_home_) {
    home_->stack_bottom = bottom;
    home_->stack_size = size;
  }
#endif
}
#endif

}  // namespace kiln::sim::detail
