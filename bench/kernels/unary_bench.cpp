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

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/kernels/unary.h"
#include "kiln/kernels/unary_impl.h"

namespace kiln {
namespace {

constexpr int kCpuThreads = 2;
constexpr std::int64_t kRotateBytes = std::int64_t{256} << 20;  // past an H100's 50 MiB L2
constexpr int kLimitPasses = 20;

enum class Mode { kernel, op };

// Rotating (output, input) pairs of n float32 elements on one device.
class Pairs {
 public:
  Pairs(std::int64_t n, Device device) {
    const std::int64_t pair_bytes = 8 * n;
    const std::int64_t count = std::max<std::int64_t>(2, (kRotateBytes + pair_bytes - 1) / pair_bytes);
    for (std::int64_t i = 0; i < count; ++i) {
      pairs_.emplace_back(empty({n}, {.dtype = float32, .device = device}),
                          full({n}, 0.5, {.dtype = float32, .device = device}));
    }
  }
  const std::pair<Tensor, Tensor>& next() { return pairs_[next_++ % pairs_.size()]; }

 private:
  std::vector<std::pair<Tensor, Tensor>> pairs_;
  std::size_t next_ = 0;
};

// Seconds one call of body() takes: host clock on cpu, cuda events on cuda:0's stream.
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

void triad(const Tensor& a, const Tensor& b, const Tensor& c) {
  float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const float* pc = c.data<float>();
  const std::int64_t n = a.numel();
#pragma omp parallel for num_threads(kCpuThreads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) pa[i] = pb[i] + 3.0f * pc[i];
}

// One pass of the limit: the triad on cpu (12 bytes per element), a d2d copy on cuda (8).
void limit_pass(Device device, const Tensor& out, const Tensor& in, const Tensor& c) {
  if (device.is_cpu()) {
    triad(out, in, c);
  } else {
    cuda::copy_bytes(out.data_ptr(), device, in.data_ptr(), device, out.nbytes());
  }
}
double limit_bytes_per_element(Device device) { return device.is_cpu() ? 12.0 : 8.0; }

// The device's limit for n elements in GB/s, the median of kLimitPasses timed passes over
// rotating buffers, measured once per (device, n) and shared by every row of that size.
double limit_gbs(Device device, std::int64_t n) {
  static std::map<std::pair<bool, std::int64_t>, double> cache;
  const auto key = std::make_pair(device.is_cpu(), n);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Pairs pairs(n, device);
  const Tensor c = full({n}, 0.25, {.dtype = float32, .device = device});
  std::vector<double> gbs;
  for (int pass = 0; pass <= kLimitPasses; ++pass) {  // pass 0 warms up
    const auto& [out, in] = pairs.next();
    const double t = seconds_of(device, [&] { limit_pass(device, out, in, c); });
    if (pass > 0) gbs.push_back(limit_bytes_per_element(device) * static_cast<double>(n) / t / 1e9);
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

void run_unary(benchmark::State& state, Device device, UnaryOp op, Tensor (*public_op)(const Tensor&),
               Mode mode) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const std::int64_t n = state.range(0);
  const double limit = limit_gbs(device, n);
  Pairs pairs(n, device);
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
  double seconds = 0;
  for (auto _ : state) {
    const auto& p = pairs.next();
    const double t = seconds_of(device, [&] { body(p); });
    state.SetIterationTime(t);
    seconds += t;
  }
  const double gbs = 8.0 * static_cast<double>(n) * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["limit_GB/s"] = limit;
  state.counters["ratio_to_limit"] = gbs / limit;
}

// The limit as a row of its own: the same passes, timed like the ops.
void BM_Limit(benchmark::State& state, Device device) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  const std::int64_t n = state.range(0);
  Pairs pairs(n, device);
  const Tensor c = full({n}, 0.25, {.dtype = float32, .device = device});
  double seconds = 0;
  for (auto _ : state) {
    const auto& [out, in] = pairs.next();
    const double t = seconds_of(device, [&] { limit_pass(device, out, in, c); });
    state.SetIterationTime(t);
    seconds += t;
  }
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
