// The speed workloads (perf_kernels.h) compute the right answer; their times are printed
// (the timing bound itself is asserted by the slow-labelled speed_test.cpp).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "perf_kernels.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

// Sanitizer builds run a smaller problem: same code paths, a fraction of the time.
constexpr int kScale = (KILN_TEST_ASAN || KILN_TEST_TSAN) ? 16 : 1;

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

using PerfWorkloadTest = SimTest;

TEST_F(PerfWorkloadTest, ReductionOfOneMillionFloats) {
  const int n = (1 << 20) / kScale;
  std::vector<float> host(n);
  double want = 0;
  for (int i = 0; i < n; ++i) {
    host[i] = static_cast<float>((i * 37) % 101) * 0.01f;
    want += host[i];
  }
  DeviceArray<float> in(host);
  const auto start = std::chrono::steady_clock::now();
  const float got = reduce_sum(in.get(), n);
  std::printf("SIM block reduction of %d floats: %.1f ms on %d OS threads\n", n,
              elapsed_ms(start), worker_threads());
  EXPECT_NEAR(got, want, 1e-4 * want);
}

TEST_F(PerfWorkloadTest, TiledSgemm256) {
  const int s = 256 / (kScale > 1 ? 4 : 1);
  std::vector<float> a(s * s), b(s * s);
  for (int i = 0; i < s * s; ++i) {  // small integers: the products sum exactly
    a[i] = static_cast<float>(i % 7 - 3);
    b[i] = static_cast<float>(i % 5 - 2);
  }
  DeviceArray<float> da(a), db(b), dc(s * s);
  const auto start = std::chrono::steady_clock::now();
  sgemm_tiled(da.get(), db.get(), dc.get(), s, s, s);
  const double ms = elapsed_ms(start);
  std::printf("SIM tiled SGEMM %dx%dx%d: %.1f ms on %d OS threads\n", s, s, s, ms,
              worker_threads());
  const auto c = dc.to_host();
  for (int i = 0; i < s; i += 7) {
    for (int j = 0; j < s; j += 5) {
      float want = 0;
      for (int p = 0; p < s; ++p) want += a[i * s + p] * b[p * s + j];
      ASSERT_EQ(c[i * s + j], want) << i << "," << j;
    }
  }
}

}  // namespace
}  // namespace kiln::sim::test
