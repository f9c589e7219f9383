// Fast-math, integer and bit intrinsics, min/max, and atomics under contention from many
// blocks on several OS threads, each checked against its CUDA definition (the CUDA Math
// API's error bounds for the fast intrinsics, exact results for the rest).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kiln/core/cuda/kernel.h"
#include "sim_test_util.h"

namespace kiln::sim::test {
namespace {

// ---- fast math ----

enum Fn { kExp, kLog, kSin, kCos, kPow2, kDiv, kRsqrt, kSat, kFnCount };

__global__ void fast_math(const float* x, int n, float* out) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  const float v = x[i];
  out[kExp * n + i] = __expf(v);
  out[kLog * n + i] = __logf(fabsf(v) + 0.5f);
  out[kSin * n + i] = __sinf(v);
  out[kCos * n + i] = __cosf(v);
  out[kPow2 * n + i] = __powf(2.0f, v);
  out[kDiv * n + i] = __fdividef(v, 3.0f);
  out[kRsqrt * n + i] = rsqrtf(fabsf(v) + 1.0f);
  out[kSat * n + i] = __saturatef(v);
}

double ulps(float got, double want) {
  const float w = static_cast<float>(want);
  const float ulp = std::nextafter(std::fabs(w), INFINITY) - std::fabs(w);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

using MathTest = SimTest;

TEST_F(MathTest, FastIntrinsicsWithinCudaErrorBounds) {
  std::vector<float> x;
  for (float v = -20.0f; v <= 20.0f; v += 0.37f) x.push_back(v);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  const int n = static_cast<int>(x.size());
  DeviceArray<float> dx(x), out(kFnCount * n);
  KILN_LAUNCH(fast_math, (n + 63) / 64, 64, 0, nullptr)(dx.get(), n, out.get());
  const auto got = out.to_host();
  for (int i = 0; i < n; ++i) {
    const double v = x[i];
    SCOPED_TRACE(v);
    EXPECT_LE(ulps(got[kExp * n + i], std::exp(v)), 2 + std::floor(std::fabs(1.173 * v)));
    EXPECT_LE(ulps(got[kLog * n + i], std::log(std::fabs(v) + 0.5)), 3.0);
    if (std::fabs(v) <= M_PI) {  // CUDA bounds the absolute error there
      EXPECT_LE(std::fabs(got[kSin * n + i] - std::sin(v)), std::ldexp(1.0, -21));
      EXPECT_LE(std::fabs(got[kCos * n + i] - std::cos(v)), std::ldexp(1.0, -21));
    }
    EXPECT_LE(ulps(got[kPow2 * n + i], std::exp2(v)), 2 + std::floor(std::fabs(1.173 * v)));
    EXPECT_LE(ulps(got[kDiv * n + i], v / 3.0), 2.0);
    EXPECT_LE(ulps(got[kRsqrt * n + i], 1.0 / std::sqrt(std::fabs(v) + 1.0)), 2.0);
    EXPECT_EQ(got[kSat * n + i], static_cast<float>(std::clamp(v, 0.0, 1.0)));
  }
}

__global__ void special_cases(float* out) {
  out[0] = __fdividef(1.0f, 0x1p127f);       // huge divisor: 0
  out[1] = __fdividef(INFINITY, 0x1p127f);   // ... NaN for an infinite dividend
  out[2] = __fdividef(6.0f, 2.0f);
  out[3] = __saturatef(NAN);                 // NaN saturates to 0
  out[4] = __saturatef(-3.0f);
  out[5] = __saturatef(7.0f);
  out[6] = __frcp_rn(4.0f);
  out[7] = __int_as_float(0x40000000);
  out[8] = min(3.0f, NAN);                   // fminf: the number wins
  out[9] = max(-1.0f, -2.0f);
}

TEST_F(MathTest, SpecialCasesFollowCuda) {
  DeviceArray<float> out(10);
  KILN_LAUNCH(special_cases, 1, 1, 0, nullptr)(out.get());
  const auto g = out.to_host();
  EXPECT_EQ(g[0], 0.0f);
  EXPECT_TRUE(std::isnan(g[1]));
  EXPECT_EQ(g[2], 3.0f);
  EXPECT_EQ(g[3], 0.0f);
  EXPECT_EQ(g[4], 0.0f);
  EXPECT_EQ(g[5], 1.0f);
  EXPECT_EQ(g[6], 0.25f);
  EXPECT_EQ(g[7], 2.0f);
  EXPECT_EQ(g[8], 3.0f);
  EXPECT_EQ(g[9], -1.0f);
}

__global__ void integer_intrinsics(long long* out) {
  out[0] = __popc(0xF0F0u);
  out[1] = __clz(1);
  out[2] = __clz(0);
  out[3] = __clzll(1);
  out[4] = __ffs(0);
  out[5] = __ffs(0x10);
  out[6] = __brev(1u);
  out[7] = __brev(0x12345678u);
  out[8] = static_cast<long long>(__brevll(1ull) >> 1);
  out[9] = __mulhi(-2, 0x40000000);
  out[10] = __umulhi(0xFFFFFFFFu, 2u);
  out[11] = __float_as_int(1.0f);
  out[12] = min(-1, 2u);   // int and unsigned: compared as unsigned, as in CUDA
  out[13] = max(-1, 2u);
  out[14] = min(-5LL, 3LL);
  out[15] = __popcll(~0ull);
}

TEST_F(MathTest, IntegerAndBitIntrinsics) {
  DeviceArray<long long> out(16);
  KILN_LAUNCH(integer_intrinsics, 1, 1, 0, nullptr)(out.get());
  const std::vector<long long> want = {8, 31, 32, 63, 0, 5, 0x80000000LL, 0x1E6A2C48LL,
                                       1LL << 62, -1, 1, 0x3f800000LL, 2, 0xFFFFFFFFLL, -5, 64};
  EXPECT_EQ(out.to_host(), want);
}

__global__ void read_only_vectors(const float4* in, float* out) {
  const float4 v = __ldg(in + threadIdx.x);
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

TEST_F(MathTest, LdgOfAlignedVectors) {
  std::vector<float4> in(5);
  for (int i = 0; i < 5; ++i) in[i] = make_float4(i, 2.0f * i, 3.0f * i, 4.0f * i);
  DeviceArray<float4> din(in);
  DeviceArray<float> out(5);
  KILN_LAUNCH(read_only_vectors, 1, 5, 0, nullptr)(din.get(), out.get());
  EXPECT_EQ(out.to_host(), (std::vector<float>{0, 10, 20, 30, 40}));
}

// ---- atomics ----

struct Counters {
  int add_i, sub_i, max_i, min_i, cas_i, xor_i;
  unsigned add_u, inc_u, dec_u, or_u, and_u, max_u;
  unsigned long long add_ull, max_ull;
  long long min_ll;
  float add_f;
  double add_d;
  unsigned short cas_us;
  unsigned long long cas_ull;
  unsigned min_u;
  float exch_f;
};

__global__ void hammer(Counters* c, int* exch_old, int n) {
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (t >= n) return;
  atomicAdd(&c->add_i, 1);
  atomicSub(&c->sub_i, 2);
  atomicMax(&c->max_i, (t * 7919) % n);
  atomicMin(&c->min_i, -((t * 7919) % n));
  int old = atomicAdd(&c->cas_i, 0), assumed;  // a CAS loop, as in pre-atomicAdd code
  do {
    assumed = old;
    old = atomicCAS(&c->cas_i, assumed, assumed + 3);
  } while (old != assumed);
  atomicXor(&c->xor_i, 1);
  atomicAdd(&c->add_u, 2u);
  atomicInc(&c->inc_u, 9u);
  atomicDec(&c->dec_u, 9u);
  atomicOr(&c->or_u, 1u << (t % 32));
  atomicAnd(&c->and_u, ~(1u << (t % 32)));
  atomicMax(&c->max_u, static_cast<unsigned>(t));
  atomicAdd(&c->add_ull, 1ull << 33);
  atomicMax(&c->max_ull, static_cast<unsigned long long>(t) << 40);
  atomicMin(&c->min_ll, -(static_cast<long long>(t) << 40));
  atomicAdd(&c->add_f, 1.0f);
  atomicAdd(&c->add_d, 0.25);
  unsigned short us = atomicCAS(&c->cas_us, static_cast<unsigned short>(0),
                                static_cast<unsigned short>(0)), seen;
  do {
    seen = us;
    us = atomicCAS(&c->cas_us, seen, static_cast<unsigned short>(seen + 1));
  } while (us != seen);
  unsigned long long seen_ull = atomicCAS(&c->cas_ull, 0ull, 0ull), want_ull;
  do {
    want_ull = seen_ull;
    seen_ull = atomicCAS(&c->cas_ull, want_ull, want_ull + (1ull << 35));
  } while (seen_ull != want_ull);
  atomicMin(&c->min_u, static_cast<unsigned>(n - t));
  atomicExch(&c->exch_f, 2.5f);
  exch_old[t] = atomicExch(&exch_old[n], t);
}

using AtomicTest = SimTest;

TEST_F(AtomicTest, ExactUnderContentionFromManyBlocks) {
  const int n = 8003;  // 63 blocks of 128, the last partial
  Counters init{};
  init.min_i = 0;
  init.and_u = ~0u;
  init.min_u = ~0u;
  DeviceArray<Counters> c(std::vector<Counters>{init});
  std::vector<int> exch(n + 1, 0);
  exch[n] = -1;
  DeviceArray<int> dexch(exch);
  KILN_LAUNCH(hammer, (n + 127) / 128, 128, 0, nullptr)(c.get(), dexch.get(), n);
  const Counters r = c.to_host()[0];
  EXPECT_EQ(r.add_i, n);
  EXPECT_EQ(r.sub_i, -2 * n);
  EXPECT_EQ(r.max_i, n - 1);
  EXPECT_EQ(r.min_i, -(n - 1));
  EXPECT_EQ(r.cas_i, 3 * n);
  EXPECT_EQ(r.xor_i, n % 2);
  EXPECT_EQ(r.add_u, 2u * n);
  EXPECT_EQ(r.inc_u, static_cast<unsigned>(n % 10));
  EXPECT_EQ(r.dec_u, static_cast<unsigned>((10 - n % 10) % 10));
  EXPECT_EQ(r.or_u, ~0u);
  EXPECT_EQ(r.and_u, 0u);
  EXPECT_EQ(r.max_u, static_cast<unsigned>(n - 1));
  EXPECT_EQ(r.add_ull, static_cast<unsigned long long>(n) << 33);
  EXPECT_EQ(r.max_ull, static_cast<unsigned long long>(n - 1) << 40);
  EXPECT_EQ(r.min_ll, -(static_cast<long long>(n - 1) << 40));
  EXPECT_EQ(r.add_f, static_cast<float>(n));
  EXPECT_EQ(r.add_d, 0.25 * n);
  EXPECT_EQ(r.cas_us, static_cast<unsigned short>(n));
  EXPECT_EQ(r.cas_ull, static_cast<unsigned long long>(n) << 35);
  EXPECT_EQ(r.min_u, 1u);
  EXPECT_EQ(r.exch_f, 2.5f);
  // atomicExch hands every value on exactly once: the olds plus the final value are
  // the initial -1 and every thread index.
  auto olds = dexch.to_host();
  std::sort(olds.begin(), olds.end());
  for (int i = 0; i <= n; ++i) ASSERT_EQ(olds[i], i - 1);
}

// The last-block pattern: partial sums, __threadfence, a ticket; the last block to take
// a ticket adds the partials.
__global__ void sum_with_last_block(const int* in, int* partial, unsigned* ticket, int* total) {
  __shared__ int block_sum;
  __shared__ bool last;
  if (threadIdx.x == 0) block_sum = 0;
  __syncthreads();
  atomicAdd(&block_sum, in[blockIdx.x * blockDim.x + threadIdx.x]);
  __syncthreads();
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = block_sum;
    __threadfence();
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (last && threadIdx.x == 0) {
    int s = 0;
    for (unsigned b = 0; b < gridDim.x; ++b) s += atomicAdd(&partial[b], 0);
    *total = s;
  }
}

TEST_F(AtomicTest, ThreadfenceLastBlockPattern) {
  const int blocks = 50, threads = 64;
  std::vector<int> in(blocks * threads);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 13);
  DeviceArray<int> din(in), partial(blocks), total(1);
  DeviceArray<unsigned> ticket(std::vector<unsigned>{0});
  KILN_LAUNCH(sum_with_last_block, blocks, threads, 0, nullptr)(din.get(), partial.get(),
                                                               ticket.get(), total.get());
  long want = 0;
  for (int v : in) want += v;
  EXPECT_EQ(total.to_host()[0], want);
}

}  // namespace
}  // namespace kiln::sim::test
