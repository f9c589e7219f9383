// Sanitizer annotations the emulator needs (internal). Each is a no-op unless kiln is
// built with the matching KILN_SANITIZE:
//   address: fiber stack switches are announced with __sanitizer_start/finish_switch_fiber
//            so ASan tracks the right stack and its fake stacks;
//   thread:  every fiber is a TSan fiber, switched without synchronisation, so two CUDA
//            threads of one block race unless a barrier orders them (Note [TSan
//            happens-before] in block.cpp); the emulator's own bookkeeping runs inside
//            ignore regions so that only kernel code is checked.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define KILN_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_SIM_ASAN 1
#endif
#endif
#ifndef KILN_SIM_ASAN
#define KILN_SIM_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define KILN_SIM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KILN_SIM_TSAN 1
#endif
#endif
#ifndef KILN_SIM_TSAN
#define KILN_SIM_TSAN 0
#endif

#if KILN_SIM_ASAN
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                     std::size_t* size_old);
}
#endif

#if KILN_SIM_TSAN
extern "C" {
void* __tsan_get_current_fiber();
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
}
#endif

namespace kiln::sim::detail {

// Fiber stacks: big enough for kernels with local arrays of a few KiB; sanitizers add
// redzones and shadow frames, so they get more. A guard page below each stack turns an
// overflow into a SIGSEGV instead of silent corruption.
inline constexpr std::size_t kFiberStackBytes =
    (KILN_SIM_ASAN || KILN_SIM_TSAN) ? 256 * 1024 : 64 * 1024;

// Happens-before edges through a token address (TSan only).
inline void tsan_release(void* token) {
#if KILN_SIM_TSAN
  __tsan_release(token);
#else
  (void)token;
#endif
}
inline void tsan_acquire(void* token) {
#if KILN_SIM_TSAN
  __tsan_acquire(token);
#else
  (void)token;
#endif
}

// While alive, TSan ignores this fiber's (or thread's) memory accesses: used around the
// emulator's own bookkeeping, never around kernel code.
class TsanIgnore {
 public:
#if KILN_SIM_TSAN
  TsanIgnore() { __tsan_ignore_thread_begin(); }
  ~TsanIgnore() { __tsan_ignore_thread_end(); }
#else
  TsanIgnore() {}
#endif
  TsanIgnore(const TsanIgnore&) = delete;
  TsanIgnore& operator=(const TsanIgnore&) = delete;
};

// The reverse, inside an ignore region: kernel code runs checked while alive.
class TsanCheck {
 public:
#if KILN_SIM_TSAN
  TsanCheck() { __tsan_ignore_thread_end(); }
  ~TsanCheck() { __tsan_ignore_thread_begin(); }
#else
  TsanCheck() {}
#endif
  TsanCheck(const TsanCheck&) = delete;
  TsanCheck& operator=(const TsanCheck&) = delete;
};

}  // namespace kiln::sim::detail
