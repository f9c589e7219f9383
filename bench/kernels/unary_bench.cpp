// Activation bandwidth: relu, gelu (erf form) and sigmoid forward on float32 at 1M, 16M and
// 64M elements, on cpu (2 OpenMP threads) and cuda. Each runs two ways: "kernel" writes
// into a preallocated output through the per-device entry point (kernels/unary_impl.h),
// the number the bandwidth goals are about; "op" calls the public kiln::relu etc., which
// also allocates its output (page faults on cpu for large outputs, a cache hit on cuda).
// Beside each, the limit measured in the same run over buffers of the same sizes: a
// memory triad a = b + s*c on cpu, a device-to-device copy on cuda. Goals (reported, not
// asserted): cpu >= 0.85 of the triad; cuda >= 0.90 of the copy at >= 64M on an H100.
// Counters: GB/s (bytes read + written per second), limit_GB/s, ratio_to_limit.
// Buffers rotate through >= 256 MiB so no pass finds its operands in L2/L3.
//   kernels_unary_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/kernels/unary.h"
#include "kiln/kernels/unary_impl.h"

namespace kiln {
namespace {

using namespace bench;

enum class Mode { kernel, op };

void run_unary(benchmark::State& state, Device device, UnaryOp op, Tensor (*public_op)(const Tensor&),
               Mode mode) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const std::int64_t n = state.range(0);
  const double limit = median_limit_gbs(device, n);
  RotatingPairs pairs(n, n, device);
  std::vector<Tensor> keep(2);  // op mode: the last outputs stay alive, so allocations rotate
  const auto body = [&](const std::pair<Tensor, Tensor>& p) {
    if (mode == Mode::op) {
      keep[0] = std::move(keep[1]);
      keep[1] = public_op(p.second);
    } else if (device.is_cpu()) {
      cpu::unary_forward(op, 0, float32, make_loop<2>({p.first, p.second}));
    } else {
#if KILN_HAS_CUDA  // OFF builds have no cuda kernels (and skip before getting here)
      cuda::unary_forward(op, 0, float32, make_loop<2>({p.first, p.second}), device.index());
#endif
    }
  };
  body(pairs.next());  // warm-up: first touch, caching allocator, lazy module loading
  const double seconds = timed_iterations(state, device, [&](std::size_t) { body(pairs.next()); });
  set_bandwidth_counters(state, 8.0 * static_cast<double>(n), seconds, limit);
}

// The limit as a row of its own: the same passes, timed like the ops.
void BM_Limit(benchmark::State& state, Device device) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const std::int64_t n = state.range(0);
  RotatingPairs pairs(n, n, device);
  const Tensor c = full({n}, 0.25, {.dtype = float32, .device = device});
  const double seconds = timed_iterations(state, device, [&](std::size_t) {
    const auto& [out, in] = pairs.next();
    limit_pass(device, out, in, c);
  });
  state.counters["GB/s"] = limit_bytes_per_element(device) * static_cast<double>(n) *
                           static_cast<double>(state.iterations()) / seconds / 1e9;
}

Tensor gelu_erf(const Tensor& x) { return gelu(x); }

void Sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {std::int64_t{1} << 20, std::int64_t{16} << 20, std::int64_t{64} << 20}) b->Arg(n);
  b->Unit(benchmark::kMicrosecond)->UseManualTime();
}

constexpr Device kCpu = Device::cpu();
constexpr Device kCuda = Device::cuda(0);

BENCHMARK_CAPTURE(BM_Limit, cpu_triad, kCpu)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cpu_relu_kernel, kCpu, UnaryOp::relu, relu, Mode::kernel)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cpu_gelu_kernel, kCpu, UnaryOp::gelu, gelu_erf, Mode::kernel)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cpu_sigmoid_kernel, kCpu, UnaryOp::sigmoid, sigmoid, Mode::kernel)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cpu_relu_op, kCpu, UnaryOp::relu, relu, Mode::op)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cpu_gelu_op, kCpu, UnaryOp::gelu, gelu_erf, Mode::op)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cpu_sigmoid_op, kCpu, UnaryOp::sigmoid, sigmoid, Mode::op)->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Limit, cuda_copy, kCuda)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cuda_relu_kernel, kCuda, UnaryOp::relu, relu, Mode::kernel)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cuda_gelu_kernel, kCuda, UnaryOp::gelu, gelu_erf, Mode::kernel)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cuda_sigmoid_kernel, kCuda, UnaryOp::sigmoid, sigmoid, Mode::kernel)
    ->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cuda_relu_op, kCuda, UnaryOp::relu, relu, Mode::op)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cuda_gelu_op, kCuda, UnaryOp::gelu, gelu_erf, Mode::op)->Apply(Sizes);
BENCHMARK_CAPTURE(run_unary, cuda_sigmoid_op, kCuda, UnaryOp::sigmoid, sigmoid, Mode::op)->Apply(Sizes);

}  // namespace
}  // namespace kiln
