// Loss and dropout bandwidth beside the copy limit measured in the same run (a
// device-to-device copy on cuda, timed with events; a 2-thread copy loop on cpu).
// Sparse categorical cross-entropy from logits, float32, on (rows, classes) =
// (4096, 1000), (65536, 10) and (65536, 1024) (64M elements, where the goal is >= 0.90 of
// the copy): the forward kernel alone (reads logits and labels), the public op (adds the
// label check's flag read-back and the mean), and the backward kernel (reads logits and
// labels, writes the gradient). Dropout on 1M, 16M and 64M float32 elements (read + write).
// Counters: "GB/s" (bytes moved per second), "limit_GB/s", "ratio_to_limit". Buffers rotate
// past the last-level cache.  kernels_loss_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "bench_util.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/kernels/dropout.h"
#include "kiln/kernels/loss.h"
#include "kiln/kernels/loss_impl.h"

namespace kiln {
namespace {

using namespace bench;

// Sets of (logits, labels, gradient) for one shape, enough to rotate past caches.
struct LossSets {
  std::vector<Tensor> logits, labels, grads;
  LossSets(std::int64_t rows, std::int64_t classes, Device device) {
    const std::int64_t count = rotate_count(rows * classes * 8);
    Generator gen(1);
    for (std::int64_t s = 0; s < count; ++s) {
      logits.push_back(uniform({rows, classes}, -4, 4, {.device = device}, &gen));
      labels.push_back(
          uniform({rows}, 0, static_cast<double>(classes), {.dtype = float64, .device = device}, &gen)
              .to(int64));
      grads.push_back(empty({rows, classes}, {.device = device}));
    }
  }
  std::size_t size() const { return logits.size(); }
};

// ---- cuda ----

// Times body(set index) per iteration with events; bytes_per_iter over the copy of half as
// many bytes (each copied byte is read and written).
template <class Body>
void run_cuda(benchmark::State& state, std::size_t sets, double bytes_per_iter, Body body) {
  const double limit = cuda_copy_gbs(static_cast<std::int64_t>(bytes_per_iter / 2));
  body(0);  // warm-up
  const double seconds =
      timed_iterations(state, Device::cuda(0), [&](std::size_t k) { body(k % sets); }, 1);
  set_bandwidth_counters(state, bytes_per_iter, seconds, limit);
}

void BM_CudaSparseCceOp(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const std::int64_t rows = state.range(0), classes = state.range(1);
  const LossSets sets(rows, classes, Device::cuda(0));
  run_cuda(state, sets.size(), 4.0 * rows * classes + 8.0 * rows, [&](std::size_t s) {
    benchmark::DoNotOptimize(
        sparse_categorical_crossentropy(sets.labels[s], sets.logits[s], {.from_logits = true}));
  });
}

// The kernels alone (kernels/loss_impl.h): only builds with cuda kernels have them.
#if KILN_HAS_CUDA
LossProblem sparse_problem(const Tensor& logits, const Tensor& labels) {
  LossProblem pb;
  pb.kind = LossKind::sparse_ce_logits;
  pb.layout = {logits.size(0), logits.size(1), 1};
  pb.y_true = labels.data_ptr();
  pb.y_pred = logits.data_ptr();
  return pb;
}

void BM_CudaSparseCceForwardKernel(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const std::int64_t rows = state.range(0), classes = state.range(1);
  const LossSets sets(rows, classes, Device::cuda(0));
  Tensor row_loss = empty({rows}, {.device = Device::cuda(0)}),
         aux = empty({rows, kLossAux}, {.device = Device::cuda(0)});
  run_cuda(state, sets.size(), 4.0 * rows * classes + 8.0 * rows, [&](std::size_t s) {
    cuda::loss_forward(sparse_problem(sets.logits[s], sets.labels[s]), row_loss.data_ptr(), aux.data_ptr(),
                       0);
  });
}

void BM_CudaSparseCceBackwardKernel(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const std::int64_t rows = state.range(0), classes = state.range(1);
  const LossSets sets(rows, classes, Device::cuda(0));
  Tensor row_loss = empty({rows}, {.device = Device::cuda(0)}),
         aux = empty({rows, kLossAux}, {.device = Device::cuda(0)});
  const Tensor gy = ones({}, {.device = Device::cuda(0)});
  cuda::loss_forward(sparse_problem(sets.logits[0], sets.labels[0]), row_loss.data_ptr(), aux.data_ptr(), 0);
  run_cuda(state, sets.size(), 8.0 * rows * classes + 8.0 * rows, [&](std::size_t s) {
    cuda::loss_backward(sparse_problem(sets.logits[s], sets.labels[s]), aux.data_ptr(), gy.data_ptr(), 0,
                        static_cast<double>(rows), sets.grads[s].data_ptr(), 0);
  });
}
#endif

void BM_CudaDropout(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const std::int64_t n = state.range(0);
  const LossSets sets(1, n, Device::cuda(0));  // logits as the inputs
  Generator gen(3);
  run_cuda(state, sets.size(), 8.0 * n, [&](std::size_t s) {
    benchmark::DoNotOptimize(dropout(sets.logits[s], 0.5, true, &gen));
  });
}

// ---- cpu ----

template <class Body>
void run_cpu(benchmark::State& state, std::size_t sets, double bytes_per_iter, Body body) {
  omp_set_num_threads(kCpuThreads);
  const double limit = cpu_copy_gbs(static_cast<std::int64_t>(bytes_per_iter / 2));
  const double seconds = timed_iterations(state, Device::cpu(), [&](std::size_t k) { body(k % sets); });
  set_bandwidth_counters(state, bytes_per_iter, seconds, limit);
}

void BM_CpuSparseCceOp(benchmark::State& state) {
  const std::int64_t rows = state.range(0), classes = state.range(1);
  const LossSets sets(rows, classes, Device::cpu());
  run_cpu(state, sets.size(), 4.0 * rows * classes + 8.0 * rows, [&](std::size_t s) {
    benchmark::DoNotOptimize(
        sparse_categorical_crossentropy(sets.labels[s], sets.logits[s], {.from_logits = true}));
  });
}

void BM_CpuDropout(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const LossSets sets(1, n, Device::cpu());
  Generator gen(3);
  run_cpu(state, sets.size(), 8.0 * n, [&](std::size_t s) {
    benchmark::DoNotOptimize(dropout(sets.logits[s], 0.5, true, &gen));
  });
}

void LossShapes(benchmark::internal::Benchmark* b) {
  b->Args({4096, 1000})->Args({65536, 10})->Args({65536, 1024})->Unit(benchmark::kMicrosecond);
}
void DropoutSizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {std::int64_t{1} << 20, std::int64_t{16} << 20, std::int64_t{64} << 20}) b->Arg(n);
  b->Unit(benchmark::kMicrosecond);
}

#if KILN_HAS_CUDA
BENCHMARK(BM_CudaSparseCceForwardKernel)->Apply(LossShapes)->UseManualTime();
BENCHMARK(BM_CudaSparseCceBackwardKernel)->Apply(LossShapes)->UseManualTime();
#endif
BENCHMARK(BM_CudaSparseCceOp)->Apply(LossShapes)->UseManualTime();
BENCHMARK(BM_CudaDropout)->Apply(DropoutSizes)->UseManualTime();
BENCHMARK(BM_CpuSparseCceOp)->Apply(LossShapes)->UseRealTime();
BENCHMARK(BM_CpuDropout)->Apply(DropoutSizes)->UseRealTime();

}  // namespace
}  // namespace kiln
