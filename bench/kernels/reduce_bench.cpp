// Reduction and softmax bandwidth on float32, on cpu (2 OpenMP threads) and cuda, through
// the per-device entry points (kernels/reduce_impl.h, kernels/softmax_impl.h) into
// preallocated outputs:
//   sum_all      a full sum of 64M elements (reads 4 bytes per element)
//   sum_rows     (4096, 4096) over axis 1 (a block per row)
//   sum_columns  (16384, 1024) over axis 0 (columns, no transpose)
//   softmax      (4096, 4096) (a block per row) and (65536, 128) (a warp per row), which
//                read and write 4 bytes each per element
// Beside each, the limit measured in the same run over buffers of the same element count:
// a memory triad a = b + s*c on cpu, a device-to-device copy on cuda (bytes read plus
// written per second). Goals (reported, not asserted): cuda >= 0.85 of the copy on an H100.
// Counters: GB/s, limit_GB/s, ratio_to_limit. Inputs rotate through >= 256 MiB (past L2).
//   kernels_reduce_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <utility>

#include "bench_util.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/reduce_impl.h"
#include "kiln/kernels/softmax_impl.h"

namespace kiln {
namespace {

using namespace bench;

struct Problem {
  std::int64_t outer, K, inner;
  bool softmax;  // else a sum over K
  std::int64_t numel() const { return outer * K * inner; }
  std::int64_t out_numel() const { return softmax ? numel() : outer * inner; }
  double bytes() const { return 4.0 * static_cast<double>(numel() + out_numel()); }
};

void run(const Problem& p, Device device, const std::pair<Tensor, Tensor>& io) {
  if (p.softmax) {
    const SoftmaxLayout l{io.first.data_ptr(), io.second.data_ptr(), float32, p.outer, p.K, false};
    if (device.is_cpu()) {
      cpu::softmax_forward(l);
    } else {
#if KILN_HAS_CUDA
      cuda::softmax_forward(l, device.index());
#endif
    }
    return;
  }
  const ReduceLayout l{io.second.data_ptr(), io.first.data_ptr(), float32, p.outer, p.K, p.inner};
  if (device.is_cpu()) {
    cpu::reduce({ReduceOp::sum}, l);
  } else {
#if KILN_HAS_CUDA
    cuda::reduce({ReduceOp::sum}, l, device.index());
#endif
  }
}

void BM_Reduce(benchmark::State& state, Device device, Problem p) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const double limit = median_limit_gbs(device, p.numel());
  RotatingPairs bufs(p.numel(), p.out_numel(), device);  // (output, input)
  run(p, device, bufs.next());  // warm-up: first touch, lazy module loading
  const double seconds = timed_iterations(state, device, [&](std::size_t) { run(p, device, bufs.next()); });
  set_bandwidth_counters(state, p.bytes(), seconds, limit);
}

constexpr Device kCpu = Device::cpu();
constexpr Device kCuda = Device::cuda(0);
constexpr Problem kSumAll{1, std::int64_t{64} << 20, 1, false};
constexpr Problem kSumRows{4096, 4096, 1, false};
constexpr Problem kSumColumns{1, 16384, 1024, false};
constexpr Problem kSoftmaxLong{4096, 4096, 1, true};
constexpr Problem kSoftmaxShort{65536, 128, 1, true};

#define KILN_REDUCE_BENCH(name, problem)                                                            \
  BENCHMARK_CAPTURE(BM_Reduce, cpu_##name, kCpu, problem)->Unit(benchmark::kMicrosecond)->UseManualTime(); \
  BENCHMARK_CAPTURE(BM_Reduce, cuda_##name, kCuda, problem)->Unit(benchmark::kMicrosecond)->UseManualTime()

KILN_REDUCE_BENCH(sum_all_64M, kSumAll);
KILN_REDUCE_BENCH(sum_rows_4096x4096, kSumRows);
KILN_REDUCE_BENCH(sum_columns_16384x1024, kSumColumns);
KILN_REDUCE_BENCH(softmax_4096x4096, kSoftmaxLong);
KILN_REDUCE_BENCH(softmax_65536x128, kSoftmaxShort);

}  // namespace
}  // namespace kiln
