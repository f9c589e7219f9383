// Batch and layer normalization bandwidth on float32, on cpu (2 OpenMP threads) and cuda,
// through the per-device entry points (kernels/normalization_impl.h) into preallocated
// outputs. Each row counts the bytes its passes move, 4 per element read or written:
//   bn_train_fwd   statistics (reads x) + normalize (reads x, writes y)     12 B/element
//   bn_infer_fwd   normalize with the running statistics                     8 B/element
//   bn_train_bwd   sums of dy and dy * xhat (reads x, dy) + dx (reads x, dy,
//                  writes dx)                                               20 B/element
//   ln_fwd         a row at a time (reads x, writes y)                       8 B/element
//   ln_bwd         dx (reads x, dy, writes dx) + dgamma / dbeta sums (reads
//                  x, dy)                                                   20 B/element
// on NHWC (32, 56, 56, 64) and (N, C) = (4096, 1024) for batch norm, (16384, 768) (a warp
// per row is 512 at most: a block per row) and (65536, 256) (a warp per row) for layer
// norm. Beside each, the limit measured in the same run over buffers of the same element
// count: a memory triad on cpu, a device-to-device copy on cuda (bench_util.h). A fused
// kernel could move 8 B/element forward (x once more here for the statistics) and 12
// backward; the ratio to the limit shows how close each pass runs to the memory.
// Counters: GB/s, limit_GB/s, ratio_to_limit. Buffers rotate through >= 256 MiB.
//   kernels_normalization_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "bench_util.h"
#include "kiln/core/random.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/normalization_impl.h"

namespace kiln {
namespace {

using namespace bench;

enum class Pass { bn_train_fwd, bn_infer_fwd, bn_train_bwd, ln_fwd, ln_bwd };

struct Problem {
  Pass pass;
  std::int64_t rows, C;
  std::int64_t numel() const { return rows * C; }
  double bytes() const {
    const double per = pass == Pass::bn_train_fwd ? 12 : (pass == Pass::bn_train_bwd || pass == Pass::ln_bwd) ? 20 : 8;
    return per * static_cast<double>(numel());
  }
};

// Rotating (x, dy, out) sets plus the per-channel and per-row arrays they share.
struct Buffers {
  std::vector<Tensor> x, dy, out;
  Tensor mean, invstd, running_mean, running_var, gamma, beta, sum_dy, sum_dy_xhat, row_mean, row_invstd;
  Buffers(const Problem& p, Device device) {
    const TensorOptions o{.device = device};
    const std::int64_t count = rotate_count(12 * p.numel(), 2);
    Generator gen(1);
    for (std::int64_t s = 0; s < count; ++s) {
      x.push_back(uniform({p.rows, p.C}, -2, 2, o, &gen));
      dy.push_back(uniform({p.rows, p.C}, -1, 1, o, &gen));
      out.push_back(empty({p.rows, p.C}, o));
    }
    mean = zeros({p.C}, o), invstd = ones({p.C}, o), running_mean = zeros({p.C}, o);
    running_var = ones({p.C}, o), gamma = ones({p.C}, o), beta = zeros({p.C}, o);
    sum_dy = zeros({p.C}, o), sum_dy_xhat = zeros({p.C}, o);
    row_mean = zeros({p.rows}, o), row_invstd = ones({p.rows}, o);
  }
};

// One pass set of `p` over rotating set k, on the device's entry points.
void run(const Problem& p, Device device, Buffers& b, std::size_t k) {
  const std::size_t s = k % b.x.size();
  const void* x = b.x[s].data_ptr();
  const void* dy = b.dy[s].data_ptr();
  void* out = b.out[s].data_ptr();
  const BatchNormStatsLayout stats{x, float32, p.rows, p.C, b.mean.data_ptr(), b.invstd.data_ptr(),
                                   b.running_mean.data_ptr(), b.running_var.data_ptr(), 0.99, 1e-3,
                                   p.pass == Pass::bn_train_fwd};
  const BatchNormApplyLayout apply{out, x, float32, p.rows, p.C, b.mean.data_ptr(), b.invstd.data_ptr(),
                                   b.gamma.data_ptr(), b.beta.data_ptr()};
  const bool ln = p.pass == Pass::ln_fwd || p.pass == Pass::ln_bwd;
  const NormGradSumsLayout sums{dy, x, float32, p.rows, p.C,
                                (ln ? b.row_mean : b.mean).data_ptr(), (ln ? b.row_invstd : b.invstd).data_ptr(),
                                ln, b.sum_dy.data_ptr(), b.sum_dy_xhat.data_ptr()};
  const BatchNormGradLayout bn_grad{out, dy, x, float32, p.rows, p.C, b.mean.data_ptr(), b.invstd.data_ptr(),
                                    b.gamma.data_ptr(), b.sum_dy.data_ptr(), b.sum_dy_xhat.data_ptr(), true};
  const LayerNormLayout ln_fwd{out, x, float32, p.rows, p.C, b.gamma.data_ptr(), b.beta.data_ptr(),
                               b.row_mean.data_ptr(), b.row_invstd.data_ptr(), 1e-3};
  const LayerNormGradLayout ln_grad{out, dy, x, float32, p.rows, p.C, b.gamma.data_ptr(), b.row_mean.data_ptr(),
                                    b.row_invstd.data_ptr()};
  if (device.is_cpu()) {
    switch (p.pass) {
      case Pass::bn_train_fwd:
      case Pass::bn_infer_fwd: cpu::batch_norm_stats(stats), cpu::batch_norm_apply(apply); break;
      case Pass::bn_train_bwd: cpu::norm_grad_sums(sums), cpu::batch_norm_backward(bn_grad); break;
      case Pass::ln_fwd: cpu::layer_norm_forward(ln_fwd); break;
      case Pass::ln_bwd: cpu::layer_norm_backward(ln_grad), cpu::norm_grad_sums(sums); break;
    }
    return;
  }
#if KILN_HAS_CUDA
  const int d = device.index();
  switch (p.pass) {
    case Pass::bn_train_fwd:
    case Pass::bn_infer_fwd: cuda::batch_norm_stats(stats, d), cuda::batch_norm_apply(apply, d); break;
    case Pass::bn_train_bwd: cuda::norm_grad_sums(sums, d), cuda::batch_norm_backward(bn_grad, d); break;
    case Pass::ln_fwd: cuda::layer_norm_forward(ln_fwd, d); break;
    case Pass::ln_bwd: cuda::layer_norm_backward(ln_grad, d), cuda::norm_grad_sums(sums, d); break;
  }
#endif
}

void BM_Norm(benchmark::State& state, Device device, Problem p) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const double limit = median_limit_gbs(device, p.numel());
  Buffers b(p, device);
  run(p, device, b, 0);  // warm-up: first touch, lazy module loading
  const double seconds = timed_iterations(state, device, [&](std::size_t k) { run(p, device, b, k); }, 1);
  set_bandwidth_counters(state, p.bytes(), seconds, limit);
}

constexpr Device kCpu = Device::cpu();
constexpr Device kCuda = Device::cuda(0);
constexpr std::int64_t kNhwcRows = 32 * 56 * 56;

#define KILN_NORM_BENCH(name, problem)                                                                       \
  BENCHMARK_CAPTURE(BM_Norm, cpu_##name, kCpu, problem)->Unit(benchmark::kMicrosecond)->UseManualTime(); \
  BENCHMARK_CAPTURE(BM_Norm, cuda_##name, kCuda, problem)->Unit(benchmark::kMicrosecond)->UseManualTime()

KILN_NORM_BENCH(bn_train_fwd_32x56x56x64, (Problem{Pass::bn_train_fwd, kNhwcRows, 64}));
KILN_NORM_BENCH(bn_infer_fwd_32x56x56x64, (Problem{Pass::bn_infer_fwd, kNhwcRows, 64}));
KILN_NORM_BENCH(bn_train_bwd_32x56x56x64, (Problem{Pass::bn_train_bwd, kNhwcRows, 64}));
KILN_NORM_BENCH(bn_train_fwd_4096x1024, (Problem{Pass::bn_train_fwd, 4096, 1024}));
KILN_NORM_BENCH(bn_train_bwd_4096x1024, (Problem{Pass::bn_train_bwd, 4096, 1024}));
KILN_NORM_BENCH(ln_fwd_16384x768, (Problem{Pass::ln_fwd, 16384, 768}));
KILN_NORM_BENCH(ln_bwd_16384x768, (Problem{Pass::ln_bwd, 16384, 768}));
KILN_NORM_BENCH(ln_fwd_65536x256, (Problem{Pass::ln_fwd, 65536, 256}));
KILN_NORM_BENCH(ln_bwd_65536x256, (Problem{Pass::ln_bwd, 65536, 256}));

}  // namespace
}  // namespace kiln
