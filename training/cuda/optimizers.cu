// cuda optimizer step over one flat group (see Note [Flat parameter buffers] in
// training/optimizers.h): ONE fused elementwise launch per step. Every member starts on a
// kChunk boundary and numel is a multiple of kChunk, so a work item takes N consecutive
// elements (N = 16 bytes / slot itemsize: 4 floats, 2 doubles) with 128-bit loads of the
// slots, and all N lie in one chunk: one member lookup per item. clipnorm /
// global_clipnorm run two small kernels first: sums of squares per chunk (double), then
// per member in member order with the clip factors (detail::clipnorm_denominator,
// detail::global_clip_scale), which the step reads; the summation order is fixed and
// mirrored by the cpu (Note [Norm reduction order] in training/optimizer_math.h).
#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/cuda/loops.cuh"
#include "kiln/training/optimizer_math.h"

namespace kiln::optimizers::cuda {
namespace {

using detail::FlatArgs;
using detail::NormArgs;
using detail::NormMode;
using detail::UpdateKind;
using kiln::cuda::load_vector;
using kiln::cuda::Packet;
using kiln::cuda::store_vector;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kNormBlock = detail::kNormThreads;  // Note [Norm reduction order]

// Work item i: elements [i * N, (i + 1) * N) of every buffer; S slots (a constant, so
// the slot arrays stay in registers).
template <UpdateKind K, class T, int N, int S>
struct FusedStep {
  using C = math::compute_t<T>;
  T* param;
  const T* grad;
  C* slots[detail::kMaxSlots];
  std::int64_t chunk;
  const std::int32_t* chunk_member;
  const std::uint8_t* active;
  NormMode norm_mode;
  const double* norm;
  detail::Scalars<C> k;

  __device__ void operator()(std::int64_t i) const {
    const std::int64_t e = i * N;
    const std::int32_t member = chunk_member ? chunk_member[e / chunk] : 0;
    if (active && !active[member]) return;
    C scale = C(0);
    if (norm_mode == NormMode::per_param) scale = static_cast<C>(norm[member]);
    if (norm_mode == NormMode::global) scale = static_cast<C>(norm[0]);
    auto vp = load_vector<Packet<T, N>>(param + e);
    const auto vg = load_vector<Packet<T, N>>(grad + e);
    Packet<C, N> vs[S > 0 ? S : 1];
KILN_UNROLL
    for (int j = 0; j < S; ++j) vs[j] = load_vector<Packet<C, N>>(slots[j] + e);
KILN_UNROLL
    for (int q = 0; q < N; ++q) {
      C s[detail::kMaxSlots] = {};
KILN_UNROLL
      for (int j = 0; j < S; ++j) s[j] = vs[j].v[q];
      C p = convert<C>(vp.v[q]);
      detail::update_element<K>(p, convert<C>(vg.v[q]), s, k, norm_mode, scale);
      vp.v[q] = convert<T>(p);
KILN_UNROLL
      for (int j = 0; j < S; ++j) vs[j].v[q] = s[j];
    }
    store_vector(param + e, vp);
KILN_UNROLL
    for (int j = 0; j < S; ++j) store_vector(slots[j] + e, vs[j]);
  }
};

// Sum over the block; every thread gets it. smem holds one double per warp. The order is
// the one detail::block_sum_in_order mirrors on the cpu.
__device__ double block_sum(double v, double* smem) {
  for (int d = 16; d > 0; d /= 2) v += __shfl_xor_sync(kFullMask, v, d);
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = 0.0;
  for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) v += smem[w];
  __syncthreads();
  return v;
}

// partials[c] = sum of g^2 over chunk c (a block per chunk, grid-stride over chunks).
template <class T>
__global__ void chunk_sumsq_kernel(const T* grad, std::int64_t chunks, std::int64_t chunk, double* partials) {
  __shared__ double smem[kNormBlock / 32];
  for (std::int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    double sum = 0.0;
    for (std::int64_t i = threadIdx.x; i < chunk; i += blockDim.x) {
      const double g = static_cast<double>(convert<math::compute_t<T>>(grad[c * chunk + i]));
      sum += g * g;
    }
    sum = block_sum(sum, smem);
    if (threadIdx.x == 0) partials[c] = sum;
  }
}

// One block: each member's sum of its chunks' partials, in member order, then the clip
// factors.
__global__ void member_norms_kernel(const double* partials, const std::int32_t* member_chunks, int members,
                                    NormMode mode, double clipnorm, double* norm) {
  __shared__ double smem[kNormBlock / 32];
  double total = 0.0;
  for (int m = 0; m < members; ++m) {
    double sum = 0.0;
    for (std::int32_t c = member_chunks[m] + static_cast<std::int32_t>(threadIdx.x); c < member_chunks[m + 1];
         c += static_cast<std::int32_t>(blockDim.x)) {
      sum += partials[c];
    }
    sum = block_sum(sum, smem);
    if (threadIdx.x == 0 && mode == NormMode::per_param) norm[m] = detail::clipnorm_denominator(sum, clipnorm);
    total += sum;
  }
  if (threadIdx.x == 0) {
    norm[members] = total;
    if (mode == NormMode::global) norm[0] = detail::global_clip_scale(total, clipnorm);
  }
}

}  // namespace

void fused_step(const FlatArgs& a, const detail::StepScalars& s, int device) {
  if (a.numel == 0) return;
  kiln::cuda::DeviceGuard guard(device);
  void* stream = kiln::cuda::current_stream(device).native();
  detail::visit_param_dtype(a.dtype, [&]<class T>() {
    using C = math::compute_t<T>;
    constexpr int N = static_cast<int>(16 / sizeof(C));
    KILN_ASSERT(a.numel % a.chunk == 0 && a.chunk % N == 0, "optimizer step: flat buffer of ", a.numel,
                " elements is not whole chunks of ", a.chunk);
    detail::visit_update_kind(s.kind, [&]<UpdateKind K>() {
      detail::visit_slot_count(a.nslots, [&]<int S>() {
        if constexpr (detail::slot_count_possible<K>(S)) {
          FusedStep<K, T, N, S> f{static_cast<T*>(a.param), static_cast<const T*>(a.grad), {}, a.chunk,
                                  a.chunk_member, a.active, a.norm_mode, a.norm, detail::to_compute<C>(s)};
          for (int j = 0; j < S; ++j) f.slots[j] = static_cast<C*>(a.slots[j]);
          kiln::cuda::launch_elementwise(a.numel / N, stream, f);
        } else {
          KILN_ASSERT(false, "optimizer step: update kind ", static_cast<int>(K), " with ", S, " slots");
        }
      });
    });
  });
}

void clip_norms(const NormArgs& a, int device) {
  if (a.numel == 0) return;
  kiln::cuda::DeviceGuard guard(device);
  const auto stream = static_cast<cudaStream_t>(kiln::cuda::current_stream(device).native());
  const std::int64_t chunks = a.numel / a.chunk;
  const auto& props = kiln::cuda::properties(device);
  const auto grid = static_cast<unsigned>(
      std::min<std::int64_t>(chunks, std::int64_t{props.multiprocessor_count} * kiln::cuda::kElementwiseBlocksPerSm));
  detail::visit_param_dtype(a.dtype, [&]<class T>() {
    KILN_LAUNCH(chunk_sumsq_kernel<T>, dim3(grid), dim3(kNormBlock), 0, stream)(
        static_cast<const T*>(a.grad), chunks, a.chunk, a.partials);
  });
  KILN_LAUNCH(member_norms_kernel, dim3(1), dim3(kNormBlock), 0, stream)(
      a.partials, a.member_chunks, a.members, a.mode, a.clipnorm, a.norm);
}

}  // namespace kiln::optimizers::cuda
