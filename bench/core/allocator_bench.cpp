// Alloc+free latency of the CUDA caching allocator on a cache hit, beside its peers:
//   CachingAllocatorDevice  device_allocator(0): the cost a tensor allocation pays
//   RawCudaMalloc           cudaMalloc + cudaFree, what the cache saves
//   CachingAllocatorFake    the allocator over a fake device: the policy's cost alone
//   CpuMalloc               std::malloc + std::free, the host's baseline
// at 512 B, 64 KiB (small pool) and 4 MiB (large pool). Times are ns per alloc+free
// pair; --benchmark_format=json writes JSON. Device rows skip without a cuda device.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "fake_backend.h"
#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/error.h"

#if KILN_HAS_CUDA
#include "kiln/core/cuda/check.h"
#include "kiln/core/cuda/cuda_api.h"
#endif

namespace {

using kiln::cuda::CachingAllocator;

bool skip_without_device(benchmark::State& state) {
  if (kiln::cuda::is_available()) return false;
  const std::string why = "no cuda device: " + kiln::cuda::unavailable_reason();
  state.SkipWithError(why.c_str());
  return true;
}

// One warm-up pair fills the cache; every timed pair is then a cache hit.
void time_cache_hits(benchmark::State& state, CachingAllocator& alloc, void* stream) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  alloc.free(alloc.allocate(bytes, stream));
  for (auto _ : state) {
    void* p = alloc.allocate(bytes, stream);
    benchmark::DoNotOptimize(p);
    alloc.free(p);
  }
}

void BM_CachingAllocatorDevice(benchmark::State& state) {
  if (skip_without_device(state)) return;
  time_cache_hits(state, kiln::cuda::device_allocator(0),
                  kiln::cuda::Stream::default_stream(0).native());
}

// The one place that calls the CUDA runtime directly: only ON and SIM builds have it.
void BM_RawCudaMalloc(benchmark::State& state) {
  if (skip_without_device(state)) return;
#if KILN_HAS_CUDA
  const auto bytes = static_cast<std::size_t>(state.range(0));
  kiln::cuda::DeviceGuard guard(0);
  for (auto _ : state) {
    void* p = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&p, bytes));
    benchmark::DoNotOptimize(p);
    KILN_CUDA_CHECK(cudaFree(p));
  }
#endif
}

void BM_CachingAllocatorFake(benchmark::State& state) {
  kiln::testing::FakeBackend backend;
  CachingAllocator alloc(0, backend);
  time_cache_hits(state, alloc, kiln::testing::fake_stream(1));
}

void BM_CpuMalloc(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(bytes);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Arg(512)->Arg(64 << 10)->Arg(4 << 20)->Unit(benchmark::kNanosecond);
}

BENCHMARK(BM_CachingAllocatorDevice)->Apply(sizes);
BENCHMARK(BM_RawCudaMalloc)->Apply(sizes);
BENCHMARK(BM_CachingAllocatorFake)->Apply(sizes);
BENCHMARK(BM_CpuMalloc)->Apply(sizes);

}  // namespace
