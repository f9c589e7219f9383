// CUDA's atomic functions for the SIM build, with the same overload set as CUDA (so code
// that compiles here compiles with nvcc): Add for int, unsigned, unsigned long long,
// float, double; Sub and Inc/Dec; Exch for int, unsigned, unsigned long long, float;
// Min/Max for int, unsigned, long long, unsigned long long; CAS for int, unsigned,
// unsigned long long, unsigned short; And/Or/Xor for the integer types. Each returns the
// old value. Blocks run on several OS threads, so these are real atomics (std::atomic_ref,
// sequentially consistent: no slower than relaxed on x86, and it gives ThreadSanitizer
// the ordering the __threadfence() patterns rely on). A misaligned address is a fault,
// as on the GPU.
#pragma once

#include <atomic>

namespace kiln::sim::detail {

template <class T>
std::atomic_ref<T> atomic_at(T* address) {
  check_alignment(address, std::atomic_ref<T>::required_alignment, "atomic");
  return std::atomic_ref<T>(*address);
}

template <class T, class F>
T atomic_update(T* address, F next) {
  auto ref = atomic_at(address);
  T old = ref.load();
  while (!ref.compare_exchange_weak(old, next(old))) {
  }
  return old;
}

}  // namespace kiln::sim::detail

#define KILN_SIM_ATOMIC_ADD(T)                                    \
  inline T atomicAdd(T* address, T val) {                         \
    return kiln::sim::detail::atomic_at(address).fetch_add(val);  \
  }
KILN_SIM_ATOMIC_ADD(int)
KILN_SIM_ATOMIC_ADD(unsigned int)
KILN_SIM_ATOMIC_ADD(unsigned long long)
KILN_SIM_ATOMIC_ADD(float)
KILN_SIM_ATOMIC_ADD(double)
#undef KILN_SIM_ATOMIC_ADD

inline int atomicSub(int* address, int val) {
  return kiln::sim::detail::atomic_at(address).fetch_sub(val);
}
inline unsigned int atomicSub(unsigned int* address, unsigned int val) {
  return kiln::sim::detail::atomic_at(address).fetch_sub(val);
}

#define KILN_SIM_ATOMIC_EXCH(T)                                   \
  inline T atomicExch(T* address, T val) {                        \
    return kiln::sim::detail::atomic_at(address).exchange(val);   \
  }
KILN_SIM_ATOMIC_EXCH(int)
KILN_SIM_ATOMIC_EXCH(unsigned int)
KILN_SIM_ATOMIC_EXCH(unsigned long long)
KILN_SIM_ATOMIC_EXCH(float)
#undef KILN_SIM_ATOMIC_EXCH

#define KILN_SIM_ATOMIC_MINMAX(T)                                                        \
  inline T atomicMin(T* address, T val) {                                                \
    return kiln::sim::detail::atomic_update(address, [val](T old) { return old < val ? old : val; }); \
  }                                                                                      \
  inline T atomicMax(T* address, T val) {                                                \
    return kiln::sim::detail::atomic_update(address, [val](T old) { return old > val ? old : val; }); \
  }
KILN_SIM_ATOMIC_MINMAX(int)
KILN_SIM_ATOMIC_MINMAX(unsigned int)
KILN_SIM_ATOMIC_MINMAX(long long)
KILN_SIM_ATOMIC_MINMAX(unsigned long long)
#undef KILN_SIM_ATOMIC_MINMAX

#define KILN_SIM_ATOMIC_CAS(T)                                          \
  inline T atomicCAS(T* address, T compare, T val) {                    \
    kiln::sim::detail::atomic_at(address).compare_exchange_strong(compare, val); \
    return compare;                                                     \
  }
KILN_SIM_ATOMIC_CAS(int)
KILN_SIM_ATOMIC_CAS(unsigned int)
KILN_SIM_ATOMIC_CAS(unsigned long long)
KILN_SIM_ATOMIC_CAS(unsigned short)
#undef KILN_SIM_ATOMIC_CAS

#define KILN_SIM_ATOMIC_BITS(T)                                                          \
  inline T atomicAnd(T* address, T val) { return kiln::sim::detail::atomic_at(address).fetch_and(val); } \
  inline T atomicOr(T* address, T val) { return kiln::sim::detail::atomic_at(address).fetch_or(val); }   \
  inline T atomicXor(T* address, T val) { return kiln::sim::detail::atomic_at(address).fetch_xor(val); }
KILN_SIM_ATOMIC_BITS(int)
KILN_SIM_ATOMIC_BITS(unsigned int)
KILN_SIM_ATOMIC_BITS(unsigned long long)
#undef KILN_SIM_ATOMIC_BITS

// ((old >= val) ? 0 : old + 1) and (((old == 0) || (old > val)) ? val : old - 1).
inline unsigned int atomicInc(unsigned int* address, unsigned int val) {
  return kiln::sim::detail::atomic_update(
      address, [val](unsigned int old) { return old >= val ? 0u : old + 1u; });
}
inline unsigned int atomicDec(unsigned int* address, unsigned int val) {
  return kiln::sim::detail::atomic_update(
      address, [val](unsigned int old) { return (old == 0u || old > val) ? val : old - 1u; });
}

// Fences: the GPU's are at least as strong as these within the emulator.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
