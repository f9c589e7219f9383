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

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/reduce_impl.h"
#include "kiln/kernels/softmax_impl.h"

namespace kiln {
namespace {

constexpr int kCpuThreads = 2;
constexpr std::int64_t kRotateBytes = std::int64_t{256} << 20;
constexpr int kLimitPasses = 20;

// Rotating float32 inputs of n elements (and one output per input of out_n elements).
class Buffers {
 public:
  Buffers(std::int64_t n, std::int64_t out_n, Device device) {
    const std::int64_t count = std::max<std::int64_t>(2, (kRotateBytes + 4 * n - 1) / (4 * n));
    for (std::int64_t i = 0; i < count; ++i) {
      pairs_.emplace_back(empty({out_n}, {.dtype = float32, .device = device}),
                          full({n}, 0.5, {.dtype = float32, .device = device}));
    }
  }
  const std::pair<Tensor, Tensor>& next() { return pairs_[next_++ % pairs_.size()]; }

 private:
  std::vector<std::pair<Tensor, Tensor>> pairs_;  // (output, input)
  std::size_t next_ = 0;
};

template <class Body>
double seconds_of(Device device, Body&& body) {
  if (device.is_cpu()) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const cuda::Stream stream = cuda::current_stream(device.index());
  cuda::Event start(device.index(), true), end(device.index(), true);
  start.record(stream);
  body();
  end.record(stream);
  end.synchronize();
  return cuda::Event::elapsed_ms(start, end) / 1e3;
}

// The triad (12 bytes per element) on cpu, the d2d copy (8) on cuda: median GB/s.
double limit_gbs(Device device, std::int64_t n) {
  static std::map<std::pair<bool, std::int64_t>, double> cache;
  const auto key = std::make_pair(device.is_cpu(), n);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Buffers bufs(n, n, device);
  const Tensor c = full({n}, 0.25, {.dtype = float32, .device = device});
  std::vector<double> gbs;
  for (int pass = 0; pass <= kLimitPasses; ++pass) {
    const auto& [out, in] = bufs.next();
    const double t = seconds_of(device, [&] {
      if (device.is_cpu()) {
        float* a = out.data<float>();
        const float* b = in.data<float>();
        const float* s = c.data<float>();
#pragma omp parallel for num_threads(kCpuThreads) schedule(static)
        for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * s[i];
      } else {
        cuda::copy_bytes(out.data_ptr(), device, in.data_ptr(), device, out.nbytes());
      }
    });
    if (pass > 0) gbs.push_back((device.is_cpu() ? 12.0 : 8.0) * static_cast<double>(n) / t / 1e9);
  }
  std::nth_element(gbs.begin(), gbs.begin() + kLimitPasses / 2, gbs.end());
  return cache[key] = gbs[kLimitPasses / 2];
}

bool skip_device(benchmark::State& state, Device device) {
  if (device.is_cpu()) return false;
  if (!cuda::is_available()) {
    state.SkipWithError(("no cuda device: " + cuda::unavailable_reason()).c_str());
    return true;
  }
  if (cuda::is_simulated()) {
    state.SkipWithError("SIM build: emulated cuda devices have no meaningful bandwidth");
    return true;
  }
  return false;
}

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
  const double limit = limit_gbs(device, p.numel());
  Buffers bufs(p.numel(), p.out_numel(), device);
  run(p, device, bufs.next());  // warm-up: first touch, lazy module loading
  double seconds = 0;
  for (auto _ : state) {
    const auto& io = bufs.next();
    const double t = seconds_of(device, [&] { run(p, device, io); });
    state.SetIterationTime(t);
    seconds += t;
  }
  const double gbs = p.bytes() * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["limit_GB/s"] = limit;
  state.counters["ratio_to_limit"] = gbs / limit;
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
