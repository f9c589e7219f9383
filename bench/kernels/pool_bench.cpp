// Pooling and upsampling bandwidth on float32, on cpu (2 OpenMP threads) and cuda, through
// the per-device entry points (kernels/pool_impl.h, kernels/resize_impl.h) into
// preallocated outputs:
//   max_pool 2x2    the Keras MNIST convnet's pools at batch 128: (128, 26, 26, 32) and
//                   (128, 11, 11, 64); forward writes the argmax positions as training
//                   does (reads x, writes y and int32 argmax); backward reads gy and argmax
//                   and writes gx
//   avg_pool 3x3/2  `same`, overlapping windows, (32, 56, 56, 64)
//   upsample 2x     nearest and bilinear, (32, 28, 28, 64) -> (32, 56, 56, 64)
// Beside each row, the limit measured in the same run over buffers moving about the same
// bytes, as the other kernel benchmarks: a memory triad on cpu, a device-to-device copy on
// cuda (bytes read plus written per second). Counters: GB/s, limit_GB/s, ratio_to_limit.
// Buffers rotate through >= 256 MiB (past L2/L3).
//   kernels_pool_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bench_util.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/pool_impl.h"
#include "kiln/kernels/resize_impl.h"

namespace kiln {
namespace {

using namespace bench;

enum class Op { max_pool, avg_pool, upsample_nearest, upsample_bilinear };

struct Problem {
  Op op;
  bool backward;
  std::int64_t N, H, W, C;
  std::int64_t pool = 2, stride = 2;  // pooling
  bool same = false;                  // pooling padding
  std::int64_t factor = 2;            // upsampling

  bool pooling() const { return op == Op::max_pool || op == Op::avg_pool; }
  PoolGeometry pool_geometry() const {
    PoolGeometry g{N, H, W, C, 0, 0, pool, pool, stride, stride, 0, 0};
    g.OH = same ? (H + stride - 1) / stride : (H - pool) / stride + 1;
    g.OW = same ? (W + stride - 1) / stride : (W - pool) / stride + 1;
    if (same) {
      g.pad_top = std::max<std::int64_t>((g.OH - 1) * stride + pool - H, 0) / 2;
      g.pad_left = std::max<std::int64_t>((g.OW - 1) * stride + pool - W, 0) / 2;
    }
    return g;
  }
  ResizeGeometry resize_geometry() const { return {N, H, W, C, factor, factor}; }
  std::int64_t in_numel() const { return N * H * W * C; }
  std::int64_t out_numel() const {
    if (!pooling()) return in_numel() * factor * factor;
    const PoolGeometry g = pool_geometry();
    return N * g.OH * g.OW * C;
  }
  // Bytes read plus written by one call (float32 data, int32 argmax).
  double bytes() const {
    const double in = 4.0 * static_cast<double>(in_numel()), out = 4.0 * static_cast<double>(out_numel());
    return in + out + (op == Op::max_pool ? out : 0.0);
  }
};

// One rotating set: the input image, the pooled/upsampled output, argmax, the input gradient.
struct Buffers {
  Tensor x, y, argmax, gx;
};

std::vector<Buffers> make_buffers(const Problem& p, Device device) {
  std::vector<Buffers> sets;
  const std::int64_t set_bytes = 8 * (p.in_numel() + p.out_numel());
  for (std::int64_t i = 0; i < rotate_count(set_bytes, 2); ++i) {
    sets.push_back({full({p.in_numel()}, 0.5, {.dtype = float32, .device = device}),
                    full({p.out_numel()}, 0.25, {.dtype = float32, .device = device}),
                    zeros({p.out_numel()}, {.dtype = int32, .device = device}),
                    empty({p.in_numel()}, {.dtype = float32, .device = device})});
  }
  return sets;
}

void run_pool(const Problem& p, Device device, Buffers& b) {
  const PoolKind kind = p.op == Op::max_pool ? PoolKind::max : PoolKind::avg;
  auto* arg = kind == PoolKind::max ? static_cast<std::int32_t*>(b.argmax.data_ptr()) : nullptr;
  if (p.backward) {
    const PoolGradLayout l{kind, p.pool_geometry(), float32, b.gx.data_ptr(), b.y.data_ptr(), arg};
    if (device.is_cpu()) {
      cpu::pool2d_backward(l);
    } else {
#if KILN_HAS_CUDA
      cuda::pool2d_backward(l, device.index());
#endif
    }
    return;
  }
  const PoolLayout l{kind, p.pool_geometry(), float32, b.y.data_ptr(), b.x.data_ptr(), arg};
  if (device.is_cpu()) {
    cpu::pool2d_forward(l);
  } else {
#if KILN_HAS_CUDA
    cuda::pool2d_forward(l, device.index());
#endif
  }
}

void run_resize(const Problem& p, Device device, Buffers& b) {
  const Interpolation mode = p.op == Op::upsample_nearest ? Interpolation::nearest : Interpolation::bilinear;
  if (p.backward) {
    const ResizeGradLayout l{mode, p.resize_geometry(), float32, b.gx.data_ptr(), b.y.data_ptr()};
    if (device.is_cpu()) {
      cpu::upsample2d_backward(l);
    } else {
#if KILN_HAS_CUDA
      cuda::upsample2d_backward(l, device.index());
#endif
    }
    return;
  }
  const ResizeLayout l{mode, p.resize_geometry(), float32, b.y.data_ptr(), b.x.data_ptr()};
  if (device.is_cpu()) {
    cpu::upsample2d_forward(l);
  } else {
#if KILN_HAS_CUDA
    cuda::upsample2d_forward(l, device.index());
#endif
  }
}

void BM_Pool(benchmark::State& state, Device device, Problem p) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  // The device's limit pass (triad on cpu, copy on cuda) moving about the same bytes.
  const double limit =
      median_limit_gbs(device, static_cast<std::int64_t>(p.bytes() / limit_bytes_per_element(device)));
  std::vector<Buffers> sets = make_buffers(p, device);
  auto call = [&](std::size_t k) {
    Buffers& b = sets[k % sets.size()];
    p.pooling() ? run_pool(p, device, b) : run_resize(p, device, b);
  };
  if (p.op == Op::max_pool && p.backward) {  // backward reads real argmax positions
    for (std::size_t k = 0; k < sets.size(); ++k) {
      Problem forward = p;
      forward.backward = false;
      run_pool(forward, device, sets[k]);
    }
  }
  call(0);  // warm-up: first touch, lazy module loading
  const double seconds = timed_iterations(state, device, call, 1);
  set_bandwidth_counters(state, p.bytes(), seconds, limit);
}

constexpr Device kCpu = Device::cpu();
constexpr Device kCuda = Device::cuda(0);
constexpr Problem kMaxPool1{Op::max_pool, false, 128, 26, 26, 32};
constexpr Problem kMaxPool1Grad{Op::max_pool, true, 128, 26, 26, 32};
constexpr Problem kMaxPool2{Op::max_pool, false, 128, 11, 11, 64};
constexpr Problem kMaxPool2Grad{Op::max_pool, true, 128, 11, 11, 64};
constexpr Problem kAvgPool{Op::avg_pool, false, 32, 56, 56, 64, 3, 2, true};
constexpr Problem kAvgPoolGrad{Op::avg_pool, true, 32, 56, 56, 64, 3, 2, true};
constexpr Problem kNearest{Op::upsample_nearest, false, 32, 28, 28, 64};
constexpr Problem kNearestGrad{Op::upsample_nearest, true, 32, 28, 28, 64};
constexpr Problem kBilinear{Op::upsample_bilinear, false, 32, 28, 28, 64};
constexpr Problem kBilinearGrad{Op::upsample_bilinear, true, 32, 28, 28, 64};

#define KILN_POOL_BENCH(name, problem)                                                                    \
  BENCHMARK_CAPTURE(BM_Pool, cpu_##name, kCpu, problem)->Unit(benchmark::kMicrosecond)->UseManualTime(); \
  BENCHMARK_CAPTURE(BM_Pool, cuda_##name, kCuda, problem)->Unit(benchmark::kMicrosecond)->UseManualTime()

KILN_POOL_BENCH(max_pool_2x2_128x26x26x32, kMaxPool1);
KILN_POOL_BENCH(max_pool_2x2_128x26x26x32_backward, kMaxPool1Grad);
KILN_POOL_BENCH(max_pool_2x2_128x11x11x64, kMaxPool2);
KILN_POOL_BENCH(max_pool_2x2_128x11x11x64_backward, kMaxPool2Grad);
KILN_POOL_BENCH(avg_pool_3x3s2_same_32x56x56x64, kAvgPool);
KILN_POOL_BENCH(avg_pool_3x3s2_same_32x56x56x64_backward, kAvgPoolGrad);
KILN_POOL_BENCH(upsample_nearest_2x_32x28x28x64, kNearest);
KILN_POOL_BENCH(upsample_nearest_2x_32x28x28x64_backward, kNearestGrad);
KILN_POOL_BENCH(upsample_bilinear_2x_32x28x28x64, kBilinear);
KILN_POOL_BENCH(upsample_bilinear_2x_32x28x28x64_backward, kBilinearGrad);

}  // namespace
}  // namespace kiln
