// kiln's native cuda convolution: im2col + the tiled GEMM of kernels/cuda/sgemm.cuh (through
// cuda::gemm, native path), the path SIM runs and KILN_CONV=native selects on a GPU.
//   forward          cols (G, rows, K) = im2col(x);  y_g (rows, Cog) = cols_g · W_gᵀ (+ bias)
//   backward-data    dcols_g (rows, K) = dy_g · W_g;  dx = col2im(dcols)  (a gather: no atomics)
//   backward-filter  dW_g (Cog, K) = dy_gᵀ · cols_g, summed over batch chunks;  db = Σ_rows dy
// with rows = (n, oh, ow) of a chunk of images, K = (kh, kw, c) of one group (KH·KW·Cg),
// W_g = weight rows [g·Cog, (g+1)·Cog) as a (Cog, K) matrix (OHWI is exactly that), and dy_g
// the group's columns of dy, read in place through the GEMM's leading dimension. Groups are
// the GEMM's batch. A 1x1, stride-1, unpadded convolution needs no im2col: x is already cols.
// The batch is split into chunks whose workspace stays under a limit (256 MiB by default).
// Depthwise convolutions (one input channel per group) skip all this: conv_depthwise.cuh
// runs them with direct kernels and no workspace.
#include <algorithm>
#include <atomic>
#include <climits>

#include "kiln/core/cuda/kernel.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/convert.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cuda/conv_depthwise.cuh"
#include "kiln/kernels/cuda/conv_taps.cuh"
#include "kiln/kernels/math.h"
#include "kiln/kernels/matmul_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cuda {
namespace {

std::atomic<std::int64_t> g_workspace_limit{std::int64_t{256} << 20};

// The geometry as kernel arguments (I: int for problems under 2^31 elements, else int64).
template <class I>
struct Shape4 {
  I h, w, c_in, c_out, k_h, k_w, cg, og, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w;
};

template <class I>
Shape4<I> shape_of(const ConvGeometry& g) {
  return {static_cast<I>(g.h),          static_cast<I>(g.w),        static_cast<I>(g.c_in),
          static_cast<I>(g.c_out),      static_cast<I>(g.k_h),      static_cast<I>(g.k_w),
          static_cast<I>(g.c_in_per_group()), static_cast<I>(g.c_out_per_group()),
          static_cast<I>(g.stride_h),   static_cast<I>(g.stride_w), static_cast<I>(g.dil_h),
          static_cast<I>(g.dil_w),      static_cast<I>(g.pad_top),  static_cast<I>(g.pad_left),
          static_cast<I>(g.out_h),      static_cast<I>(g.out_w)};
}

// cols[g][r][(kh·KW + kw)·Cg + c] = x[n, oh·s - pad + kh·d, ow·s - pad + kw·d, g·Cg + c], or 0
// in the padding; one work item per element of cols (G, rows, K).
template <class T, class I>
struct Im2col {
  T* cols;
  const T* x;  // the chunk's first image
  Shape4<I> s;
  I rows;
  __device__ void operator()(std::int64_t item) const {
    I i = static_cast<I>(item);
    const I c = i % s.cg;
    i /= s.cg;
    const I kw = i % s.k_w;
    i /= s.k_w;
    const I kh = i % s.k_h;
    i /= s.k_h;
    const I r = i % rows, g = i / rows;
    const I ow = r % s.out_w, oh = (r / s.out_w) % s.out_h, n = r / (s.out_w * s.out_h);
    const I ih = oh * s.stride_h - s.pad_top + kh * s.dil_h, iw = ow * s.stride_w - s.pad_left + kw * s.dil_w;
    const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
    cols[item] = inside ? x[((n * s.h + ih) * s.w + iw) * s.c_in + g * s.cg + c] : convert<T>(0.0f);
  }
};

// dx[n, ih, iw, ci] = Σ over the taps (kh, kw) that read it of dcols[g][(n, oh, ow)][(kh, kw, c)];
// one work item per element of the chunk's dx, so every element is written once.
template <class T, class I>
struct Col2im {
  T* dx;
  const T* dcols;
  Shape4<I> s;
  I rows;
  __device__ void operator()(std::int64_t item) const {
    using Acc = math::compute_t<T>;
    I i = static_cast<I>(item);
    const I ci = i % s.c_in;
    i /= s.c_in;
    const I iw = i % s.w;
    i /= s.w;
    const I ih = i % s.h, n = i / s.h;
    const I g = ci / s.cg, c = ci % s.cg, k_len = s.k_h * s.k_w * s.cg;
    Acc acc = 0;
    for_each_reading_tap(s, ih, iw, [&](I oh, I ow, I kh, I kw) {
      const I r = (n * s.out_h + oh) * s.out_w + ow;
      acc += convert<Acc>(dcols[(static_cast<std::int64_t>(g) * rows + r) * k_len + (kh * s.k_w + kw) * s.cg + c]);
    });
    dx[item] = convert<T>(acc);
  }
};

// y[r][g·Cog + j] = part[g][r][j] (+ bias): the grouped GEMM's (G, rows, Cog) into NHWC.
template <class T, class I>
struct GroupScatter {
  T* y;
  const T* part;
  const T* bias;  // (C_out) or null
  Shape4<I> s;
  I rows;
  __device__ void operator()(std::int64_t item) const {
    using Acc = math::compute_t<T>;
    const I i = static_cast<I>(item);
    const I co = i % s.c_out, r = i / s.c_out, g = co / s.og;
    const T v = part[(static_cast<std::int64_t>(g) * rows + r) * s.og + co % s.og];
    y[item] = bias ? convert<T>(convert<Acc>(v) + convert<Acc>(bias[co])) : v;
  }
};

// ---- bias gradient: column sums of dy (rows, C), deterministic in two passes ----

constexpr int kSumColumns = 32, kSumLanes = 8;  // a block: 32 channels x 8 row lanes
constexpr std::int64_t kRowsPerSplit = 1024;
constexpr std::int64_t kMaxSplits = 256;

// partial[split][c] = Σ of dy[r][c] over the split's rows.
template <class T>
__global__ void column_partial_sums(const T* dy, math::compute_t<T>* partial, std::int64_t rows, std::int64_t c,
                                    std::int64_t rows_per_split) {
  using Acc = math::compute_t<T>;
  __shared__ Acc lanes[kSumLanes][kSumColumns];
  const std::int64_t column = static_cast<std::int64_t>(blockIdx.x) * kSumColumns + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rows_per_split;
  const std::int64_t r1 = std::min(rows, r0 + rows_per_split);
  Acc acc = 0;
  if (column < c) {
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kSumLanes) acc += convert<Acc>(dy[r * c + column]);
  }
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && column < c) {
    for (int l = 1; l < kSumLanes; ++l) acc += lanes[l][threadIdx.x];
    partial[static_cast<std::int64_t>(blockIdx.y) * c + column] = acc;
  }
}

template <class T>
struct FinishColumnSums {
  T* db;
  const math::compute_t<T>* partial;
  std::int64_t splits, c;
  __device__ void operator()(std::int64_t column) const {
    math::compute_t<T> acc = 0;
    for (std::int64_t s = 0; s < splits; ++s) acc += partial[s * c + column];
    db[column] = convert<T>(acc);
  }
};

template <class T>
void bias_grad(const ConvGeometry& g, const T* dy, T* db, cudaStream_t stream, Device device) {
  using Acc = math::compute_t<T>;
  const std::int64_t rows = g.n * g.out_h * g.out_w;
  const std::int64_t splits = std::min(kMaxSplits, (rows + kRowsPerSplit - 1) / kRowsPerSplit);
  const std::int64_t per_split = (rows + splits - 1) / splits;
  const Tensor partial = empty({splits * g.c_out}, {.dtype = dtype_of<Acc>(), .device = device});
  const dim3 grid(static_cast<unsigned>((g.c_out + kSumColumns - 1) / kSumColumns), static_cast<unsigned>(splits));
  KILN_LAUNCH(column_partial_sums<T>, grid, dim3(kSumColumns, kSumLanes), 0, stream)(
      dy, static_cast<Acc*>(partial.data_ptr()), rows, g.c_out, per_split);
  launch_elementwise(g.c_out, stream, FinishColumnSums<T>{db, static_cast<const Acc*>(partial.data_ptr()), splits,
                                                          g.c_out});
}

// ---- the passes ----

// Launches F<T, I>{pointers..., shape, rows} over `count` items, with 32-bit index math
// (I = int) when every index the functor forms stays under `largest`, and that fits.
template <template <class, class> class F, class T, class... Ptrs>
void launch_indexed(std::int64_t count, std::int64_t largest, cudaStream_t stream, const ConvGeometry& g,
                    std::int64_t rows, Ptrs... ptrs) {
  if (largest < INT_MAX) {
    launch_elementwise(count, stream, F<T, int>{ptrs..., shape_of<int>(g), static_cast<int>(rows)});
  } else {
    launch_elementwise(count, stream, F<T, std::int64_t>{ptrs..., shape_of<std::int64_t>(g), rows});
  }
}

// How one pass walks the batch: its stream and device, and the images per chunk.
struct Plan {
  cudaStream_t stream;
  Device device;
  bool direct;                // 1x1, stride 1, no padding: x is its own cols
  std::int64_t k;             // KH·KW·Cg, the GEMM depth of one group
  std::int64_t out_pixels;    // OH·OW per image
  std::int64_t in_pixels;     // H·W per image
  std::int64_t chunk;         // images per chunk
};

cudaStream_t stream_of(Device device) { return static_cast<cudaStream_t>(current_stream(device.index()).native()); }

// `workspace_per_image`: the elements of scratch one image of the pass needs.
Plan plan_for(const ConvGeometry& g, Device device, bool direct, std::int64_t workspace_per_image) {
  Plan p{stream_of(device), device, direct,
         g.k_h * g.k_w * g.c_in_per_group(), g.out_h * g.out_w, g.h * g.w, g.n};
  const std::int64_t bytes = workspace_per_image * static_cast<std::int64_t>(itemsize(g.dtype));
  if (bytes > 0) p.chunk = std::clamp<std::int64_t>(g_workspace_limit.load() / bytes, 1, g.n);
  return p;
}

bool is_direct(const ConvGeometry& g) {
  return g.k_h == 1 && g.k_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_bottom == 0 &&
         g.pad_left == 0 && g.pad_right == 0;
}

Tensor workspace(const ConvGeometry& g, const Plan& p, std::int64_t elements) {
  return empty({elements}, {.dtype = g.dtype, .device = p.device});
}

// Note [No designated initializers for GEMM structs here]: nvcc's front end assigns a
// designated initializer that skips a member to the wrong field (`.batch_stride` into
// `transposed`), so GemmOperand, GemmProblem and GemmOptions are filled field by field.
GemmOptions native_gemm(double beta = 0.0) {
  GemmOptions o;
  o.path = GemmPath::native;
  o.beta = beta;
  return o;
}

GemmOperand operand(const void* data, std::int64_t ld, bool transposed, std::int64_t batch_stride) {
  GemmOperand op;
  op.data = data;
  op.ld = ld;
  op.transposed = transposed;
  op.batch_stride = batch_stride;
  return op;
}

// (batch, m, n, k) of `dtype`; operands, C and bias set by the caller.
GemmProblem problem(DType dtype, std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k) {
  GemmProblem gp;
  gp.dtype = dtype;
  gp.batch = batch, gp.m = m, gp.n = n, gp.k = k;
  return gp;
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

// The (rows, K) cols of images [n0, n0 + nb) of each group, as a GEMM operand: x itself
// when direct (group g's columns start at g·Cg), else im2col into `cols`.
template <class T>
GemmOperand cols_operand(const ConvGeometry& g, const Plan& p, const T* x, std::int64_t nb, T* cols) {
  if (p.direct) return operand(x, g.c_in, false, g.c_in_per_group());
  const std::int64_t rows = nb * p.out_pixels, count = g.groups * rows * p.k;
  launch_indexed<Im2col, T>(count, std::max(count, nb * p.in_pixels * g.c_in), p.stream, g, rows, cols, x);
  return operand(cols, p.k, false, rows * p.k);
}

template <class T>
void forward(const ConvGeometry& g, const Tensor& xt, const Tensor& wt, const Tensor& bt, const Tensor& yt) {
  if (depthwise::applies(g)) {
    depthwise::forward<T>(g, ptr<T>(xt), ptr<T>(wt), ptr<T>(bt), ptr<T>(yt), stream_of(xt.device()));
    return;
  }
  const bool grouped = g.groups > 1, direct = is_direct(g);
  const std::int64_t og = g.c_out_per_group(), out_pixels = g.out_h * g.out_w;
  const std::int64_t cols_per_image = direct ? 0 : out_pixels * g.k_h * g.k_w * g.c_in;
  const std::int64_t part_per_image = grouped ? out_pixels * g.c_out : 0;
  const Plan p = plan_for(g, xt.device(), direct, cols_per_image + part_per_image);
  const Tensor cols = workspace(g, p, p.chunk * cols_per_image), part = workspace(g, p, p.chunk * part_per_image);
  const T* x = ptr<T>(xt);
  T* y = ptr<T>(yt);
  for (std::int64_t n0 = 0; n0 < g.n; n0 += p.chunk) {
    const std::int64_t nb = std::min(p.chunk, g.n - n0), rows = nb * out_pixels;
    T* y_chunk = y + n0 * out_pixels * g.c_out;
    GemmProblem gp = problem(g.dtype, g.groups, rows, og, p.k);
    gp.a = cols_operand<T>(g, p, x + n0 * p.in_pixels * g.c_in, nb, ptr<T>(cols));
    gp.b = operand(ptr<T>(wt), p.k, true, og * p.k);  // W_gᵀ (K, Cog)
    gp.c = grouped ? ptr<T>(part) : y_chunk;
    gp.bias = grouped ? nullptr : ptr<T>(bt);
    gemm(gp, native_gemm(), p.device.index());
    if (grouped) {
      launch_indexed<GroupScatter, T>(rows * g.c_out, rows * g.c_out, p.stream, g, rows, y_chunk,
                                      static_cast<const T*>(ptr<T>(part)), static_cast<const T*>(ptr<T>(bt)));
    }
  }
}

template <class T>
void backward_data(const ConvGeometry& g, const Tensor& dyt, const Tensor& wt, const Tensor& dxt) {
  if (depthwise::applies(g)) {
    depthwise::backward_data<T>(g, ptr<T>(dyt), ptr<T>(wt), ptr<T>(dxt), stream_of(dyt.device()));
    return;
  }
  // A direct, ungrouped problem's dcols are dx itself; otherwise dcols (G, rows, K) + col2im.
  const bool into_dx = is_direct(g) && g.groups == 1;
  const std::int64_t og = g.c_out_per_group(), out_pixels = g.out_h * g.out_w;
  const Plan p = plan_for(g, dyt.device(), false, into_dx ? 0 : out_pixels * g.k_h * g.k_w * g.c_in);
  const Tensor dcols = workspace(g, p, into_dx ? 0 : p.chunk * out_pixels * g.k_h * g.k_w * g.c_in);
  const T* dy = ptr<T>(dyt);
  T* dx = ptr<T>(dxt);
  for (std::int64_t n0 = 0; n0 < g.n; n0 += p.chunk) {
    const std::int64_t nb = std::min(p.chunk, g.n - n0), rows = nb * out_pixels;
    T* dx_chunk = dx + n0 * p.in_pixels * g.c_in;
    GemmProblem gp = problem(g.dtype, g.groups, rows, p.k, og);
    gp.a = operand(dy + n0 * out_pixels * g.c_out, g.c_out, false, og);  // dy_g (rows, Cog)
    gp.b = operand(ptr<T>(wt), p.k, false, og * p.k);                    // W_g (Cog, K)
    gp.c = into_dx ? dx_chunk : ptr<T>(dcols);
    gemm(gp, native_gemm(), p.device.index());
    if (!into_dx) {
      const std::int64_t count = nb * p.in_pixels * g.c_in;
      launch_indexed<Col2im, T>(count, std::max(count, g.groups * rows * p.k), p.stream, g, rows, dx_chunk,
                                static_cast<const T*>(ptr<T>(dcols)));
    }
  }
}

template <class T>
void backward_filter(const ConvGeometry& g, const Tensor& xt, const Tensor& dyt, const Tensor& dwt,
                     const Tensor& dbt) {
  if (depthwise::applies(g)) {
    const cudaStream_t stream = stream_of(xt.device());
    depthwise::backward_filter<T>(g, ptr<T>(xt), ptr<T>(dyt), ptr<T>(dwt), stream, xt.device());
    if (dbt.defined()) bias_grad<T>(g, ptr<T>(dyt), ptr<T>(dbt), stream, xt.device());
    return;
  }
  const bool direct = is_direct(g);
  const std::int64_t og = g.c_out_per_group(), out_pixels = g.out_h * g.out_w;
  const std::int64_t cols_per_image = direct ? 0 : out_pixels * g.k_h * g.k_w * g.c_in;
  const Plan p = plan_for(g, xt.device(), direct, cols_per_image);
  const Tensor cols = workspace(g, p, p.chunk * cols_per_image);
  const T* x = ptr<T>(xt);
  const T* dy = ptr<T>(dyt);
  for (std::int64_t n0 = 0; n0 < g.n; n0 += p.chunk) {
    const std::int64_t nb = std::min(p.chunk, g.n - n0), rows = nb * out_pixels;
    GemmProblem gp = problem(g.dtype, g.groups, og, p.k, rows);
    // dy_gᵀ (Cog, rows): dy's group columns, read transposed.
    gp.a = operand(dy + n0 * out_pixels * g.c_out, g.c_out, true, og);
    gp.b = cols_operand<T>(g, p, x + n0 * p.in_pixels * g.c_in, nb, ptr<T>(cols));
    gp.c = ptr<T>(dwt);
    gemm(gp, native_gemm(n0 == 0 ? 0.0 : 1.0), p.device.index());  // chunks after the first accumulate
  }
  if (dbt.defined()) bias_grad<T>(g, dy, ptr<T>(dbt), p.stream, p.device);
}

}  // namespace

std::int64_t set_native_conv_workspace_limit(std::int64_t bytes) {
  KILN_CHECK(bytes >= 1, ValueError, "set_native_conv_workspace_limit: the limit must be >= 1 byte, got ", bytes);
  return g_workspace_limit.exchange(bytes);
}

void conv2d_forward_native(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                           const Tensor& y) {
  DeviceGuard guard(x.device().index());
  visit_floating(g.dtype, "conv2d", "cuda", [&]<class T>() { forward<T>(g, x, w, bias, y); });
}

void conv2d_backward_data_native(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& dx) {
  DeviceGuard guard(dy.device().index());
  visit_floating(g.dtype, "conv2d", "cuda", [&]<class T>() { backward_data<T>(g, dy, w, dx); });
}

void conv2d_backward_filter_native(const ConvGeometry& g, const Tensor& x, const Tensor& dy, const Tensor& dw,
                                   const Tensor& db) {
  DeviceGuard guard(x.device().index());
  visit_floating(g.dtype, "conv2d", "cuda", [&]<class T>() { backward_filter<T>(g, x, dy, dw, db); });
}

}  // namespace kiln::cuda
