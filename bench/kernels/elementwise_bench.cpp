// Elementwise bandwidth: add (binary family) and relu (unary family) on float32, beside
// the limit measured in the same run: a memory triad a[i] = b[i] + s*c[i] on 2 OpenMP
// threads for cpu, a device-to-device cudaMemcpyAsync copy for cuda (cuda events time
// both). Counters: "GB/s" (bytes read + written per second) and "ratio_to_limit".
// Buffers rotate so that each iteration touches memory past the last-level cache.
//   kernels_elementwise_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "bench_util.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/binary_impl.h"
#include "kiln/kernels/unary.h"
#include "kiln/kernels/unary_impl.h"

namespace kiln {
namespace {

using namespace bench;

// Copies of one operand set (inputs and output), enough of them to rotate past caches.
struct Buffers {
  std::vector<std::vector<Tensor>> sets;
  Buffers(std::int64_t n, int tensors_per_set, Device device) {
    const std::int64_t count = rotate_count(n * 4 * tensors_per_set);
    for (std::int64_t s = 0; s < count; ++s) {
      std::vector<Tensor> set;
      for (int t = 0; t < tensors_per_set; ++t) {
        set.push_back(full({n}, 0.25 * (t + 1), {.dtype = float32, .device = device}));
      }
      sets.push_back(std::move(set));
    }
  }
  const std::vector<Tensor>& operator[](std::size_t i) const { return sets[i % sets.size()]; }
};

// Times body(set) per iteration and reports it against the device's limit for n elements:
// the triad on cpu (host clock), the device-to-device copy of n floats on cuda (events).
template <class Body>
void run(benchmark::State& state, Device device, int tensors, double bytes_per_element, Body body) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const std::int64_t n = state.range(0);
  const double limit = device.is_cpu() ? cpu_triad_gbs(n) : cuda_copy_gbs(4 * n);
  const Buffers buf(n, tensors, device);
  std::size_t first = 0;
  if (!device.is_cpu()) body(buf[first++]);  // warm-up: the output's block enters the caching allocator
  const double seconds = timed_iterations(state, device, [&](std::size_t k) { body(buf[k]); }, first);
  set_bandwidth_counters(state, bytes_per_element * static_cast<double>(n), seconds, limit);
}

template <class Body>
void run_cpu(benchmark::State& state, int tensors, double bytes_per_element, Body body) {
  run(state, Device::cpu(), tensors, bytes_per_element, body);
}
template <class Body>
void run_cuda(benchmark::State& state, int tensors, double bytes_per_element, Body body) {
  run(state, Device::cuda(0), tensors, bytes_per_element, body);
}

// ---- cpu ----

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
