// Tensors on cuda devices (core/cuda/tensor_cuda.*, copy.cu, fill.cu) checked against the
// cpu: transfers for every dtype, strided and converting copies, fills, arange, Philox
// random fills (bit-exact uniform, near-exact normal), multi-device copies, streams, and
// a size big enough to need the grid-stride loop. Every test skips without a cuda device.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/random.h"
#include "kiln/core/tensor.h"
#include "kiln_test.h"

namespace kiln {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr DType kAllDTypes[] = {float32, float16, bfloat16, float64, int32, int64, uint8, bool_};
constexpr DType kFloatDTypes[] = {float32, float16, bfloat16, float64};
constexpr Device kCpu = Device::cpu();  // references name it: default_device() may be a GPU
constexpr Device kCuda0 = Device::cuda(0);
constexpr Device kCuda1 = Device::cuda(1);

// A host tensor of values every dtype holds exactly: i % 3 == 0 for bool, i % 100 otherwise.
Tensor sample(const Shape& shape, DType dt) {
  std::vector<double> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = dt == bool_ ? (i % 3 == 0) : double(i % 100);
  return from_vector<double>(v, shape, {.dtype = dt, .device = kCpu});
}

// The bytes of a tensor, copied to the host in row-major order.
std::vector<unsigned char> host_bytes(const Tensor& t) {
  const Tensor h = t.to(Device::cpu()).contiguous();
  std::vector<unsigned char> out(h.nbytes());
  if (!out.empty()) std::memcpy(out.data(), h.data_ptr(), out.size());
  return out;
}

// Expects a and b (on any devices) to hold the same dtype, shape and bits; reports the
// first differing element.
void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const auto ba = host_bytes(a), bb = host_bytes(b);
  if (ba == bb) return;
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  const std::size_t w = a.itemsize();
  for (std::size_t i = 0; i < va.size(); ++i) {
    if (std::memcmp(&ba[i * w], &bb[i * w], w) != 0) {
      ADD_FAILURE() << what << ": first difference at element " << i << ": " << va[i] << " vs "
                    << vb[i];
      return;
    }
  }
}

// ---- transfers and copies ----

TEST(CudaTensor, RoundTripEveryDtype) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kAllDTypes) {
    const Tensor h = sample({3, 5}, dt);
    const Tensor d = h.to(kCuda0);
    EXPECT_EQ(d.device(), kCuda0);
    EXPECT_EQ(d.dtype(), dt);
    EXPECT_TRUE(d.to(kCuda0).is_same(d));
    const Tensor back = d.to(Device::cpu());
    EXPECT_EQ(back.device(), Device::cpu());
    expect_same_bits(back, h, std::string(name(dt)));
  }
}

TEST(CudaTensor, CopyHostToDeviceWithStridedSourceAndDestination) {
  KILN_REQUIRE_CUDA();
  const Tensor h = arange(24, {.device = kCpu}).view({4, 6});
  Tensor d = empty({6, 4}, {.device = kCuda0});
  d.copy_(h.t());  // transposed host source
  expect_same_bits(d, h.t().contiguous(), "h.t() -> cuda");
  // Strided cuda destination (every other column): only those elements change.
  Tensor base = zeros({4, 6}, {.device = kCuda0});
  base.slice(1, 0, 6, 2).copy_(h.slice(1, 1, 6, 2));
  Tensor expected = zeros({4, 6}, {.device = kCpu});
  expected.slice(1, 0, 6, 2).copy_(h.slice(1, 1, 6, 2));
  expect_same_bits(base, expected, "strided cuda destination");
  // Broadcast host source, converted on the way.
  Tensor b = empty({3, 4}, {.dtype = int32, .device = kCuda0});
  b.copy_(from_vector<float>({1.5f, 2, 3, 4}, {.device = kCpu}));
  EXPECT_THAT(b.to_vector<std::int32_t>(), ElementsAre(1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4));
}

TEST(CudaTensor, CopyDeviceToHostWithStridedSourceAndDestination) {
  KILN_REQUIRE_CUDA();
  const Tensor h = arange(60, {.device = kCpu}).view({3, 4, 5});
  const Tensor d = h.to(kCuda0);
  Tensor out = zeros({5, 4, 6}, {.device = kCpu});
  out.slice(2, 1, 6, 2).copy_(d.permute({2, 1, 0}));  // into a (5, 4, 3) view, stride 2
  Tensor expected = zeros({5, 4, 6}, {.device = kCpu});
  expected.slice(2, 1, 6, 2).copy_(h.permute({2, 1, 0}));
  expect_same_bits(out, expected, "permuted cuda source into strided host destination");
  EXPECT_EQ(d.permute({2, 1, 0}).at<float>({4, 3, 2}), 59.f);
  EXPECT_EQ(d[2][3][-1].item<float>(), 59.f);
}

TEST(CudaTensor, StridedCopyOnDeviceMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const Tensor h = arange(2 * 3 * 4 * 5, {.dtype = int32, .device = kCpu}).view({2, 3, 4, 5});
  const Tensor d = h.to(kCuda0);
  const auto view = [](const Tensor& t) {
    return t.permute({3, 1, 0, 2}).slice(0, 1, 5, 2).select(2, -1).transpose(0, 2);
  };
  const Tensor c = view(d).contiguous();
  EXPECT_EQ(c.device(), kCuda0);
  EXPECT_TRUE(c.is_contiguous());
  expect_same_bits(c, view(h).contiguous(), "contiguous() of a permuted cuda tensor");
  // Device-to-device copy into a strided view with broadcasting.
  Tensor dst = zeros({4, 6}, {.device = kCuda0});
  dst.slice(1, 1, 6, 2).copy_(d[0][0][0].slice(0, 0, 3));
  Tensor want = zeros({4, 6}, {.device = kCpu});
  want.slice(1, 1, 6, 2).copy_(h[0][0][0].slice(0, 0, 3));
  expect_same_bits(dst, want, "broadcast strided device copy");
}

TEST(CudaTensor, DtypeConversionOnDeviceMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor h = from_vector<float>(
      {0.f, -0.f, 1.5f, -2.75f, 3.3f, 1e-3f, 65519.f, 1e6f, 0.1f, nan, inf, -7.9f},
      {3, 4}, {.device = kCpu});
  const Tensor d = h.to(kCuda0);
  for (DType dt : {float16, bfloat16, float64, bool_}) {
    const Tensor on_device = d.to(dt);
    EXPECT_EQ(on_device.device(), kCuda0);
    expect_same_bits(on_device, h.to(dt), "float32 -> " + std::string(name(dt)));
    expect_same_bits(d.t().to(dt), h.t().to(dt), "strided float32 -> " + std::string(name(dt)));
  }
  // Integers from in-range values only (out-of-range float -> int is undefined in C++).
  const Tensor in_range =
      from_vector<float>({0.f, 1.5f, 2.99f, 100.9f, 254.5f, 7.f}, {.device = kCpu});
  const Tensor negative =
      from_vector<double>({-0.5, -1.5, -2.99, -100.9, -1e9, -7.0}, {.device = kCpu});
  for (DType dt : {int32, int64, uint8}) {
    const std::string n(name(dt));
    expect_same_bits(in_range.to(kCuda0).to(dt), in_range.to(dt), "float32 -> " + n);
    if (dt == uint8) continue;
    expect_same_bits(negative.to(kCuda0).to(dt), negative.to(dt), "negative float64 -> " + n);
    expect_same_bits(negative.to(dt).to(kCuda0).to(float16), negative.to(dt).to(float16),
                     n + " -> float16");
  }
}

// ---- fills ----

TEST(CudaTensor, ConstantFillsAndArangeMatchCpu) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kAllDTypes) {
    const std::string n(name(dt));
    const TensorOptions on_cuda{.dtype = dt, .device = kCuda0}, on_cpu{.dtype = dt, .device = kCpu};
    expect_same_bits(zeros({3, 7}, on_cuda), zeros({3, 7}, on_cpu), "zeros " + n);
    expect_same_bits(ones({5}, on_cuda), ones({5}, on_cpu), "ones " + n);
    expect_same_bits(full({2, 3}, 2.5, on_cuda), full({2, 3}, 2.5, on_cpu), "full " + n);
    expect_same_bits(arange(3, 40, 3, on_cuda), arange(3, 40, 3, on_cpu), "arange " + n);
  }
  expect_same_bits(arange(0, 1, 0.01, {.dtype = float64, .device = kCuda0}),
                   arange(0, 1, 0.01, {.dtype = float64, .device = kCpu}), "fractional arange");
  EXPECT_EQ(zeros({0, 3}, {.device = kCuda0}).numel(), 0);
  EXPECT_EQ(arange(0, {.device = kCuda0}).numel(), 0);
}

TEST(CudaTensor, FillOfAStridedViewTouchesOnlyTheView) {
  KILN_REQUIRE_CUDA();
  Tensor d = zeros({5, 6}, {.dtype = float16, .device = kCuda0});
  Tensor h = zeros({5, 6}, {.dtype = float16, .device = kCpu});
  d.slice(0, 1, 5, 3).t().fill_(-1.25);
  h.slice(0, 1, 5, 3).t().fill_(-1.25);
  expect_same_bits(d, h, "strided fill");
}

// ---- random ----

TEST(CudaTensor, UniformMatchesCpuBitForBit) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes) {
    const std::string n(name(dt));
    Generator gd(99), gh(99);
    const TensorOptions on_cuda{.dtype = dt, .device = kCuda0}, on_cpu{.dtype = dt, .device = kCpu};
    expect_same_bits(rand({1001}, on_cuda, &gd), rand({1001}, on_cpu, &gh), "rand " + n);
    expect_same_bits(uniform({7, 3}, -4, 0.5, on_cuda, &gd), uniform({7, 3}, -4, 0.5, on_cpu, &gh),
                     "uniform " + n);
    EXPECT_EQ(gd.offset(), gh.offset());
  }
}

// Box-Muller runs log/sqrt/cos/sin in double on each device; their last-bit differences
// may move a rounded result by one unit of the dtype, and rarely.
TEST(CudaTensor, NormalMatchesCpuWithinOneUlp) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes) {
    SCOPED_TRACE(std::string(name(dt)));
    // Relative size of one unit in the last place; float64 normals are float-precise.
    const double ulp = dt == float16 ? 0x1p-10 : dt == bfloat16 ? 0x1p-7 : 0x1p-23;
    const TensorOptions on_cuda{.dtype = dt, .device = kCuda0}, on_cpu{.dtype = dt, .device = kCpu};
    Generator gd(4242), gh(4242);
    const std::vector<double> d = randn({4099}, on_cuda, &gd).to_vector<double>();
    const std::vector<double> h = randn({4099}, on_cpu, &gh).to_vector<double>();
    int differ = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
      if (d[i] == h[i]) continue;
      ++differ;
      EXPECT_LE(std::fabs(d[i] - h[i]), ulp * std::fabs(h[i]) * 1.0001) << "element " << i;
    }
    EXPECT_LE(differ, 41) << "more than 1% of the elements differ";
    const std::vector<double> nd = normal({33}, 2.0, 0.5, on_cuda, &gd).to_vector<double>();
    const std::vector<double> nh = normal({33}, 2.0, 0.5, on_cpu, &gh).to_vector<double>();
    for (std::size_t i = 0; i < nh.size(); ++i) EXPECT_NEAR(nd[i], nh[i], ulp * 4 * std::fabs(nh[i]));
  }
}

// 2^20 + 3 elements is more than the elementwise launcher's grid covers in one pass, and
// not a multiple of 4 (the random kernel's block) or of the thread block.
TEST(CudaTensor, BigOddSizeUsesTheGridStrideLoop) {
  KILN_REQUIRE_CUDA();
  constexpr std::int64_t n = (std::int64_t{1} << 20) + 3;
  Generator gd(7), gh(7);
  const Tensor d = rand({n}, {.device = kCuda0}, &gd);
  const Tensor h = rand({n}, {.device = kCpu}, &gh);
  expect_same_bits(d, h, "rand of 2^20 + 3");
  Tensor a = arange(static_cast<double>(n), {.dtype = int32, .device = kCuda0});
  a.fill_(-1);
  a.slice(0, 1, n, 2).copy_(arange(static_cast<double>(n / 2), {.dtype = int32, .device = kCuda0}));
  const std::vector<std::int32_t> v = a.to_vector<std::int32_t>();
  EXPECT_EQ(v[0], -1);
  EXPECT_EQ(v[1], 0);
  EXPECT_EQ(v[n - 2], static_cast<std::int32_t>(n / 2 - 1));
  EXPECT_EQ(v[n - 1], -1);
}

// ---- devices and streams ----

TEST(CudaTensor, CrossDeviceCopies) {
  KILN_REQUIRE_TWO_DEVICES();
  const Tensor h = arange(35, {.device = kCpu}).view({5, 7});
  const Tensor d0 = h.to(kCuda0);
  const Tensor d1 = d0.to(kCuda1);
  EXPECT_EQ(d1.device(), kCuda1);
  expect_same_bits(d1, h, "cuda:0 -> cuda:1");
  expect_same_bits(d0.t().to(kCuda1, float16), h.t().to(float16), "transposed and converted");
  Tensor strided = zeros({5, 14}, {.device = kCuda1});
  strided.slice(1, 0, 14, 2).copy_(d0);
  Tensor want = zeros({5, 14}, {.device = kCpu});
  want.slice(1, 0, 14, 2).copy_(h);
  expect_same_bits(strided, want, "into a strided cuda:1 view");
  expect_same_bits(d1.to(kCuda0), h, "cuda:1 -> cuda:0");
}

// Work queued on the source's device after a cross-device copy must not change what the
// copy delivers.
TEST(CudaTensor, CrossDeviceCopyIsOrderedBeforeLaterWritesToTheSource) {
  KILN_REQUIRE_TWO_DEVICES();
  Tensor src = full({1 << 16}, 3.0, {.device = kCuda0});
  const Tensor dst = src.to(kCuda1);
  src.fill_(-1.0);
  EXPECT_EQ(dst.to_vector<float>(), std::vector<float>(1 << 16, 3.f));
}

TEST(CudaTensor, KernelsRunOnTheGuardedStream) {
  KILN_REQUIRE_CUDA();
  const cuda::Stream s = cuda::Stream::create(0);
  Tensor t;
  {
    cuda::StreamGuard guard(s);
    t = empty({1000, 3}, {.device = kCuda0});
    t.fill_(0.5);
    t.slice(1, 1, 2).copy_(arange(1000, {.device = kCuda0}).view({1000, 1}));
    cuda::Event done(0);
    done.record(s);
    done.synchronize();
    EXPECT_TRUE(s.query());
  }
  s.synchronize();
  const std::vector<float> v = t.to_vector<float>();
  EXPECT_EQ(v[0], 0.5f);
  EXPECT_EQ(v[3 * 999 + 1], 999.f);
  EXPECT_EQ(v[3 * 999 + 2], 0.5f);
}

TEST(CudaTensor, PrintingNamesTheDevice) {
  KILN_REQUIRE_CUDA();
  EXPECT_EQ(from_vector<float>({1.5f, 2.f}, {.device = kCuda0}).str(),
            "tensor([1.5000, 2.0000], dtype=float32, device=cuda:0)");
  if (cuda::device_count() > 1) {
    EXPECT_THAT(ones({2}, {.dtype = int32, .device = kCuda1}).str(), HasSubstr("device=cuda:1)"));
  }
}

TEST(CudaTensor, MissingDeviceRaisesDeviceError) {
  KILN_REQUIRE_CUDA();
  try {
    zeros({2}, {.device = Device::cuda(99)});
    FAIL() << "cuda:99 was accepted";
  } catch (const DeviceError& e) {
    EXPECT_THAT(e.message(), HasSubstr("cuda:99"));
    EXPECT_THAT(e.message(), HasSubstr("only " + std::to_string(cuda::device_count())));
  }
  EXPECT_THROW(zeros({2}, {.device = kCpu}).to(Device::cuda(99)), DeviceError);
  EXPECT_THROW(rand({2}, {.device = Device::cuda(99)}), DeviceError);
}

}  // namespace
}  // namespace kiln
