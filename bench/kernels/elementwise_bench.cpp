// Elementwise bandwidth: add (binary family) and relu (unary family) on float32, beside
// the limit measured in the same run: a memory triad a[i] = b[i] + s*c[i] on 2 OpenMP
// threads for cpu, a device-to-device cudaMemcpyAsync copy for cuda (cuda events time
// both). Counters: "GB/s" (bytes read + written per second) and "ratio_to_limit".
// Buffers rotate so that each iteration touches memory past the last-level cache.
//   kernels_elementwise_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/binary_impl.h"
#include "kiln/kernels/unary.h"
#include "kiln/kernels/unary_impl.h"

namespace kiln {
namespace {

constexpr int kCpuThreads = 2;
// Past the L2 of an H100 (50 MiB) and the L3 of common hosts: buffers rotate through at
// least this many bytes.
constexpr std::int64_t kRotateBytes = std::int64_t{256} << 20;

// Copies of one operand set (inputs and output), enough of them to rotate past caches.
struct Buffers {
  std::vector<std::vector<Tensor>> sets;
  Buffers(std::int64_t n, int tensors_per_set, Device device) {
    const std::int64_t set_bytes = n * 4 * tensors_per_set;
    const std::int64_t count = std::max<std::int64_t>(1, (kRotateBytes + set_bytes - 1) / set_bytes);
    for (std::int64_t s = 0; s < count; ++s) {
      std::vector<Tensor> set;
      for (int t = 0; t < tensors_per_set; ++t) {
        set.push_back(full({n}, 0.25 * (t + 1), {.dtype = float32, .device = device}));
      }
      sets.push_back(std::move(set));
    }
  }
  const std::vector<Tensor>& next(std::size_t& i) const { return sets[i++ % sets.size()]; }
};

// GB/s from the seconds the timed bodies took (not the loop's own overhead).
void set_counters(benchmark::State& state, double bytes_per_iter, double seconds, double limit_gbs) {
  const double gbs = bytes_per_iter * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["limit_GB/s"] = limit_gbs;
  state.counters["ratio_to_limit"] = gbs / limit_gbs;
}

// ---- cpu ----

void triad(float* a, const float* b, const float* c, std::int64_t n) {
  const float s = 3.0f;
#pragma omp parallel for num_threads(kCpuThreads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

// Triad GB/s for n elements: the best of several timed passes, measured once per size.
double cpu_triad_gbs(std::int64_t n) {
  static std::map<std::int64_t, double> cache;
  if (auto it = cache.find(n); it != cache.end()) return it->second;
  const Buffers buf(n, 3, Device::cpu());
  std::size_t k = 0;
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    const auto& s = buf.next(k);
    const double t0 = omp_get_wtime();
    triad(s[0].data<float>(), s[1].data<float>(), s[2].data<float>(), n);
    best = std::max(best, 12.0 * static_cast<double>(n) / (omp_get_wtime() - t0) / 1e9);
  }
  return cache[n] = best;
}

// Times `body(set)` per iteration on the host clock and reports against the triad.
template <class Body>
void run_cpu(benchmark::State& state, int tensors, double bytes_per_element, Body body) {
  omp_set_num_threads(kCpuThreads);
  const std::int64_t n = state.range(0);
  const double limit = cpu_triad_gbs(n);
  const Buffers buf(n, tensors, Device::cpu());
  std::size_t k = 0;
  double seconds = 0;
  for (auto _ : state) {
    const auto& s = buf.next(k);
    const double t0 = omp_get_wtime();
    body(s);
    seconds += omp_get_wtime() - t0;
  }
  set_counters(state, bytes_per_element * static_cast<double>(n), seconds, limit);
}

void BM_CpuTriad(benchmark::State& state) {
  run_cpu(state, 3, 12, [&](const std::vector<Tensor>& s) {
    triad(s[0].data<float>(), s[1].data<float>(), s[2].data<float>(), state.range(0));
  });
}

// The kernel into a preallocated output (kernels/binary_impl.h), as the op runs it.
void BM_CpuAdd(benchmark::State& state) {
  run_cpu(state, 3, 12, [](const std::vector<Tensor>& s) {
    cpu::binary_forward(BinaryOp::add, float32, make_loop<3>({s[0], s[1], s[2]}));
  });
}

// The public op, including its output allocation (page faults for large outputs).
void BM_CpuAddOp(benchmark::State& state) {
  run_cpu(state, 2, 12, [](const std::vector<Tensor>& s) { benchmark::DoNotOptimize(add(s[0], s[1])); });
}

void BM_CpuRelu(benchmark::State& state) {
  run_cpu(state, 2, 8, [](const std::vector<Tensor>& s) {
    cpu::unary_forward(UnaryOp::relu, 0, float32, make_loop<2>({s[0], s[1]}));
  });
}

// ---- cuda ----

bool skip_without_cuda(benchmark::State& state) {
  if (!cuda::is_available()) {
    state.SkipWithError(("no cuda device: " + cuda::unavailable_reason()).c_str());
    return true;
  }
  if (cuda::is_simulated()) {
    state.SkipWithError("no cuda device: SIM build (emulated devices have no meaningful bandwidth)");
    return true;
  }
  return false;
}

// Seconds per call of body() on cuda:0's current stream, timed with events.
template <class Body>
double cuda_seconds(Body body) {
  const cuda::Stream stream = cuda::current_stream(0);
  cuda::Event start(0, true), end(0, true);
  start.record(stream);
  body();
  end.record(stream);
  end.synchronize();
  return cuda::Event::elapsed_ms(start, end) / 1e3;
}

// Device-to-device copy GB/s (bytes read + written), best of several, once per size.
double cuda_copy_gbs(std::int64_t n) {
  static std::map<std::int64_t, double> cache;
  if (auto it = cache.find(n); it != cache.end()) return it->second;
  const Buffers buf(n, 2, Device::cuda(0));
  std::size_t k = 0;
  double best = 0;
  for (int rep = 0; rep < 20; ++rep) {
    const auto& s = buf.next(k);
    const double t = cuda_seconds([&] {
      cuda::copy_bytes(s[0].data_ptr(), s[0].device(), s[1].data_ptr(), s[1].device(), s[0].nbytes());
    });
    if (rep > 0) best = std::max(best, 8.0 * static_cast<double>(n) / t / 1e9);  // rep 0 warms up
  }
  return cache[n] = best;
}

template <class Body>
void run_cuda(benchmark::State& state, int tensors, double bytes_per_element, Body body) {
  if (skip_without_cuda(state)) return;
  const std::int64_t n = state.range(0);
  const double limit = cuda_copy_gbs(n);
  const Buffers buf(n, tensors, Device::cuda(0));
  std::size_t k = 0;
  body(buf.next(k));  // warm-up: the output's block enters the caching allocator
  double seconds = 0;
  for (auto _ : state) {
    const auto& s = buf.next(k);
    const double t = cuda_seconds([&] { body(s); });
    state.SetIterationTime(t);
    seconds += t;
  }
  set_counters(state, bytes_per_element * static_cast<double>(n), seconds, limit);
}

void BM_CudaCopy(benchmark::State& state) {
  run_cuda(state, 2, 8, [](const std::vector<Tensor>& s) {
    cuda::copy_bytes(s[0].data_ptr(), s[0].device(), s[1].data_ptr(), s[1].device(), s[0].nbytes());
  });
}

// The public ops (the caching allocator serves their outputs without a cudaMalloc).
void BM_CudaAdd(benchmark::State& state) {
  run_cuda(state, 2, 12, [](const std::vector<Tensor>& s) { benchmark::DoNotOptimize(add(s[0], s[1])); });
}

void BM_CudaRelu(benchmark::State& state) {
  run_cuda(state, 1, 8, [](const std::vector<Tensor>& s) { benchmark::DoNotOptimize(relu(s[0])); });
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {std::int64_t{1} << 20, std::int64_t{16} << 20, std::int64_t{64} << 20}) b->Arg(n);
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_CpuTriad)->Apply(Sizes)->UseRealTime();
BENCHMARK(BM_CpuAdd)->Apply(Sizes)->UseRealTime();
BENCHMARK(BM_CpuAddOp)->Apply(Sizes)->UseRealTime();
BENCHMARK(BM_CpuRelu)->Apply(Sizes)->UseRealTime();
BENCHMARK(BM_CudaCopy)->Apply(Sizes)->UseManualTime();
BENCHMARK(BM_CudaAdd)->Apply(Sizes)->UseManualTime();
BENCHMARK(BM_CudaRelu)->Apply(Sizes)->UseManualTime();

}  // namespace
}  // namespace kiln
