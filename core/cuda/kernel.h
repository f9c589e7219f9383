// The header every kiln .cu file includes first. It gives kernels one spelling for the
// two ways they are built: by nvcc for a GPU (KILN_CUDA=ON), and by the host compiler
// against kiln's SIMT emulator (KILN_CUDA=SIM, core/cuda/sim). Apart from the three
// spellings below, kernels are plain CUDA: __global__, __device__, threadIdx, __shared__
// arrays, __syncthreads, warp shuffles and votes, atomics, fast-math intrinsics; fp16 and
// bf16 data are kiln::Half and kiln::BFloat16 (core/half.h) in both builds.
//
//   KILN_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...);
//       Launches and checks the launch (a failure throws kiln::CudaError naming the
//       launch as written, file and line). Template kernels need no parentheses:
//       KILN_LAUNCH(scale<float, 4>, grid, block, 0, stream)(x, n). Arguments convert
//       to the kernel's parameter types as in a call.
//   KILN_DYNAMIC_SHARED(float, smem);
//       Inside a kernel: declares `float* smem`, the block's dynamic shared memory (the
//       launch's shared_bytes; over 48 KiB needs cudaFuncSetAttribute first). In SIM it
//       is poisoned with 0xFF bytes (NaN floats) when each block starts.
//   kiln::cuda::load_vector<float4>(p) / kiln::cuda::store_vector(p, v)
//       Vector loads and stores (float2/float4/int4/...): SIM checks the alignment and
//       reports a misaligned one as a device fault naming kernel, block and thread, as a
//       GPU does. A plain `*reinterpret_cast<const float4*>(p)` is checked only by the
//       SIM + UBSan build; __ldg on vector types is checked like load_vector.
//
// Device code that the emulator cannot run (inline PTX, tensor-core MMA, cooperative
// groups, architecture-specific intrinsics) goes behind the one guard, with a native
// fallback that SIM (and nvcc's host pass) compiles:
//   #if KILN_DEVICE_HAS_HARDWARE && KILN_DEVICE_ARCH >= 800
//     ... mma.sync / cp.async ...
//   #else
//     ... the same math in plain CUDA ...
//   #endif
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kiln/core/half.h"
#include "kiln/core/macros.h"

#if defined(KILN_CUDA_SIM) && KILN_CUDA_SIM
#include "kiln/core/cuda/sim/device.h"
#include "kiln/core/cuda/sim/launch.h"
#include "kiln/core/cuda/sim/runtime_cxx.h"
#elif defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#error "kiln/core/cuda/kernel.h is for .cu files: compile them with nvcc (KILN_CUDA=ON) or as SIM"
#endif

#include "kiln/core/cuda/check.h"

// 1 while compiling device code for a real GPU (nvcc's device pass), else 0 (SIM, and
// nvcc's host pass). KILN_DEVICE_ARCH is __CUDA_ARCH__ there (800 = sm_80), else 0.
#if defined(__CUDA_ARCH__)
#define KILN_DEVICE_HAS_HARDWARE 1
#define KILN_DEVICE_ARCH __CUDA_ARCH__
#else
#define KILN_DEVICE_HAS_HARDWARE 0
#define KILN_DEVICE_ARCH 0
#endif

#if defined(KILN_CUDA_SIM) && KILN_CUDA_SIM
#define KILN_DYNAMIC_SHARED(T, name) \
  T* name = reinterpret_cast<T*>(::kiln::sim::detail::t_dynamic_shared)
#else
#define KILN_DYNAMIC_SHARED(T, name)                                    \
  extern __shared__ __align__(16) unsigned char kiln_dynamic_shared_[]; \
  T* name = reinterpret_cast<T*>(kiln_dynamic_shared_)
#endif

// Loop unrolling in one spelling: nvcc's pragma, or GCC's when SIM compiles kernels as C++
// (which warns on "#pragma unroll").
#if defined(__CUDACC__)
#define KILN_UNROLL _Pragma("unroll")
#else
#define KILN_UNROLL _Pragma("GCC unroll 16")
#endif

#define KILN_LAUNCH(...)                                                             \
  ::kiln::cuda::detail::Launch(#__VA_ARGS__, "KILN_LAUNCH(" #__VA_ARGS__ ")", __FILE__, \
                               __LINE__, __VA_ARGS__)

namespace kiln::cuda {

template <class V, class T>
__device__ __forceinline__ V load_vector(const T* p) {
#if defined(KILN_CUDA_SIM) && KILN_CUDA_SIM
  ::kiln::sim::detail::check_alignment(p, alignof(V), "vector load");
#endif
  return *reinterpret_cast<const V*>(p);
}

template <class V, class T>
__device__ __forceinline__ void store_vector(T* p, const V& v) {
#if defined(KILN_CUDA_SIM) && KILN_CUDA_SIM
  ::kiln::sim::detail::check_alignment(p, alignof(V), "vector store");
#endif
  *reinterpret_cast<V*>(p) = v;
}

namespace detail {

// One launch, built by KILN_LAUNCH; calling it with the kernel's arguments launches.
template <class... Params>
class Launch {
  static_assert((!std::is_reference_v<Params> && ...),
                "a __global__ function takes its parameters by value, as CUDA requires");

 public:
  Launch(const char* text, const char* call, const char* file, int line,
         void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
         cudaStream_t stream)
      : text_(text), call_(call), file_(file), line_(line), kernel_(kernel), grid_(grid),
        block_(block), shared_bytes_(shared_bytes), stream_(stream) {}

  template <class... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params),
                  "KILN_LAUNCH: the number of arguments differs from the kernel's parameters");
    // Converting through a call to a function taking Params... gives exactly the
    // conversions of calling the kernel.
    const Call call{kernel_, [](Params... p) { return std::tuple<Params...>(std::move(p)...); }(
                                 std::forward<Args>(args)...)};
    check_result<RuntimeResult>(start(call, std::index_sequence_for<Params...>{}), call_, file_,
                                line_);
  }

 private:
  struct Call {
    void (*kernel)(Params...);
    std::tuple<Params...> args;
  };

#if defined(KILN_CUDA_SIM) && KILN_CUDA_SIM
  static void invoke(const void* call) {
    const Call& c = *static_cast<const Call*>(call);
    std::apply(c.kernel, c.args);
  }

  template <std::size_t... I>
  cudaError_t start(const Call& call, std::index_sequence<I...>) const {
    ::kiln::sim::LaunchDesc d;
    d.launch_text = text_;
    d.file = file_;
    d.line = line_;
    d.kernel = reinterpret_cast<const void*>(kernel_);
    d.grid = grid_;
    d.block = block_;
    d.shared_bytes = shared_bytes_;
    d.stream = stream_;
    d.invoke = &invoke;
    d.call = &call;
    return ::kiln::sim::launch(d);
  }
#else
  template <std::size_t... I>
  cudaError_t start(const Call& call, std::index_sequence<I...>) const {
    void* args[sizeof...(I) + 1] = {const_cast<void*>(static_cast<const void*>(&std::get<I>(call.args)))...};
    return cudaLaunchKernel(reinterpret_cast<const void*>(kernel_), grid_, block_, args,
                            shared_bytes_, stream_);
  }
#endif

  const char* text_;
  const char* call_;
  const char* file_;
  int line_;
  void (*kernel_)(Params...);
  dim3 grid_;
  dim3 block_;
  std::size_t shared_bytes_;
  cudaStream_t stream_;
};

}  // namespace detail
}  // namespace kiln::cuda
