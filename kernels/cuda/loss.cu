// cuda implementation of the fused losses (formulas in kernels/loss_impl.h, row layout in
// its Note [Loss rows]). A team of threads owns one row: 4 lanes for short rows, a warp
// for rows up to kWideRow, a whole block past that. Team reductions use warp shuffles
// (and shared memory across the warps of a block). The forward reads each row once
// (twice for the from-probabilities forms, which normalise by the row's sum first); the
// backward reads y_pred (and y_true) once and writes the gradient once.
#include <algorithm>

#include "kiln/core/cuda/launch.h"
#include "kiln/kernels/loss_impl.h"

namespace kiln::cuda {
namespace {

constexpr int kRowBlock = 256;                // threads per block when teams share a block
constexpr int kWideRowBlock = 512;            // threads per block when a block owns a row
constexpr std::int64_t kWideRow = 4096;       // rows at least this long get a block
constexpr std::int64_t kShortRow = 64;        // rows up to this long get 4 lanes
constexpr int kBlocksPerSm = 8;
constexpr unsigned kFullMask = 0xffffffffu;

using loss_detail::RowState;

template <class C>
__device__ __forceinline__ RowState<C> shfl_xor(const RowState<C>& st, int offset, int width) {
  return {__shfl_xor_sync(kFullMask, st.m, offset, width), __shfl_xor_sync(kFullMask, st.s, offset, width),
          __shfl_xor_sync(kFullMask, st.a, offset, width), __shfl_xor_sync(kFullMask, st.b, offset, width)};
}

// Combines st over the team; every thread of the team gets the result. A team is 4 or 32
// lanes of one warp (every lane of the warp takes part, each in its own team), or the
// whole block (smem: 33 slots). Called by every thread of the block.
template <class C>
__device__ RowState<C> team_reduce(RowState<C> st, int team, RowState<C>* smem) {
  const int width = team < 32 ? team : 32;
  for (int offset = width / 2; offset > 0; offset /= 2)
    st = loss_detail::combine(st, shfl_xor(st, offset, width));
  if (team <= 32) return st;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  if (lane == 0) smem[warp] = st;
  __syncthreads();
  if (warp == 0) {
    st = lane < static_cast<int>(blockDim.x) / 32 ? smem[lane] : loss_detail::initial_state<C>();
    for (int offset = 16; offset > 0; offset /= 2) st = loss_detail::combine(st, shfl_xor(st, offset, 32));
    if (lane == 0) smem[32] = st;
  }
  __syncthreads();
  // The next reduction writes smem[32] only after its first barrier, so no third barrier.
  return smem[32];
}

// Row r of the operands, in the compute type. Holds copies (not a reference to the
// kernel's parameter, which would push it to local memory).
template <LossKind K, class T>
struct Row {
  using C = math::compute_t<T>;
  const T* y_pred;
  const T* y_true;
  std::int64_t inner, base, label;

  __device__ C pred(std::int64_t c) const { return convert<C>(y_pred[base + c * inner]); }
  __device__ C target(std::int64_t c) const {
    if constexpr (is_sparse(K)) {
      return c == label ? C(1) : C(0);
    } else {
      return convert<C>(y_true[base + c * inner]);
    }
  }
};

template <LossKind K, class T>
__device__ __forceinline__ Row<K, T> make_row(const LossProblem& pb, std::int64_t r) {
  std::int64_t label = -1;
  if constexpr (is_sparse(K)) label = static_cast<const std::int64_t*>(pb.y_true)[r];
  return {static_cast<const T*>(pb.y_pred), static_cast<const T*>(pb.y_true), pb.layout.inner,
          row_base(pb.layout, r), label};
}

// Every thread of a block runs the same number of iterations (the loop bound is the
// block's first row), so team reductions always see whole warps and whole blocks.
template <LossKind K, class T>
__global__ void loss_forward_kernel(LossProblem pb, LossParams<math::compute_t<T>> prm, int team,
                                    math::compute_t<T>* row_loss, math::compute_t<T>* aux) {
  using C = math::compute_t<T>;
  using P = LossPolicy<K>;
  __shared__ RowState<C> smem[33];
  const int lane = static_cast<int>(threadIdx.x) % team;
  const int teams = static_cast<int>(blockDim.x) / team;
  const std::int64_t rows = pb.layout.rows, classes = pb.layout.classes;
  for (std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * teams; first < rows;
       first += static_cast<std::int64_t>(gridDim.x) * teams) {
    const std::int64_t r = first + static_cast<int>(threadIdx.x) / team;
    const bool active = r < rows;
    const Row<K, T> row = make_row<K, T>(pb, active ? r : 0);
    C pre = C(0);
    if constexpr (P::kTwoPass) {
      RowState<C> sum = loss_detail::initial_state<C>();
      if (active) {
        for (std::int64_t c = lane; c < classes; c += team) sum.a += row.pred(c);
      }
      pre = team_reduce(sum, team, smem).a;
    }
    RowState<C> st = loss_detail::initial_state<C>();
    if (active) {
      for (std::int64_t c = lane; c < classes; c += team) P::step(st, row.target(c), row.pred(c), prm, pre);
    }
    st = team_reduce(st, team, smem);
    if (active && lane == 0) {
      C p_label = C(0);
      if constexpr (is_sparse(K)) p_label = row.pred(row.label);
      row_loss[r] = P::finish(st, prm, pre, p_label, aux + r * kLossAux);
    }
  }
}

template <LossKind K, class T>
__global__ void loss_backward_kernel(LossProblem pb, LossParams<math::compute_t<T>> prm, int team,
                                     const math::compute_t<T>* aux, const T* gy, std::int64_t gy_stride,
                                     double divisor, T* grad) {
  using C = math::compute_t<T>;
  using P = LossPolicy<K>;
  const int lane = static_cast<int>(threadIdx.x) % team;
  const int teams = static_cast<int>(blockDim.x) / team;
  const std::int64_t rows = pb.layout.rows, classes = pb.layout.classes, inner = pb.layout.inner;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * teams + static_cast<int>(threadIdx.x) / team;
       r < rows; r += static_cast<std::int64_t>(gridDim.x) * teams) {
    const Row<K, T> row = make_row<K, T>(pb, r);
    const C scale = static_cast<C>(static_cast<double>(convert<C>(gy[r * gy_stride])) / divisor);
    const C* row_aux = aux + r * kLossAux;
    for (std::int64_t c = lane; c < classes; c += team) {
      grad[row.base + c * inner] = convert<T>(P::grad(row.target(c), row.pred(c), prm, row_aux) * scale);
    }
  }
}

// Team size and grid for a layout: the launcher's choice, never the call site's.
struct RowLaunch {
  int team;
  int block;
  unsigned grid;
};

RowLaunch row_launch(const RowLayout& l) {
  const bool wide = l.classes >= kWideRow;
  const int block = wide ? kWideRowBlock : kRowBlock;
  const int team = wide ? block : (l.classes <= kShortRow ? 4 : 32);
  const std::int64_t teams_per_block = block / team;
  const std::int64_t wanted = (l.rows + teams_per_block - 1) / teams_per_block;
  const std::int64_t cap = std::int64_t{properties(current_device()).multiprocessor_count} * kBlocksPerSm;
  return {team, block, static_cast<unsigned>(std::max<std::int64_t>(1, std::min(wanted, cap)))};
}

template <class F>
void visit_loss_dtype(DType dtype, F&& f) {
  visit_dtype(dtype, [&]<class T>() {
    if constexpr (is_floating(dtype_of<T>())) {
      f.template operator()<T>();
    } else {
      KILN_THROW(InternalError, "loss: non-floating dtype ", dtype, " reached the cuda kernel");
    }
  });
}

// Sums row_loss (compute type) in double over one block; out = convert<T>(sum / divisor).
template <class T>
__global__ void loss_reduce_kernel(const math::compute_t<T>* row_loss, std::int64_t rows, double divisor,
                                   T* out) {
  __shared__ double partial[32];
  double sum = 0.0;
  for (std::int64_t i = threadIdx.x; i < rows; i += blockDim.x) sum += static_cast<double>(row_loss[i]);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(kFullMask, sum, offset);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < static_cast<int>(blockDim.x) / 32 ? partial[lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(kFullMask, sum, offset);
    if (lane == 0) *out = convert<T>(sum / divisor);
  }
}
constexpr int kReduceBlock = 1024;

}  // namespace

void loss_forward(const LossProblem& pb, void* row_loss, void* aux, int device) {
  if (pb.layout.rows == 0) return;
  DeviceGuard guard(device);
  const auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  const RowLaunch rl = row_launch(pb.layout);
  visit_loss_kind(pb.kind, [&]<LossKind K>() {
    visit_loss_dtype(pb.dtype, [&]<class T>() {
      using C = math::compute_t<T>;
      KILN_LAUNCH(loss_forward_kernel<K, T>, dim3(rl.grid), dim3(rl.block), 0, stream)(
          pb, loss_params<C>(pb), rl.team, static_cast<C*>(row_loss), static_cast<C*>(aux));
    });
  });
}

void loss_reduce(const LossProblem& pb, const void* row_loss, double divisor, void* out, int device) {
  DeviceGuard guard(device);
  const auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  visit_loss_dtype(pb.dtype, [&]<class T>() {
    using C = math::compute_t<T>;
    KILN_LAUNCH(loss_reduce_kernel<T>, dim3(1), dim3(kReduceBlock), 0, stream)(
        static_cast<const C*>(row_loss), pb.layout.rows, divisor, static_cast<T*>(out));
  });
}

void loss_backward(const LossProblem& pb, const void* aux, const void* gy, std::int64_t gy_stride,
                   double divisor, void* grad, int device) {
  if (pb.layout.rows == 0 || pb.layout.classes == 0) return;
  DeviceGuard guard(device);
  const auto stream = static_cast<cudaStream_t>(current_stream(device).native());
  const RowLaunch rl = row_launch(pb.layout);
  visit_loss_kind(pb.kind, [&]<LossKind K>() {
    visit_loss_dtype(pb.dtype, [&]<class T>() {
      using C = math::compute_t<T>;
      KILN_LAUNCH(loss_backward_kernel<K, T>, dim3(rl.grid), dim3(rl.block), 0, stream)(
          pb, loss_params<C>(pb), rl.team, static_cast<const C*>(aux), static_cast<const T*>(gy), gy_stride,
          divisor, static_cast<T*>(grad));
    });
  });
}

}  // namespace kiln::cuda
