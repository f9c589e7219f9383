// Tensor views on cpu (core/tensor_views.cpp): view/reshape, permute/transpose/t, slice,
// select, expand, squeeze/unsqueeze; storage sharing, chains of views checked against an
// index-computed reference, and the 8-dimension limit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 0, 1, 2, ... as float32 in `shape`, so every element names its own row-major index.
Tensor iota(const Shape& shape) { return arange(static_cast<double>(shape.numel())).view(shape); }

// Runs `f` and returns the message of the `Kind` it raised (fails the test if none).
template <class Kind, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const Kind& e) {
    return e.message();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

// ---- view / reshape ----

TEST(TensorView, InfersOneMinusOne) {
  const Tensor t = iota({2, 3, 4});
  EXPECT_EQ(t.view({-1}).shape(), Shape({24}));
  EXPECT_EQ(t.view({4, -1}).shape(), Shape({4, 6}));
  EXPECT_EQ(t.view({-1, 2, 3}).shape(), Shape({4, 2, 3}));
  EXPECT_EQ(t.reshape({3, -1, 2}).shape(), Shape({3, 4, 2}));
  EXPECT_EQ(t.flatten().shape(), Shape({24}));
  EXPECT_EQ(zeros({0, 3}).view({-1, 3}).shape(), Shape({0, 3}));
  EXPECT_EQ(full({}, 1.0).view({1, 1}).shape(), Shape({1, 1}));
  EXPECT_EQ(zeros({1}).view({}).shape(), Shape({}));
}

TEST(TensorView, TwoMinusOnesRaise) {
  const std::string msg = message_of<ShapeError>([] { iota({2, 3}).view({-1, -1}); });
  EXPECT_THAT(msg, HasSubstr("only one dimension can be -1"));
  EXPECT_THROW(iota({2, 3}).reshape({-1, 3, -1}), ShapeError);
}

TEST(TensorView, NumelMismatchNamesBothShapes) {
  const std::string msg = message_of<ShapeError>([] { iota({2, 3}).view({4, 2}); });
  EXPECT_THAT(msg, HasSubstr("view"));
  EXPECT_THAT(msg, HasSubstr("(4, 2)"));
  EXPECT_THAT(msg, HasSubstr("(2, 3)"));
  EXPECT_THAT(msg, HasSubstr("6 elements"));
  EXPECT_THROW(iota({2, 3}).reshape({4, -1}), ShapeError);  // 6 is not a multiple of 4
  EXPECT_THROW(iota({2, 3}).view({-2, 3}), ShapeError);
}

TEST(TensorView, OfATransposeRaisesAndSuggestsReshape) {
  const Tensor t = iota({2, 3}).t();
  const std::string msg = message_of<ShapeError>([&] { t.view({6}); });
  EXPECT_THAT(msg, HasSubstr("reshape"));
  EXPECT_THAT(msg, HasSubstr("(3, 2)"));
}

TEST(TensorView, ReshapeCopiesOnlyWhenItMust) {
  const Tensor a = iota({2, 3});
  const Tensor same = a.reshape({3, 2});
  EXPECT_TRUE(same.shares_storage(a));
  EXPECT_THAT(same.to_vector<float>(), ElementsAre(0, 1, 2, 3, 4, 5));
  const Tensor copied = a.t().reshape({6});
  EXPECT_FALSE(copied.shares_storage(a));
  EXPECT_THAT(copied.to_vector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
  // Splitting or merging axes that stay contiguous among themselves needs no copy,
  // even inside a non-contiguous tensor: (4, 6)[:, ::2] is (4, 3) with strides (6, 2).
  const Tensor strided = iota({4, 6}).slice(1, 0, 6, 2);
  const Tensor split = strided.reshape({2, 2, 3});
  EXPECT_TRUE(split.shares_storage(strided));
  EXPECT_EQ(split.strides(), Strides({12, 6, 2}));
  EXPECT_EQ(split.to_vector<float>(), strided.to_vector<float>());
}

TEST(TensorView, ViewKeepsTheOffsetOfASlice) {
  const Tensor row = iota({3, 4})[1];
  EXPECT_THAT(row.view({2, 2}).to_vector<float>(), ElementsAre(4, 5, 6, 7));
}

// ---- permute / transpose / t ----

TEST(TensorPermute, ReordersShapeAndStrides) {
  const Tensor t = iota({2, 3, 4});
  const Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(p.strides(), Strides({1, 12, 4}));
  EXPECT_TRUE(p.shares_storage(t));
  EXPECT_EQ(p.at<float>({3, 1, 2}), 1 * 12 + 2 * 4 + 3);
  EXPECT_EQ(t.permute({-1, -3, -2}).shape(), Shape({4, 2, 3}));
}

TEST(TensorPermute, RepeatedOrMissingAxesRaise) {
  const std::string msg = message_of<ValueError>([] { iota({2, 3, 4}).permute({0, 0, 1}); });
  EXPECT_THAT(msg, HasSubstr("repeats"));
  EXPECT_THROW(iota({2, 3, 4}).permute({0, 1}), ShapeError);
  EXPECT_THROW(iota({2, 3, 4}).permute({0, 1, 3}), IndexError);
  EXPECT_THROW(iota({2, 3, 4}).permute({0, -3, 1}), ValueError);  // -3 is axis 0
}

TEST(TensorTranspose, SwapsTwoAxes) {
  const Tensor t = iota({2, 3, 4});
  const Tensor tr = t.transpose(0, -1);
  EXPECT_EQ(tr.shape(), Shape({4, 3, 2}));
  EXPECT_EQ(tr.strides(), Strides({1, 4, 12}));
  EXPECT_EQ(tr.at<float>({1, 2, 1}), 12 + 8 + 1);
  EXPECT_TRUE(t.transpose(1, 1).is_contiguous());
  EXPECT_THROW(t.transpose(0, 3), IndexError);
}

TEST(TensorTranspose, TOnlyAcceptsTwoDimensions) {
  EXPECT_EQ(iota({2, 3}).t().shape(), Shape({3, 2}));
  const std::string msg = message_of<ShapeError>([] { iota({2, 3, 4}).t(); });
  EXPECT_THAT(msg, HasSubstr("(2, 3, 4)"));
  EXPECT_THROW(iota({5}).t(), ShapeError);
  EXPECT_THROW(full({}, 1.0).t(), ShapeError);
}

// ---- slice / select ----

TEST(TensorSlice, StepsAndNegativeBounds) {
  const Tensor t = iota({10});
  EXPECT_THAT(t.slice(0, 2, 8, 3).to_vector<float>(), ElementsAre(2, 5));
  EXPECT_THAT(t.slice(0, 1, 10, 4).to_vector<float>(), ElementsAre(1, 5, 9));
  EXPECT_THAT(t.slice(0, -3).to_vector<float>(), ElementsAre(7, 8, 9));
  EXPECT_THAT(t.slice(0, -4, -1).to_vector<float>(), ElementsAre(6, 7, 8));
  EXPECT_THAT(t.slice(0, -100, 2).to_vector<float>(), ElementsAre(0, 1));  // clamps like Python
  EXPECT_THAT(t.slice(0, 8, 100).to_vector<float>(), ElementsAre(8, 9));
  const Tensor s = t.slice(0, 1, 10, 4);
  EXPECT_EQ(s.offset(), 1);
  EXPECT_EQ(s.stride(0), 4);
}

TEST(TensorSlice, EmptySlices) {
  const Tensor t = iota({4, 5});
  EXPECT_EQ(t.slice(1, 3, 3).shape(), Shape({4, 0}));
  EXPECT_EQ(t.slice(1, 4, 2).shape(), Shape({4, 0}));   // stop before start
  EXPECT_EQ(t.slice(0, 10, 20).shape(), Shape({0, 5}));  // past the end
  EXPECT_EQ(t.slice(0, -1, -2).numel(), 0);
  EXPECT_TRUE(t.slice(1, 5).to_vector<float>().empty());
}

TEST(TensorSlice, NonPositiveStepRaises) {
  const std::string msg = message_of<ValueError>([] { iota({4}).slice(0, 0, 4, 0); });
  EXPECT_THAT(msg, HasSubstr("step"));
  EXPECT_THROW(iota({4}).slice(0, 3, 0, -1), ValueError);
  EXPECT_THROW(iota({4}).slice(1, 0, 2), IndexError);
}

TEST(TensorSelect, RemovesTheAxis) {
  const Tensor t = iota({3, 4});
  EXPECT_THAT(t.select(1, 2).to_vector<float>(), ElementsAre(2, 6, 10));
  EXPECT_THAT(t.select(0, -1).to_vector<float>(), ElementsAre(8, 9, 10, 11));
  EXPECT_THAT(t[1].to_vector<float>(), ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(t[2][3].shape(), Shape({}));
  EXPECT_EQ(t[2][3].item<float>(), 11.f);
  const std::string msg = message_of<IndexError>([&] { t.select(1, 4); });
  EXPECT_THAT(msg, HasSubstr("index 4"));
  EXPECT_THAT(msg, HasSubstr("(3, 4)"));
  EXPECT_THROW(t[-4], IndexError);
}

// ---- expand ----

TEST(TensorExpand, BroadcastAxesHaveStrideZero) {
  const Tensor col = iota({3, 1});
  const Tensor e = col.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), Shape({2, 3, 4}));
  EXPECT_EQ(e.strides(), Strides({0, 1, 0}));
  EXPECT_TRUE(e.shares_storage(col));
  EXPECT_EQ(e.at<float>({1, 2, 3}), 2.f);
  EXPECT_THAT(iota({2}).expand({2, 2}).to_vector<float>(), ElementsAre(0, 1, 0, 1));
}

TEST(TensorExpand, MinusOneKeepsTheExtent) {
  EXPECT_EQ(iota({3, 1}).expand({-1, 5}).shape(), Shape({3, 5}));
  EXPECT_EQ(iota({3, 1}).expand({2, -1, -1}).shape(), Shape({2, 3, 1}));
  EXPECT_THROW(iota({3, 1}).expand({-1, 3, 1}), ShapeError);  // -1 on a new leading axis
}

TEST(TensorExpand, IncompatibleShapesRaise) {
  const std::string msg = message_of<ShapeError>([] { iota({3, 2}).expand({3, 4}); });
  EXPECT_THAT(msg, HasSubstr("(3, 2)"));
  EXPECT_THAT(msg, HasSubstr("(3, 4)"));
  EXPECT_THROW(iota({2, 3}).expand({3}), ShapeError);  // fewer dims
  EXPECT_THROW(iota({1}).expand({-2}), ShapeError);
}

// ---- squeeze / unsqueeze ----

TEST(TensorSqueeze, RemovesUnitAxes) {
  const Tensor t = iota({1, 3, 1, 2});
  EXPECT_EQ(t.squeeze().shape(), Shape({3, 2}));
  EXPECT_EQ(t.squeeze(0).shape(), Shape({3, 1, 2}));
  EXPECT_EQ(t.squeeze(-2).shape(), Shape({1, 3, 2}));
  EXPECT_EQ(full({1, 1}, 5.0).squeeze().shape(), Shape({}));
  EXPECT_THAT(t.squeeze().to_vector<float>(), ElementsAre(0, 1, 2, 3, 4, 5));
  const std::string msg = message_of<ShapeError>([&] { t.squeeze(1); });
  EXPECT_THAT(msg, HasSubstr("size 3"));
  EXPECT_THROW(t.squeeze(4), IndexError);
}

TEST(TensorUnsqueeze, InsertsAUnitAxisAtEveryValidPosition) {
  const Tensor t = iota({2, 3});
  EXPECT_EQ(t.unsqueeze(0).shape(), Shape({1, 2, 3}));
  EXPECT_EQ(t.unsqueeze(1).shape(), Shape({2, 1, 3}));
  EXPECT_EQ(t.unsqueeze(2).shape(), Shape({2, 3, 1}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), Shape({2, 3, 1}));
  EXPECT_EQ(t.unsqueeze(-3).shape(), Shape({1, 2, 3}));
  EXPECT_TRUE(t.unsqueeze(1).is_contiguous());
  EXPECT_EQ(full({}, 1.0).unsqueeze(0).shape(), Shape({1}));
  EXPECT_THROW(t.unsqueeze(3), IndexError);
  EXPECT_THROW(t.unsqueeze(-4), IndexError);
}

// ---- storage sharing and chains ----

TEST(TensorViews, WritingThroughAViewChangesTheBase) {
  Tensor base = zeros({3, 4});
  base.t()[2].fill_(5.0);               // column 2
  base[0].slice(0, 0, 4, 3).fill_(1.0);  // (0, 0) and (0, 3)
  base.view({12}).slice(0, 11).fill_(9.0);
  base.unsqueeze(0).expand({2, 3, 4})[1][1].slice(0, 1, 2).fill_(-2.0);
  EXPECT_THAT(base.to_vector<float>(), ElementsAre(1, 0, 5, 1, 0, -2, 5, 0, 0, 0, 5, 9));
}

TEST(TensorViews, ChainThenContiguousMatchesIndexReference) {
  // (2, 3, 4, 5) -> permute (3, 1, 0, 2) -> slice axis 0 [1:5:2] -> select axis 2 index -1
  // -> transpose(0, 2): element [a, b, k] comes from base[1, b, a, 1 + 2k].
  const Tensor base = iota({2, 3, 4, 5});
  const Tensor v = base.permute({3, 1, 0, 2}).slice(0, 1, 5, 2).select(2, -1).transpose(0, 2);
  ASSERT_EQ(v.shape(), Shape({4, 3, 2}));
  const Tensor c = v.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  const std::vector<float> got = c.to_vector<float>();
  for (int a = 0; a < 4; ++a) {
    for (int b = 0; b < 3; ++b) {
      for (int k = 0; k < 2; ++k) {
        const float expected = 1 * 60 + b * 20 + a * 5 + (1 + 2 * k);
        EXPECT_EQ(got[(a * 3 + b) * 2 + k], expected) << "[" << a << ", " << b << ", " << k << "]";
      }
    }
  }
  EXPECT_EQ(v.reshape({-1}).to_vector<float>(), got);
}

TEST(TensorViews, EightDimensionsWorkAndNineRaise) {
  const Shape s8{2, 1, 2, 1, 2, 1, 2, 3};
  const Tensor t = iota(s8);
  const Tensor p = t.permute({7, 6, 5, 4, 3, 2, 1, 0});
  EXPECT_EQ(p.shape(), Shape({3, 2, 1, 2, 1, 2, 1, 2}));
  // Full reversal: element [i7, ..., i0] of p is element [i0, ..., i7] of t.
  EXPECT_EQ(p.at<float>({2, 1, 0, 1, 0, 1, 0, 1}), t.at<float>({1, 0, 1, 0, 1, 0, 1, 2}));
  const std::vector<float> c = p.contiguous().to_vector<float>();
  EXPECT_EQ(c[1], 24.f);  // p[0, ..., 0, 1] is t[1, 0, ..., 0], at t's axis-0 stride
  EXPECT_EQ(c[2], 12.f);  // p[0, ..., 0, 1, 0, 0] is t[0, 0, 1, 0, ..., 0]
  EXPECT_EQ(t.squeeze().shape(), Shape({2, 2, 2, 2, 3}));
  EXPECT_EQ(t.expand({2, 4, 2, 5, 2, 1, 2, 3}).numel(), 2 * 4 * 2 * 5 * 2 * 2 * 3);
  EXPECT_THROW(t.unsqueeze(0), ValueError);
  EXPECT_THROW(t.reshape({1, 2, 1, 2, 1, 2, 1, 2, 3}), ValueError);
  EXPECT_THROW(zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}), ValueError);
}

}  // namespace
}  // namespace kiln
