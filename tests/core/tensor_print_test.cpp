// Tensor printing (core/tensor_print.cpp): exact strings in the PyTorch style for each
// dtype and float format, scalars, empty and summarised tensors, nested line layout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "kiln/core/tensor.h"

namespace kiln {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The printed form of t's values on the cpu, so the expected strings say device=cpu even
// where default_device() is a GPU (cuda tensors are printed in cuda_tensor_test.cpp).
std::string text(const Tensor& t) { return t.to(Device::cpu()).str(); }

TEST(TensorPrint, IntegralFloatsPrintWithATrailingDot) {
  EXPECT_EQ(text(from_vector<float>({1, 2, 3})), "tensor([1., 2., 3.], dtype=float32, device=cpu)");
  EXPECT_EQ(text(from_vector<float>({-1, 20, 300})),
            "tensor([ -1.,  20., 300.], dtype=float32, device=cpu)");
  EXPECT_EQ(text(from_vector<float>({-0.f, 0.f})), "tensor([-0.,  0.], dtype=float32, device=cpu)");
}

TEST(TensorPrint, FractionalFloatsUseFourDecimalsRightAligned) {
  EXPECT_EQ(text(from_vector<float>({1.5f, -2.f, 0.25f, 3.f}, {2, 2})),
            "tensor([[ 1.5000, -2.0000],\n"
            "        [ 0.2500,  3.0000]], dtype=float32, device=cpu)");
  EXPECT_EQ(text(from_vector<double>({0.1, 12.5})),
            "tensor([ 0.1000, 12.5000], dtype=float64, device=cpu)");
}

TEST(TensorPrint, TinyOrHugeMagnitudesSwitchToScientific) {
  EXPECT_EQ(text(from_vector<float>({1e-9f, 1.f})),
            "tensor([1.0000e-09, 1.0000e+00], dtype=float32, device=cpu)");
  EXPECT_EQ(text(from_vector<double>({1e9, 1.5})),
            "tensor([1.0000e+09, 1.5000e+00], dtype=float64, device=cpu)");
  EXPECT_EQ(text(from_vector<double>({-1e9, 2.0})),
            "tensor([-1.0000e+09,  2.0000e+00], dtype=float64, device=cpu)");
}

TEST(TensorPrint, SixteenBitFloatsShowTheirRoundedValue) {
  EXPECT_EQ(text(from_vector<float>({0.1f, 0.25f}, {.dtype = bfloat16})),
            "tensor([0.1001, 0.2500], dtype=bfloat16, device=cpu)");
  EXPECT_EQ(text(from_vector<float>({1.f, 2.f}, {.dtype = float16})),
            "tensor([1., 2.], dtype=float16, device=cpu)");
}

TEST(TensorPrint, NonFiniteValuesAreNanAndInf) {
  EXPECT_EQ(text(from_vector<float>({kNaN, kInf, -kInf, 1.5f})),
            "tensor([   nan,    inf,   -inf, 1.5000], dtype=float32, device=cpu)");
  // Non-finite values do not stop the others from printing as integers.
  EXPECT_EQ(text(from_vector<float>({kNaN, 1.f, -2.f})),
            "tensor([nan,  1., -2.], dtype=float32, device=cpu)");
}

TEST(TensorPrint, IntegersAndBooleans) {
  EXPECT_EQ(text(from_vector<std::int32_t>({1, -20, 300})),
            "tensor([  1, -20, 300], dtype=int32, device=cpu)");
  EXPECT_EQ(text(from_vector<std::uint8_t>({0, 255})), "tensor([  0, 255], dtype=uint8, device=cpu)");
  EXPECT_EQ(text(from_vector<bool>({true, false, true})),
            "tensor([ True, False,  True], dtype=bool, device=cpu)");
}

// int64 values past 2^53 must print exactly (they do not survive a trip through double).
TEST(TensorPrint, Int64PrintsEveryDigit) {
  const std::int64_t big = (std::int64_t{1} << 53) + 1;
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(text(from_vector<std::int64_t>({big, -7})),
            "tensor([9007199254740993, " + std::string(14, ' ') + "-7], dtype=int64, device=cpu)");
  EXPECT_THAT(text(from_vector<std::int64_t>({max})), HasSubstr("9223372036854775807"));
}

TEST(TensorPrint, ScalarsHaveNoBrackets) {
  EXPECT_EQ(text(full({}, 2.5)), "tensor(2.5000, dtype=float32, device=cpu)");
  EXPECT_EQ(text(full({}, 3, {.dtype = int32})), "tensor(3, dtype=int32, device=cpu)");
  EXPECT_EQ(text(full({}, 1, {.dtype = bool_})), "tensor(True, dtype=bool, device=cpu)");
  EXPECT_EQ(text(full({}, 1e-9, {.dtype = float64})), "tensor(1.0000e-09, dtype=float64, device=cpu)");
}

TEST(TensorPrint, EmptyTensorsShowTheirShape) {
  EXPECT_EQ(text(zeros({0})), "tensor([], shape=(0,), dtype=float32, device=cpu)");
  EXPECT_EQ(text(zeros({2, 0, 3}, {.dtype = int64})),
            "tensor([], shape=(2, 0, 3), dtype=int64, device=cpu)");
}

TEST(TensorPrint, NestedAxesIndentAndSeparateWithBlankLines) {
  EXPECT_EQ(text(from_vector<float>({1, 2, 3, 4}, {4, 1})),
            "tensor([[1.],\n"
            "        [2.],\n"
            "        [3.],\n"
            "        [4.]], dtype=float32, device=cpu)");
  EXPECT_EQ(text(arange(8).view({2, 2, 2})),
            "tensor([[[0., 1.],\n"
            "         [2., 3.]],\n"
            "\n"
            "        [[4., 5.],\n"
            "         [6., 7.]]], dtype=float32, device=cpu)");
  // 4-D: two blank lines between the outermost blocks.
  EXPECT_EQ(text(arange(4, {.dtype = int32}).view({2, 1, 2, 1})),
            "tensor([[[[0],\n"
            "          [1]]],\n"
            "\n"
            "\n"
            "        [[[2],\n"
            "          [3]]]], dtype=int32, device=cpu)");
}

TEST(TensorPrint, ViewsPrintTheirOwnElements) {
  EXPECT_EQ(text(arange(6, {.dtype = int32}).view({2, 3}).t()),
            "tensor([[0, 3],\n"
            "        [1, 4],\n"
            "        [2, 5]], dtype=int32, device=cpu)");
}

TEST(TensorPrint, LargeTensorsAreSummarised) {
  EXPECT_EQ(text(arange(1001)),
            "tensor([   0.,    1.,    2., ...,  998.,  999., 1000.], shape=(1001,), "
            "dtype=float32, device=cpu)");
  // Exactly 1000 elements still print in full.
  const std::string full_print = text(arange(1000, {.dtype = int32}));
  EXPECT_THAT(full_print, Not(HasSubstr("...")));
  EXPECT_THAT(full_print, Not(HasSubstr("shape=")));
  EXPECT_THAT(full_print, HasSubstr(" 500, 501,"));
}

TEST(TensorPrint, SummarisedMatricesElideRowsAndColumns) {
  const std::string s = text(arange(2000, {.dtype = int32}).view({40, 50}));
  EXPECT_THAT(s, StartsWith("tensor([[   0,    1,    2, ...,   47,   48,   49],\n"
                            "        [  50,   51,   52, ...,   97,   98,   99],\n"));
  EXPECT_THAT(s, HasSubstr("  149],\n        ...,\n        [1850, "));
  EXPECT_THAT(s, EndsWith(" 1999]], shape=(40, 50), dtype=int32, device=cpu)"));
  EXPECT_THAT(s, Not(HasSubstr("1000")));  // the middle rows are hidden
  // A summarised 3-D tensor separates its elided blocks with blank lines.
  const std::string t = text(arange(1001 * 3).view({3003, 1}).view({7, 429, 1}));
  EXPECT_THAT(t, HasSubstr("]],\n\n        ...,\n\n        [["));
}

TEST(TensorPrint, StreamOperatorMatchesStr) {
  const Tensor t = from_vector<float>({0.5f, 1.f});
  std::ostringstream os;
  os << t;
  EXPECT_EQ(os.str(), t.str());
}

}  // namespace
}  // namespace kiln
