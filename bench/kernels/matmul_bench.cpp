// GEMM throughput of kiln::matmul on square float32 matrices, beside its peer measured in
// the same run. Counter "GFLOP/s" is 2·n³ per second of timed calls.
//   cuda (cuda events, n = 256, 1024, 4096): the native tiled GEMM and cuBLAS (exact
//     float32: TF32 off); "ratio_to_cublas" = this row's GFLOP/s over cuBLAS's. Skipped
//     without a GPU and under SIM (emulated devices have no meaningful speed).
//   cpu (host clock, n = 256, 512, 1024): kiln::matmul (oneDNN through the op layer, its
//     output allocation included) and a raw oneDNN matmul primitive created once;
//     "ratio_to_onednn" = kiln over raw (the raw figure a median of 7 calls).
// GEMMs of these sizes are compute-bound, so buffers are not rotated past the caches.
//   kernels_matmul_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/random.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/matmul.h"

namespace kiln {
namespace {

using namespace bench;

double gflop(std::int64_t n) {
  const auto x = static_cast<double>(n);
  return 2.0 * x * x * x / 1e9;
}

Tensor random_square(std::int64_t n, Device device, std::uint64_t seed) {
  Generator gen(seed);
  return uniform({n, n}, -1, 1, {.device = device}, &gen);
}

// ---- cuda ----

// GFLOP/s of `backend` at n: warmed up, then the median of several timed batches; measured
// once per (backend, n) so every row's ratio uses the same cuBLAS figure.
double cuda_gflops(GemmBackend backend, std::int64_t n) {
  static std::map<std::pair<GemmBackend, std::int64_t>, double> cache;
  if (auto it = cache.find({backend, n}); it != cache.end()) return it->second;
  set_gemm_backend(backend);
  const Tensor a = random_square(n, Device::cuda(0), 1), b = random_square(n, Device::cuda(0), 2);
  const int calls = n >= 4096 ? 5 : 20;
  cuda_seconds([&] { benchmark::DoNotOptimize(matmul(a, b)); }, 2);
  std::vector<double> samples;
  for (int rep = 0; rep < 7; ++rep) {
    const double s = cuda_seconds([&] { benchmark::DoNotOptimize(matmul(a, b)); }, calls);
    samples.push_back(gflop(n) * calls / s);
  }
  return cache[{backend, n}] = median(samples);
}

void BM_CudaGemm(benchmark::State& state, GemmBackend backend) {
  if (skip_without_cuda(state, "speed")) return;
  set_allow_tf32(false);
  const std::int64_t n = state.range(0);
  const double cublas = cuda_gflops(GemmBackend::vendor, n);
  set_gemm_backend(backend);
  const Tensor a = random_square(n, Device::cuda(0), 1), b = random_square(n, Device::cuda(0), 2);
  cuda_seconds([&] { benchmark::DoNotOptimize(matmul(a, b)); }, 2);
  const double seconds = timed_iterations(state, Device::cuda(0),
                                          [&](std::size_t) { benchmark::DoNotOptimize(matmul(a, b)); });
  const double gflops = gflop(n) * static_cast<double>(state.iterations()) / seconds;
  state.counters["GFLOP/s"] = gflops;
  state.counters["cublas_GFLOP/s"] = cublas;
  state.counters["ratio_to_cublas"] = gflops / cublas;
}

// ---- cpu ----

// A raw oneDNN f32 matmul (n, n) x (n, n), primitive and memory made once.
struct RawOneDnn {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::matmul primitive;
  dnnl::memory a, b, c;
  explicit RawOneDnn(std::int64_t n, const Tensor& ta, const Tensor& tb, const Tensor& tc) {
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc md({n, n}, dnnl::memory::data_type::f32, tag::ab);
    primitive = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(md, md, md), engine));
    a = dnnl::memory(md, engine, ta.data_ptr());
    b = dnnl::memory(md, engine, tb.data_ptr());
    c = dnnl::memory(md, engine, tc.data_ptr());
  }
  void run() {
    primitive.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    stream.wait();
  }
};

double raw_onednn_gflops(std::int64_t n) {
  static std::map<std::int64_t, double> cache;
  if (auto it = cache.find(n); it != cache.end()) return it->second;
  const Tensor a = random_square(n, Device::cpu(), 1), b = random_square(n, Device::cpu(), 2);
  const Tensor c = empty({n, n}, {.device = Device::cpu()});
  RawOneDnn raw(n, a, b, c);
  raw.run();
  std::vector<double> samples;
  for (int rep = 0; rep < 7; ++rep) {
    const double t0 = omp_get_wtime();
    raw.run();
    samples.push_back(gflop(n) / (omp_get_wtime() - t0));
  }
  return cache[n] = median(samples);
}

void BM_CpuMatmul(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const double raw = raw_onednn_gflops(n);
  const Tensor a = random_square(n, Device::cpu(), 1), b = random_square(n, Device::cpu(), 2);
  benchmark::DoNotOptimize(matmul(a, b));
  const double seconds =
      timed_iterations(state, Device::cpu(), [&](std::size_t) { benchmark::DoNotOptimize(matmul(a, b)); });
  const double gflops = gflop(n) * static_cast<double>(state.iterations()) / seconds;
  state.counters["GFLOP/s"] = gflops;
  state.counters["onednn_GFLOP/s"] = raw;
  state.counters["ratio_to_onednn"] = gflops / raw;
}

void BM_CpuOneDnnRaw(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Tensor a = random_square(n, Device::cpu(), 1), b = random_square(n, Device::cpu(), 2);
  const Tensor c = empty({n, n}, {.device = Device::cpu()});
  RawOneDnn raw(n, a, b, c);
  raw.run();
  const double seconds = timed_iterations(state, Device::cpu(), [&](std::size_t) { raw.run(); });
  state.counters["GFLOP/s"] = gflop(n) * static_cast<double>(state.iterations()) / seconds;
}

BENCHMARK_CAPTURE(BM_CudaGemm, native, GemmBackend::native)
    ->Arg(256)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CudaGemm, cublas, GemmBackend::vendor)
    ->Arg(256)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CpuMatmul)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CpuOneDnnRaw)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kiln
