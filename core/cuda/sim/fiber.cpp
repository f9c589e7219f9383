// Fibers over fcontext (make_fcontext / jump_fcontext, the switch that Boost.Context's
// own fiber class is built on). Used directly so that a fiber starts only on its first
// resume and every switch can be announced to the sanitizers.
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

Fiber::Fiber(Body body, void* arg) : body_(body), arg_(arg) {
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
  if (caller_ != nullptr && !finished_) {
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
  auto* fiber = static_cast<Fiber*>(t.data);
  fiber->caller_ = t.fctx;
  fiber->back_in_fiber();
  fiber->body_(fiber->arg_);
  fiber->finish();
}

void Fiber::finish() {
  finished_ = true;
  const bctx::fcontext_t caller = caller_;
#if KILN_SIM_TSAN
  void* tsan_caller = tsan_caller_;
  __tsan_ignore_thread_end();  // the ignore that entry() began; no member access after it
  __tsan_switch_to_fiber(tsan_caller, kTsanNoSync);
#endif
#if KILN_SIM_ASAN
  // No fake-stack slot: ASan frees this fiber's fake frames.
  __sanitizer_start_switch_fiber(nullptr, caller_stack_bottom_, caller_stack_size_);
#endif
  bctx::jump_fcontext(caller, nullptr);
  std::abort();  // a finished fiber is never resumed
}

#if KILN_SIM_ASAN || KILN_SIM_TSAN
void Fiber::switch_out_of_caller() {
#if KILN_SIM_TSAN
  tsan_caller_ = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(tsan_fiber_, kTsanNoSync);
#endif
#if KILN_SIM_ASAN
  __sanitizer_start_switch_fiber(&caller_fake_stack_,
                                 static_cast<char*>(stack_base_) + guard_bytes_,
                                 kFiberStackBytes);
#endif
}

void Fiber::back_in_caller() {
#if KILN_SIM_ASAN
  __sanitizer_finish_switch_fiber(caller_fake_stack_, nullptr, nullptr);
#endif
}

void Fiber::switch_out_of_fiber() {
#if KILN_SIM_TSAN
  __tsan_switch_to_fiber(tsan_caller_, kTsanNoSync);
#endif
#if KILN_SIM_ASAN
  __sanitizer_start_switch_fiber(&fiber_fake_stack_, caller_stack_bottom_, caller_stack_size_);
#endif
}

void Fiber::back_in_fiber() {
#if KILN_SIM_ASAN
  __sanitizer_finish_switch_fiber(fiber_fake_stack_, &caller_stack_bottom_, &caller_stack_size_);
#endif
}
#endif

}  // namespace kiln::sim::detail
