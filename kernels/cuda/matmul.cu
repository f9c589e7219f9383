// cuda GEMM: cuBLAS (KILN_CUDA=ON, the default path on a GPU) or kiln's tiled kernel
// (kernels/cuda/sgemm.cuh: always under SIM, which has no cuBLAS; on a GPU when asked).
// Both queue on the device's current stream.
#include <climits>

#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/cuda/sgemm.cuh"
#include "kiln/kernels/matmul_impl.h"
#if !KILN_CUDA_SIM
#include "kiln/kernels/cuda/cublas.h"
#endif

namespace kiln::cuda {
namespace {

// Whether 4-element vector accesses starting at `p` and stepping by multiples of `step`
// elements stay aligned (a float4, a uint2 of 16-bit values, two double2).
template <class T>
bool vector_aligned(const void* p, std::int64_t step) {
  constexpr std::size_t bytes = sizeof(T) == 8 ? 16 : 4 * sizeof(T);
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0 && step % 4 == 0;
}

template <class T>
void native_gemm(const GemmProblem& p, const GemmOptions& options, cudaStream_t stream, int device) {
  using Acc = math::compute_t<T>;
  NativeGemmArgs<T> g;
  g.a = static_cast<const T*>(p.a.data);
  g.b = static_cast<const T*>(p.b.data);
  g.c = static_cast<T*>(p.c);
  g.bias = static_cast<const T*>(p.bias);
  g.m = p.m, g.n = p.n, g.k = p.k, g.batch = p.batch;
  g.lda = p.a.ld, g.ldb = p.b.ld;
  g.stride_a = p.a.batch_stride, g.stride_b = p.b.batch_stride, g.stride_c = p.m * p.n;
  g.alpha = static_cast<Acc>(options.alpha);
  g.beta = static_cast<Acc>(options.beta);
  g.vec_a = vector_aligned<T>(p.a.data, p.a.ld) && p.a.batch_stride % 4 == 0;
  g.vec_b = vector_aligned<T>(p.b.data, p.b.ld) && p.b.batch_stride % 4 == 0;
  g.vec_c = vector_aligned<T>(p.c, p.n);
  launch_native_gemm<T>(g, p.a.transposed, p.b.transposed, stream,
                        properties(device).multiprocessor_count);
}

#if !KILN_CUDA_SIM
// C = beta * C + bias, row by row: the bias enters a cuBLAS GEMM that then runs with beta 1.
template <class T>
struct BiasInit {
  T* c;
  const T* bias;
  std::int64_t n;
  math::compute_t<T> beta;
  __device__ void operator()(std::int64_t i) const {
    const math::compute_t<T> old = beta != 0 ? beta * convert<math::compute_t<T>>(c[i]) : 0;
    c[i] = convert<T>(old + convert<math::compute_t<T>>(bias[i % n]));
  }
};

template <class T>
cudaDataType_t cuda_data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, double>) return CUDA_R_64F;
  else if constexpr (std::is_same_v<T, Half>) return CUDA_R_16F;
  else return CUDA_R_16BF;
}

int to_int(std::int64_t v, const char* what) {
  KILN_CHECK(v <= INT_MAX, ValueError, "cuBLAS gemm: ", what, " = ", v,
             " does not fit cuBLAS's 32-bit arguments; use set_gemm_backend(GemmBackend::native)");
  return static_cast<int>(v);
}

// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: cuBLAS gets B first, with n and m swapped,
// and a row-major operand is already the transpose it wants (op N); a stored-transposed
// one takes op T.
template <class T>
void vendor_gemm(const GemmProblem& p, const GemmOptions& options, cudaStream_t stream, int device) {
  double beta = options.beta;
  if (p.bias != nullptr) {
    launch_elementwise(p.batch * p.m * p.n, stream,
                       BiasInit<T>{static_cast<T*>(p.c), static_cast<const T*>(p.bias), p.n,
                                   static_cast<math::compute_t<T>>(options.beta)});
    beta = 1.0;
  }
  cublasHandle_t handle = cublas_handle(device, stream);
  constexpr bool f64 = std::is_same_v<T, double>;
  const bool tf32 = std::is_same_v<T, float> && options.allow_tf32;
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  const double alpha64 = options.alpha, beta64 = beta;
  const float alpha32 = static_cast<float>(options.alpha), beta32 = static_cast<float>(beta);
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta_ptr = f64 ? static_cast<const void*>(&beta64) : &beta32;
  const cudaDataType_t type = cuda_data_type<T>();
  KILN_LIB_CHECK(CublasResult,
                 cublasGemmStridedBatchedEx(
                     handle, p.b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N,
                     p.a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(p.n, "n"), to_int(p.m, "m"),
                     to_int(p.k, "k"), alpha, p.b.data, type, to_int(p.b.ld, "ldb"), p.b.batch_stride,
                     p.a.data, type, to_int(p.a.ld, "lda"), p.a.batch_stride, beta_ptr, p.c, type,
                     to_int(p.n, "ldc"), p.m * p.n, to_int(p.batch, "batch"), compute,
                     CUBLAS_GEMM_DEFAULT));
}
#endif

}  // namespace

void gemm(const GemmProblem& p, const GemmOptions& options, int device) {
  DeviceGuard guard(device);
  auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  visit_dtype(p.dtype, [&]<class T>() {
    if constexpr (is_floating(dtype_of<T>())) {
#if KILN_CUDA_SIM
      native_gemm<T>(p, options, stream, device);  // SIM has no vendor path
#else
      if (options.path == GemmPath::native) {
        native_gemm<T>(p, options, stream, device);
      } else {
        vendor_gemm<T>(p, options, stream, device);
      }
#endif
    } else {
      KILN_THROW(InternalError, "cuda gemm: non-floating dtype ", p.dtype);
    }
  });
}

}  // namespace kiln::cuda
