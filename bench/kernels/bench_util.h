// Shared helpers of the kernel benchmarks (elementwise, loss, reduce, unary, matmul):
// skipping cuda rows where timing means nothing, timing one call on the host clock or with
// cuda events, the rotation count that pushes buffers past the caches, the bandwidth
// counters, and the limits each row is reported against (a 2-thread memory triad or copy
// on cpu, a device-to-device copy on cuda), each measured once per size and cached.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/tensor.h"

namespace kiln::bench {

// Host threads of every cpu row and cpu limit.
inline constexpr int kCpuThreads = 2;
// Past the L2 of an H100 (50 MiB) and the L3 of common hosts: rotating buffers span at
// least this many bytes, so no pass finds its operands in cache.
inline constexpr std::int64_t kRotateBytes = std::int64_t{256} << 20;

// How many copies of a set of `set_bytes` bytes rotate through kRotateBytes (at least
// `min_count`).
std::int64_t rotate_count(std::int64_t set_bytes, std::int64_t min_count = 1);

// Skips the row (SkipWithError) and returns true without a real cuda device: none at all,
// or a SIM build, whose emulated devices have no meaningful `what` ("bandwidth", "speed").
bool skip_without_cuda(benchmark::State& state, const char* what = "bandwidth");
// skip_without_cuda for cuda devices; cpu rows always run.
inline bool skip_device(benchmark::State& state, Device device) {
  return !device.is_cpu() && skip_without_cuda(state);
}

// Seconds `calls` runs of body() take on cuda device `index`'s current stream, timed with
// events recorded around them.
template <class Body>
double cuda_seconds(Body&& body, int calls = 1, int index = 0) {
  const cuda::Stream stream = cuda::current_stream(index);
  cuda::Event start(index, true), end(index, true);
  start.record(stream);
  for (int i = 0; i < calls; ++i) body();
  end.record(stream);
  end.synchronize();
  return cuda::Event::elapsed_ms(start, end) / 1e3;
}

// Seconds one call of body() takes: the host clock on cpu, cuda events on a cuda device.
template <class Body>
double seconds_of(Device device, Body&& body) {
  if (device.is_cpu()) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return cuda_seconds(body, 1, device.index());
}

// The benchmark loop: times body(k) with seconds_of for k = first, first + 1, ... (callers
// pick their rotating set from k), reports each as the manual iteration time (ignored by
// real-time rows) and returns the total seconds of the timed calls.
template <class Body>
double timed_iterations(benchmark::State& state, Device device, Body&& body, std::size_t first = 0) {
  std::size_t k = first;
  double seconds = 0;
  for (auto _ : state) {
    const std::size_t i = k++;
    const double t = seconds_of(device, [&] { body(i); });
    state.SetIterationTime(t);
    seconds += t;
  }
  return seconds;
}

// Counters "GB/s" (bytes_per_iter per timed second, loop overhead excluded), "limit_GB/s"
// and "ratio_to_limit".
void set_bandwidth_counters(benchmark::State& state, double bytes_per_iter, double seconds, double limit_gbs);

// The median of `samples` (robust to a preempted or an unusually lucky run).
double median(std::vector<double> samples);

// a[i] = b[i] + 3 * c[i] over n floats on kCpuThreads OpenMP threads (12 bytes per element).
void triad(float* a, const float* b, const float* c, std::int64_t n);

// Best-of limits in GB/s (bytes read + written), each measured once per size (rep 0 warms
// up, buffers rotate past the caches):
//   cpu_triad_gbs(n)       the triad over n floats, best of 10
//   cpu_copy_gbs(bytes)    a kCpuThreads memcpy of `bytes`, best of 10
//   cuda_copy_gbs(bytes)   a device-to-device copy of `bytes` on cuda:0, best of 20
double cpu_triad_gbs(std::int64_t n);
double cpu_copy_gbs(std::int64_t bytes);
double cuda_copy_gbs(std::int64_t bytes);

// One pass of the per-device limit over n-element float32 tensors: the triad out = in + 3c
// on cpu, a device-to-device copy out <- in on cuda; limit_bytes_per_element is what one
// pass moves per element (12 and 8).
void limit_pass(Device device, const Tensor& out, const Tensor& in, const Tensor& c);
inline double limit_bytes_per_element(Device device) { return device.is_cpu() ? 12.0 : 8.0; }

// The median GB/s of 20 limit_pass passes (after a warm-up) over rotating n-element
// buffers, measured once per (device, n) and shared by every row of that size.
double median_limit_gbs(Device device, std::int64_t n);

// Rotating (output, input) float32 pairs: outputs of out_n elements (empty), inputs of n
// elements (0.5); at least 2 pairs, enough of them to span kRotateBytes.
class RotatingPairs {
 public:
  RotatingPairs(std::int64_t n, std::int64_t out_n, Device device);
  const std::pair<Tensor, Tensor>& next() { return pairs_[next_++ % pairs_.size()]; }

 private:
  std::vector<std::pair<Tensor, Tensor>> pairs_;  // (output, input)
  std::size_t next_ = 0;
};

}  // namespace kiln::bench
