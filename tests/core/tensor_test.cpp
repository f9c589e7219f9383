// Tensor basics on cpu (core/tensor.h, tensor.cpp, tensor_copy.cpp): metadata, typed data
// access, element access and its errors, copy_ with conversion / broadcasting / strides,
// to(), clone(), contiguous(), fill_, and special values surviving copies.
#include "kiln/core/tensor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "kiln/core/cuda/runtime.h"

namespace kiln {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// 0, 1, 2, ... as float32 in `shape`.
Tensor iota(const Shape& shape) { return arange(static_cast<double>(shape.numel())).view(shape); }

// ---- metadata ----

TEST(TensorMeta, SizeAndStrideAcceptNegativeAxes) {
  const Tensor t = zeros({2, 3, 4});
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_EQ(t.stride(0), 12);
  EXPECT_EQ(t.stride(-1), 1);
  EXPECT_EQ(t.stride(-2), 4);
  EXPECT_EQ(t.offset(), 0);
}

TEST(TensorMeta, SizeOutOfRangeAxisRaisesIndexError) {
  const Tensor t = zeros({2, 3});
  EXPECT_THROW(t.size(2), IndexError);
  EXPECT_THROW(t.size(-3), IndexError);
  EXPECT_THROW(t.stride(5), IndexError);
}

TEST(TensorMeta, NumelAndNbytesFollowShapeAndDtype) {
  EXPECT_EQ(zeros({2, 3, 4}).numel(), 24);
  EXPECT_EQ(zeros({2, 3, 4}).nbytes(), 96u);
  EXPECT_EQ(zeros({5}, {.dtype = float64}).nbytes(), 40u);
  EXPECT_EQ(zeros({5}, {.dtype = bfloat16}).nbytes(), 10u);
  EXPECT_EQ(zeros({5}, {.dtype = bool_}).nbytes(), 5u);
  EXPECT_EQ(zeros({}).numel(), 1);  // a scalar
  EXPECT_EQ(zeros({3, 0, 2}).numel(), 0);
  EXPECT_EQ(zeros({3, 0, 2}).nbytes(), 0u);
}

TEST(TensorMeta, ContiguityIgnoresSizeOneAndSizeZeroDims) {
  EXPECT_TRUE(zeros({2, 3}).is_contiguous());
  EXPECT_FALSE(zeros({2, 3}).t().is_contiguous());
  EXPECT_TRUE(zeros({}).is_contiguous());
  // A transpose that only moves a size-1 axis keeps the element order.
  EXPECT_TRUE(zeros({1, 5}).t().is_contiguous());
  EXPECT_TRUE(zeros({4, 1, 3}).permute({1, 0, 2}).is_contiguous());
  // Every layout of an empty tensor is contiguous.
  EXPECT_TRUE(zeros({3, 0}).t().is_contiguous());
  // Every other row: the row stride no longer matches.
  EXPECT_FALSE(zeros({4, 3}).slice(0, 0, 4, 2).is_contiguous());
  // Broadcast axes (stride 0) are not contiguous.
  EXPECT_FALSE(zeros({3}).expand({2, 3}).is_contiguous());
  EXPECT_TRUE(zeros({1, 3}).expand({1, 3}).is_contiguous());
}

TEST(TensorMeta, DefaultDeviceIsCpuWithoutARealGpu) {
  // OFF and SIM builds keep cpu as the default (DESIGN: emulated devices are opt-in).
  if (cuda::is_available() && !cuda::is_simulated()) GTEST_SKIP() << "a real GPU is present";
  if (const char* env = std::getenv("KILN_DEVICE"); env && *env) GTEST_SKIP() << "KILN_DEVICE is set";
  EXPECT_EQ(default_device(), Device::cpu());
  EXPECT_EQ(zeros({2}).device(), Device::cpu());
}

// ---- typed access ----

TEST(TensorData, TypedPointerChecksDtype) {
  const Tensor t = zeros({3}, {.dtype = int32});
  EXPECT_NE(t.data<std::int32_t>(), nullptr);
  EXPECT_EQ(static_cast<void*>(t.data<std::int32_t>()), t.data_ptr());
  try {
    (void)t.data<float>();
    FAIL() << "data<float> on an int32 tensor did not throw";
  } catch (const TypeError& e) {
    EXPECT_THAT(e.message(), HasSubstr("float32"));
    EXPECT_THAT(e.message(), HasSubstr("int32"));
  }
}

TEST(TensorData, DataPtrOfAViewPointsAtItsFirstElement) {
  const Tensor base = iota({4, 3}).to(Device::cpu());  // the host reads through the pointer
  const Tensor row = base[2];
  EXPECT_EQ(row.offset(), 6);
  EXPECT_EQ(row.data<float>(), base.data<float>() + 6);
  EXPECT_EQ(*row.data<float>(), 6.f);
}

TEST(TensorData, UndefinedTensorRaisesOnUse) {
  const Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_TRUE(zeros({1}).defined());
  EXPECT_THROW(t.shape(), ValueError);
  EXPECT_THROW(t.numel(), ValueError);
  EXPECT_THROW(t.dtype(), ValueError);
  EXPECT_THROW(t.clone(), ValueError);
  EXPECT_THROW(zeros({2}).copy_(t), ValueError);
  try {
    (void)t.device();
    FAIL() << "device() of an undefined tensor did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("undefined tensor"));
  }
  EXPECT_EQ(t.str(), "tensor(undefined)");
}

TEST(TensorData, CopiesOfAHandleAreTheSameTensor) {
  const Tensor a = zeros({2});
  Tensor b = a;
  EXPECT_TRUE(b.is_same(a));
  b.fill_(3.0);
  EXPECT_EQ(a.at<float>({1}), 3.f);
}

// ---- element access ----

TEST(TensorItem, ItemOfOneElementTensorsConverts) {
  EXPECT_EQ(full({}, 2.5).item<float>(), 2.5f);
  EXPECT_EQ(full({1, 1}, 7, {.dtype = int64}).item<std::int64_t>(), 7);
  EXPECT_EQ(full({}, 2.75).item<int>(), 2);  // converts like copy_: truncation
  EXPECT_TRUE(full({}, 1, {.dtype = bool_}).item<bool>());
  EXPECT_EQ(iota({3, 4})[1].slice(0, 2, 3).item<double>(), 6.0);
}

TEST(TensorItem, ItemOfManyElementsRaisesValueError) {
  try {
    (void)zeros({2, 3}).item<float>();
    FAIL() << "item() of a (2, 3) tensor did not throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("(2, 3)"));
  }
}

TEST(TensorItem, AtAcceptsNegativeIndices) {
  const Tensor t = iota({3, 4});
  EXPECT_EQ(t.at<float>({0, 0}), 0.f);
  EXPECT_EQ(t.at<float>({2, 3}), 11.f);
  EXPECT_EQ(t.at<float>({-1, -1}), 11.f);
  EXPECT_EQ(t.at<float>({-3, 1}), 1.f);
  EXPECT_EQ(t.t().at<float>({3, 1}), 7.f);  // follows strides
  EXPECT_EQ(full({}, 4.0).at<float>({}), 4.f);
}

TEST(TensorItem, AtOutOfRangeNamesIndexAndShape) {
  const Tensor t = iota({3, 4});
  try {
    (void)t.at<float>({1, 4});
    FAIL() << "at({1, 4}) on (3, 4) did not throw";
  } catch (const IndexError& e) {
    EXPECT_THAT(e.message(), HasSubstr("index 4"));
    EXPECT_THAT(e.message(), HasSubstr("(3, 4)"));
  }
  try {
    (void)t.at<float>({-4, 0});
    FAIL() << "at({-4, 0}) on (3, 4) did not throw";
  } catch (const IndexError& e) {
    EXPECT_THAT(e.message(), HasSubstr("index -4"));
    EXPECT_THAT(e.message(), HasSubstr("(3, 4)"));
  }
  EXPECT_THROW(t.at<float>({1}), IndexError);        // too few indices
  EXPECT_THROW(t.at<float>({1, 1, 1}), IndexError);  // too many
}

TEST(TensorItem, ToVectorIsRowMajorAndConverts) {
  const Tensor t = iota({2, 3});
  EXPECT_THAT(t.to_vector<float>(), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT(t.t().to_vector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
  EXPECT_THAT(t.to_vector<std::int64_t>(), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT(t.to_vector<bool>(), ElementsAre(false, true, true, true, true, true));
  EXPECT_TRUE(zeros({0, 3}).to_vector<float>().empty());
}

// ---- copy_ ----

TEST(TensorCopy, FloatToIntTruncatesTowardZero) {
  const Tensor src = from_vector<float>({2.7f, -2.7f, 0.5f, -0.5f, 100.99f});
  EXPECT_THAT(src.to(int32).to_vector<std::int32_t>(), ElementsAre(2, -2, 0, 0, 100));
  EXPECT_THAT(src.to(int64).to_vector<std::int64_t>(), ElementsAre(2, -2, 0, 0, 100));
  Tensor dst = zeros({5}, {.dtype = uint8});
  dst.copy_(from_vector<double>({0.9, 1.9, 254.5, 255.0, 7.0}));
  EXPECT_THAT(dst.to_vector<std::uint8_t>(), ElementsAre(0, 1, 254, 255, 7));
}

TEST(TensorCopy, AnythingToBoolIsNonZero) {
  const Tensor src = from_vector<float>({0.f, -0.f, 0.5f, -3.f, static_cast<float>(kNaN)});
  EXPECT_THAT(src.to(bool_).to_vector<bool>(), ElementsAre(false, false, true, true, true));
  EXPECT_THAT(from_vector<std::int32_t>({0, 7, -1}).to(bool_).to_vector<bool>(),
              ElementsAre(false, true, true));
  // And back: true is 1.
  EXPECT_THAT(from_vector<bool>({true, false}).to(float32).to_vector<float>(), ElementsAre(1, 0));
}

TEST(TensorCopy, HalfAndBFloat16RoundToNearestEven) {
  // 1 + 2^-11 is halfway between the float16 neighbours 1 and 1 + 2^-10: ties go to even (1).
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: even is 1 + 2^-9.
  const double h = std::ldexp(1.0, -11);
  const Tensor src = from_vector<float>({1.f + float(h), 1.f + float(3 * h), 1.f + float(1.5 * h)});
  EXPECT_THAT(src.to(float16).to_vector<float>(),
              ElementsAre(1.f, 1.f + float(4 * h), 1.f + float(2 * h)));
  // bfloat16 keeps 8 significand bits: the neighbours of 1 are 1 and 1 + 2^-7.
  const double b = std::ldexp(1.0, -8);
  const Tensor bsrc = from_vector<float>({1.f + float(b), 1.f + float(3 * b), 1.f + float(0.5 * b)});
  EXPECT_THAT(bsrc.to(bfloat16).to_vector<float>(), ElementsAre(1.f, 1.f + float(4 * b), 1.f));
}

TEST(TensorCopy, BroadcastsSourceAlongNewAndUnitAxes) {
  Tensor dst = zeros({2, 3});
  dst.copy_(from_vector<float>({1, 2, 3}));
  EXPECT_THAT(dst.to_vector<float>(), ElementsAre(1, 2, 3, 1, 2, 3));
  dst.copy_(from_vector<float>({7, 8}, {2, 1}));
  EXPECT_THAT(dst.to_vector<float>(), ElementsAre(7, 7, 7, 8, 8, 8));
  dst.copy_(full({}, 5.0, {.dtype = int32}));
  EXPECT_THAT(dst.to_vector<float>(), ElementsAre(5, 5, 5, 5, 5, 5));
}

TEST(TensorCopy, IntoNonContiguousDestinationTouchesOnlyTheView) {
  Tensor base = zeros({3, 4});
  Tensor cols = base.slice(1, 1, 4, 2);  // columns 1 and 3
  cols.copy_(from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2}));
  EXPECT_THAT(base.to_vector<float>(), ElementsAre(0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6));
  Tensor tr = zeros({2, 3});
  tr.t().copy_(iota({3, 2}));
  EXPECT_THAT(tr.to_vector<float>(), ElementsAre(0, 2, 4, 1, 3, 5));
}

TEST(TensorCopy, FromNonContiguousSourceWithConversion) {
  const Tensor src = iota({2, 3, 4}).permute({2, 0, 1}).slice(0, 1, 4, 2);  // (2, 2, 3)
  Tensor dst = zeros({2, 2, 3}, {.dtype = float64});
  dst.copy_(src);
  std::vector<double> expected;
  for (int k : {1, 3}) {
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 3; ++j) expected.push_back(i * 12 + j * 4 + k);
    }
  }
  EXPECT_EQ(dst.to_vector<double>(), expected);
}

TEST(TensorCopy, ShapeMismatchNamesBothShapes) {
  Tensor dst = zeros({2, 3});
  try {
    dst.copy_(zeros({3, 2}));
    FAIL() << "copying (3, 2) into (2, 3) did not throw";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), HasSubstr("(2, 3)"));
    EXPECT_THAT(e.message(), HasSubstr("(3, 2)"));
  }
  try {
    zeros({3}).copy_(zeros({2, 3}));
    FAIL() << "copying (2, 3) into (3,) did not throw";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), HasSubstr("(3,)"));
    EXPECT_THAT(e.message(), HasSubstr("(2, 3)"));
  }
}

TEST(TensorCopy, AcrossDevicesRaisesWithoutCuda) {
  if (cuda::is_available()) GTEST_SKIP() << "cuda devices exist; see cuda_tensor_test";
  EXPECT_THROW(zeros({2}).to(Device::cuda(0)), DeviceError);
  EXPECT_THROW(zeros({2}, {.device = Device::cuda(0)}), DeviceError);
}

// ---- to / clone / contiguous ----

TEST(TensorTo, SameDtypeOrDeviceReturnsTheSameTensor) {
  const Tensor t = iota({2, 3}).to(Device::cpu());
  EXPECT_TRUE(t.to(float32).is_same(t));
  EXPECT_TRUE(t.to(Device::cpu()).is_same(t));
  EXPECT_TRUE(t.to(Device::cpu(), float32).is_same(t));
  const Tensor d = t.to(float64);
  EXPECT_FALSE(d.is_same(t));
  EXPECT_FALSE(d.shares_storage(t));
  EXPECT_EQ(d.dtype(), float64);
  EXPECT_EQ(d.shape(), t.shape());
  EXPECT_THAT(d.to_vector<double>(), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(TensorTo, ConversionOfAViewIsContiguous) {
  const Tensor d = iota({2, 3}).t().to(int32);
  EXPECT_TRUE(d.is_contiguous());
  EXPECT_EQ(d.shape(), Shape({3, 2}));
  EXPECT_THAT(d.to_vector<std::int32_t>(), ElementsAre(0, 3, 1, 4, 2, 5));
}

TEST(TensorClone, IsIndependentOfTheOriginal) {
  Tensor a = iota({2, 3});
  Tensor b = a.clone();
  EXPECT_FALSE(b.shares_storage(a));
  EXPECT_TRUE(b.is_contiguous());
  b.fill_(-1.0);
  EXPECT_THAT(a.to_vector<float>(), ElementsAre(0, 1, 2, 3, 4, 5));
  a.fill_(9.0);
  EXPECT_THAT(b.to_vector<float>(), ElementsAre(-1, -1, -1, -1, -1, -1));
  // A clone of a view compacts it.
  const Tensor c = iota({2, 3}).t().clone();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_THAT(c.to_vector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
}

TEST(TensorContiguous, SharesWhenAlreadyContiguousAndCopiesOtherwise) {
  const Tensor a = iota({2, 3});
  EXPECT_TRUE(a.contiguous().is_same(a));
  const Tensor t = a.t();
  const Tensor c = t.contiguous();
  EXPECT_FALSE(c.shares_storage(a));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.strides(), Strides({2, 1}));
  EXPECT_THAT(c.to_vector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
}

// ---- fill_ ----

TEST(TensorFill, OnAStridedViewTouchesOnlyTheView) {
  Tensor base = zeros({4, 5});
  base.slice(0, 1, 4, 2).slice(1, 0, 5, 3).fill_(7.0);  // rows 1, 3; columns 0, 3
  const std::vector<float> v = base.to_vector<float>();
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 5; ++j) {
      const bool inside = (i == 1 || i == 3) && (j == 0 || j == 3);
      EXPECT_EQ(v[i * 5 + j], inside ? 7.f : 0.f) << "(" << i << ", " << j << ")";
    }
  }
  base.t()[4].fill_(-1.0);  // column 4 through a transposed view
  EXPECT_THAT(base.select(1, 4).to_vector<float>(), ElementsAre(-1, -1, -1, -1));
  EXPECT_EQ(base.at<float>({1, 3}), 7.f);
}

TEST(TensorFill, ConvertsTheValueToTheDtype) {
  EXPECT_THAT(zeros({2}, {.dtype = int32}).fill_(3.9).to_vector<std::int32_t>(), ElementsAre(3, 3));
  EXPECT_THAT(zeros({2}, {.dtype = bool_}).fill_(0.25).to_vector<bool>(), ElementsAre(true, true));
  EXPECT_THAT(zeros({1}, {.dtype = float16}).fill_(1.0 / 3).to_vector<float>(),
              ElementsAre(static_cast<float>(Half(1.0f / 3))));
  EXPECT_TRUE(zeros({0, 4}).fill_(1.0).to_vector<float>().empty());
}

// ---- special values ----

TEST(TensorSpecialValues, NaNAndInfSurviveCopiesAndConversions) {
  const Tensor src = from_vector<double>({kNaN, kInf, -kInf, 1.0});
  for (DType dt : {float32, float16, bfloat16, float64}) {
    const std::vector<double> v = src.to(dt).to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0])) << dt;
    EXPECT_EQ(v[1], kInf) << dt;
    EXPECT_EQ(v[2], -kInf) << dt;
    EXPECT_EQ(v[3], 1.0) << dt;
  }
  const std::vector<float> strided = src.view({2, 2}).t().clone().to_vector<float>();
  EXPECT_TRUE(std::isnan(strided[0]));
  EXPECT_EQ(strided[2], std::numeric_limits<float>::infinity());
}

TEST(TensorSpecialValues, OverflowToHalfIsInfButFitsBFloat16) {
  const Tensor big = from_vector<double>({1e6, -1e6, 65504.0, 65520.0});
  const std::vector<float> h = big.to(float16).to_vector<float>();
  EXPECT_EQ(h[0], std::numeric_limits<float>::infinity());
  EXPECT_EQ(h[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(h[2], 65504.f);  // the largest finite float16
  EXPECT_EQ(h[3], std::numeric_limits<float>::infinity());  // halfway past it rounds up
  const std::vector<float> b = big.to(bfloat16).to_vector<float>();
  EXPECT_NEAR(b[0], 1e6f, 1e6f / 128);
  EXPECT_TRUE(std::isfinite(b[0]));
}

}  // namespace
}  // namespace kiln
