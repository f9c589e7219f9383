// Out-of-line parts of bench_util.h: the limits and their caches live here once, so every
// benchmark measures them the same way.
#include "bench_util.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "kiln/core/cuda/tensor_cuda.h"

namespace kiln::bench {

std::int64_t rotate_count(std::int64_t set_bytes, std::int64_t min_count) {
  return std::max<std::int64_t>(min_count, (kRotateBytes + set_bytes - 1) / set_bytes);
}

bool skip_without_cuda(benchmark::State& state, const char* what) {
  if (!cuda::is_available()) {
    state.SkipWithError(("no cuda device: " + cuda::unavailable_reason()).c_str());
    return true;
  }
  if (cuda::is_simulated()) {
    state.SkipWithError(
        ("no cuda device: SIM build (emulated devices have no meaningful " + std::string(what) + ")").c_str());
    return true;
  }
  return false;
}

void set_bandwidth_counters(benchmark::State& state, double bytes_per_iter, double seconds, double limit_gbs) {
  const double gbs = bytes_per_iter * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["limit_GB/s"] = limit_gbs;
  state.counters["ratio_to_limit"] = gbs / limit_gbs;
}

double median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

void triad(float* a, const float* b, const float* c, std::int64_t n) {
  const float s = 3.0f;
#pragma omp parallel for num_threads(kCpuThreads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

double cpu_triad_gbs(std::int64_t n) {
  static std::map<std::int64_t, double> cache;
  if (auto it = cache.find(n); it != cache.end()) return it->second;
  // Rotating (a, b, c) sets of n floats.
  std::vector<std::vector<Tensor>> sets(static_cast<std::size_t>(rotate_count(12 * n)));
  for (auto& set : sets) {
    for (int t = 0; t < 3; ++t) set.push_back(full({n}, 0.25 * (t + 1), {.dtype = float32, .device = Device::cpu()}));
  }
  double best = 0;
  for (std::size_t rep = 0; rep < 10; ++rep) {
    const auto& s = sets[rep % sets.size()];
    const double t0 = omp_get_wtime();
    triad(s[0].data<float>(), s[1].data<float>(), s[2].data<float>(), n);
    best = std::max(best, 12.0 * static_cast<double>(n) / (omp_get_wtime() - t0) / 1e9);
  }
  return cache[n] = best;
}

double cpu_copy_gbs(std::int64_t bytes) {
  static std::map<std::int64_t, double> cache;
  if (auto it = cache.find(bytes); it != cache.end()) return it->second;
  std::vector<unsigned char> a(static_cast<std::size_t>(bytes), 1), b(static_cast<std::size_t>(bytes), 2);
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(kCpuThreads)
    {
      const std::int64_t part = bytes / omp_get_num_threads(), begin = part * omp_get_thread_num();
      const std::int64_t len = omp_get_thread_num() == omp_get_num_threads() - 1 ? bytes - begin : part;
      std::memcpy(a.data() + begin, b.data() + begin, static_cast<std::size_t>(len));
    }
    if (rep > 0) best = std::max(best, 2.0 * static_cast<double>(bytes) / (omp_get_wtime() - t0) / 1e9);
  }
  return cache[bytes] = best;
}

double cuda_copy_gbs(std::int64_t bytes) {
  static std::map<std::int64_t, double> cache;
  if (auto it = cache.find(bytes); it != cache.end()) return it->second;
  std::vector<Tensor> bufs;  // copy k reads bufs[k + 1] and writes bufs[k]
  for (std::int64_t i = 0; i < rotate_count(bytes, 2); ++i)
    bufs.push_back(empty({bytes}, {.dtype = uint8, .device = Device::cuda(0)}));
  double best = 0;
  for (std::size_t rep = 0; rep < 20; ++rep) {
    const Tensor& dst = bufs[rep % bufs.size()];
    const Tensor& src = bufs[(rep + 1) % bufs.size()];
    const double t = cuda_seconds(
        [&] { cuda::copy_bytes(dst.data_ptr(), dst.device(), src.data_ptr(), src.device(), dst.nbytes()); });
    if (rep > 0) best = std::max(best, 2.0 * static_cast<double>(bytes) / t / 1e9);
  }
  return cache[bytes] = best;
}

void limit_pass(Device device, const Tensor& out, const Tensor& in, const Tensor& c) {
  if (device.is_cpu()) {
    triad(out.data<float>(), in.data<float>(), c.data<float>(), out.numel());
  } else {
    cuda::copy_bytes(out.data_ptr(), device, in.data_ptr(), device, out.nbytes());
  }
}

double median_limit_gbs(Device device, std::int64_t n) {
  constexpr int kPasses = 20;
  static std::map<std::pair<bool, std::int64_t>, double> cache;
  const auto key = std::make_pair(device.is_cpu(), n);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  RotatingPairs pairs(n, n, device);
  const Tensor c = full({n}, 0.25, {.dtype = float32, .device = device});
  std::vector<double> gbs;
  for (int pass = 0; pass <= kPasses; ++pass) {  // pass 0 warms up
    const auto& [out, in] = pairs.next();
    const double t = seconds_of(device, [&] { limit_pass(device, out, in, c); });
    if (pass > 0) gbs.push_back(limit_bytes_per_element(device) * static_cast<double>(n) / t / 1e9);
  }
  return cache[key] = median(std::move(gbs));
}

RotatingPairs::RotatingPairs(std::int64_t n, std::int64_t out_n, Device device) {
  for (std::int64_t i = 0; i < rotate_count(4 * (n + out_n), 2); ++i) {
    pairs_.emplace_back(empty({out_n}, {.dtype = float32, .device = device}),
                        full({n}, 0.5, {.dtype = float32, .device = device}));
  }
}

}  // namespace kiln::bench
