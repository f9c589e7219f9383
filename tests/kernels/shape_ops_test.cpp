// The shape and indexing ops on cpu (kernels/shape_ops.h) against references computed
// here in float64: concat, stack, split (views), pad, take / index_select / gather and
// scatter_add with NumPy's negative indices, one_hot, cast; gradient checks in float64
// (repeated indices accumulate); non-contiguous inputs; bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/shape_ops.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using test::kCpu;
using test::Layout;

const GradcheckOptions kTight{.atol = 1e-8, .rtol = 1e-6};

Tensor values(const Shape& shape, DType dt = float64, Layout layout = Layout::contiguous,
              std::uint64_t seed = 1) {
  return test::make_input(test::uniform_values(shape.numel(), -3, 3, seed), shape, dt, kCpu, layout);
}

Tensor ints(const std::vector<std::int64_t>& v, const Shape& shape, DType dt = int64) {
  return from_vector<std::int64_t>(v, shape, {.device = kCpu}).to(dt);
}

// Element (multi-index) access on host copies for the references below.
struct Host {
  std::vector<double> v;
  Shape shape;
  explicit Host(const Tensor& t) : v(test::host_values(t)), shape(t.shape()) {}
  double at(const std::vector<std::int64_t>& index) const {
    std::int64_t flat = 0;
    for (int d = 0; d < shape.ndim(); ++d) flat = flat * shape[d] + index[static_cast<std::size_t>(d)];
    return v[static_cast<std::size_t>(flat)];
  }
};

// ---- concat, stack, split, pad ----

TEST(Concat, JoinsAlongAnyAxisFromAnyLayout) {
  for (DType dt : {float32, float16, int64}) {
    const Tensor a = values({2, 3}, dt, Layout::transposed, 1), b = values({2, 5}, dt, Layout::strided, 2);
    const Tensor c = values({2, 0}, dt), out = concat({a, b, c}, -1);
    ASSERT_EQ(out.shape(), Shape({2, 8}));
    const Host ha(a), hb(b), ho(out);
    for (std::int64_t i = 0; i < 2; ++i) {
      for (std::int64_t j = 0; j < 8; ++j)
        EXPECT_EQ(ho.at({i, j}), j < 3 ? ha.at({i, j}) : hb.at({i, j - 3}));
    }
  }
  const Tensor rows = concat({values({1, 4}), values({3, 4})}, 0);
  EXPECT_EQ(rows.shape(), Shape({4, 4}));
}

TEST(Concat, GradientSplitsBackToEachInput) {
  const Tensor a = values({3, 2}, float64, Layout::transposed, 3).requires_grad_();
  const Tensor b = values({3, 4}, float64, Layout::contiguous, 4).requires_grad_();
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return concat(in, 1); }, {a, b}, kTight);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Concat, MismatchedShapesDtypesAndEmptyListsAreRejected) {
  try {
    concat({values({2, 3}), values({3, 3})}, 1);
    FAIL() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("concat"));
    EXPECT_THAT(e.what(), HasSubstr("(3, 3)"));
    EXPECT_THAT(e.what(), HasSubstr("(2, 3)"));
  }
  EXPECT_THROW(concat({values({2, 3}), values({2, 3}, float32)}, 0), TypeError);
  EXPECT_THROW(concat({}, 0), ValueError);
  EXPECT_THROW(concat({values({2, 3})}, 2), IndexError);
}

TEST(Stack, AddsANewAxisAnywhere) {
  const Tensor a = values({2, 3}, float64, Layout::contiguous, 1),
               b = values({2, 3}, float64, Layout::strided, 2);
  for (std::int64_t axis : {0, 1, 2, -1}) {
    const Tensor s = stack({a, b}, axis);
    const int ax = axis < 0 ? 2 : static_cast<int>(axis);
    Shape expected{2, 3};
    expected.insert(ax, 2);
    ASSERT_EQ(s.shape(), expected);
    EXPECT_TRUE(test::all_close(s.select(ax, 1), b, {0, 0})) << "axis " << axis;
  }
  EXPECT_THROW(stack({a, values({3, 2})}, 0), ShapeError);
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return stack(in, 1); },
                           {a.clone().requires_grad_(), b.clone().requires_grad_()}, kTight);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Split, GivesViewsOfTheRequestedSizes) {
  const Tensor x = values({4, 9});
  const auto pieces = split(x, {2, 0, 7}, 1);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].shape(), Shape({4, 2}));
  EXPECT_EQ(pieces[1].shape(), Shape({4, 0}));
  EXPECT_EQ(pieces[2].shape(), Shape({4, 7}));
  EXPECT_TRUE(pieces[2].shares_storage(x));
  EXPECT_TRUE(test::all_close(pieces[2], x.slice(1, 2), {0, 0}));
  const auto thirds = split(x, 3, -1);
  ASSERT_EQ(thirds.size(), 3u);
  EXPECT_TRUE(test::all_close(thirds[1], x.slice(1, 3, 6), {0, 0}));
  EXPECT_THROW(split(x, {2, 2}, 1), ShapeError);
  EXPECT_THROW(split(x, 2, 1), ValueError);
  EXPECT_THROW(split(x, {10, -1}, 1), ValueError);
}

TEST(Split, GradientReachesEveryPieceAndZeroFillsUnusedOnes) {
  const Tensor x = values({3, 7}, float64, Layout::transposed).requires_grad_();
  const auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        const auto p = split(in[0], {2, 1, 4}, 1);
        return concat({p[2], p[0]}, 1);  // p[1] gets no gradient
      },
      {x}, kTight);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Pad, SurroundsWithTheValueAndPadsLeadingAxesOnly) {
  const Tensor x = values({2, 3}, float32, Layout::transposed);
  const Tensor y = pad(x, {{1, 2}}, -5.0);  // axis 0 only
  ASSERT_EQ(y.shape(), Shape({5, 3}));
  const Host hx(x), hy(y);
  for (std::int64_t i = 0; i < 5; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      EXPECT_EQ(hy.at({i, j}), i >= 1 && i < 3 ? hx.at({i - 1, j}) : -5.0);
    }
  }
  EXPECT_EQ(pad(x, {{0, 0}, {3, 1}}).shape(), Shape({2, 7}));
  EXPECT_EQ(pad(values({0, 2}), {{1, 1}, {0, 0}}).shape(), Shape({2, 2}));
  EXPECT_THROW(pad(x, {{1, 1}, {1, 1}, {1, 1}}), ValueError);
  EXPECT_THROW(pad(x, {{-1, 0}}), ValueError);
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return pad(in[0], {{1, 0}, {2, 3}}, 7.0); },
                           {values({3, 4}).requires_grad_()}, kTight);
  EXPECT_TRUE(r.ok) << r.message;
}

// ---- take, index_select, gather, scatter_add ----

TEST(Take, PicksRowsAlongAxisLikeNumpyTake) {
  for (DType idt : {int32, int64}) {
    for (DType dt : {float32, bfloat16, float64, int32}) {
      const Tensor x = values({3, 4, 2}, dt, Layout::transposed);
      const Tensor idx = ints({3, -1, 0, 3, 1, -4}, {2, 3}, idt);
      const Tensor y = take(x, idx, 1);
      ASSERT_EQ(y.shape(), Shape({3, 2, 3, 2}));
      const Host hx(x), hy(y), hi(idx);
      for (std::int64_t a = 0; a < 3; ++a) {
        for (std::int64_t k = 0; k < 6; ++k) {
          const auto j = static_cast<std::int64_t>(hi.v[static_cast<std::size_t>(k)]);
          for (std::int64_t b = 0; b < 2; ++b) {
            EXPECT_EQ(hy.at({a, k / 3, k % 3, b}), hx.at({a, j < 0 ? j + 4 : j, b}));
          }
        }
      }
    }
  }
  // A 0-d index removes the axis; index_select keeps it.
  const Tensor x = values({5, 2});
  EXPECT_EQ(take(x, ints({2}, {}), 0).shape(), Shape({2}));
  EXPECT_EQ(index_select(x, 0, ints({2, 2, 0}, {3})).shape(), Shape({3, 2}));
  EXPECT_THROW(index_select(x, 0, ints({0, 1}, {1, 2})), ShapeError);
}

TEST(Take, GradientScatterAddsRepeatedIndices) {
  const Tensor x = values({4, 5}, float64, Layout::strided).requires_grad_();
  for (std::int64_t axis : {0, 1}) {
    const auto r = gradcheck(
        [axis](const std::vector<Tensor>& in) {
          return take(in[0], ints({1, 3, 1, -1, 1}, {5}), axis);
        },
        {x}, kTight);
    EXPECT_TRUE(r.ok) << "axis " << axis << ": " << r.message;
  }
}

TEST(Take, OutOfRangeIndexNamesTheIndexAndTheExtent) {
  for (std::int64_t bad : {4, -5}) {
    try {
      take(values({2, 4}), ints({0, bad}, {2}), 1);
      FAIL() << "no error for " << bad;
    } catch (const IndexError& e) {
      EXPECT_THAT(e.what(), HasSubstr("take"));
      EXPECT_THAT(e.what(), HasSubstr("index " + std::to_string(bad)));
      EXPECT_THAT(e.what(), HasSubstr("4"));
    }
  }
  EXPECT_THROW(take(values({2, 4}), values({2}), 0), TypeError);
  EXPECT_THROW(take(values({2, 4}), ints({0}, {1}), 2), IndexError);
}

TEST(ScatterAdd, IsTheInverseOfTakeAndAccumulates) {
  for (DType dt : {float32, float16, bfloat16, int64}) {
    const Tensor src = values({2, 3}, dt, Layout::transposed);
    const Tensor out = scatter_add({5, 3}, ints({4, -1}, {2}), src, 0);
    std::vector<double> expected(15, 0.0);
    const Host hs(src);
    for (std::int64_t j = 0; j < 3; ++j)
      expected[static_cast<std::size_t>(12 + j)] = hs.at({0, j}) + hs.at({1, j});
    EXPECT_EQ(out.dtype(), dt);
    EXPECT_TRUE(test::all_close(out, expected, test::tolerance_for(dt))) << dt;
  }
  EXPECT_THROW(scatter_add({5, 3}, ints({0, 1}, {2}), values({3, 3}), 0), ShapeError);
  EXPECT_THROW(scatter_add({5, 3}, ints({5, 1}, {2}), values({2, 3}), 0), IndexError);
  EXPECT_THROW(scatter_add({5, 3}, ints({0, 1}, {2}), values({2, 3}, bool_), 0), TypeError);
  const auto r = gradcheck(
      [](const std::vector<Tensor>& in) { return scatter_add({3, 4}, ints({2, 2, 0}, {3}), in[0], 1); },
      {values({3, 3}).requires_grad_()}, kTight);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Gather, PicksAlongAxisLikeTakeAlongAxis) {
  const Tensor x = values({3, 4}, float32, Layout::transposed);
  const Tensor idx = ints({3, 0, -1, 1, 1, 2}, {3, 2});
  const Tensor y = gather(x, idx, 1);
  ASSERT_EQ(y.shape(), Shape({3, 2}));
  const Host hx(x), hy(y), hi(idx);
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t j = 0; j < 2; ++j) {
      const auto k = static_cast<std::int64_t>(hi.at({i, j}));
      EXPECT_EQ(hy.at({i, j}), hx.at({i, k < 0 ? k + 4 : k}));
    }
  }
  // Indices may be smaller than x off the axis (torch.gather).
  EXPECT_EQ(gather(x, ints({0, 2}, {2, 1}), 1).shape(), Shape({2, 1}));
  EXPECT_THROW(gather(x, ints({0, 1, 2, 3}, {4, 1}), 1), ShapeError);
  EXPECT_THROW(gather(x, ints({0, 1}, {2}), 1), ShapeError);
  EXPECT_THROW(gather(x, ints({4}, {1, 1}), 1), IndexError);
  const auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return gather(in[0], ints({1, 1, 0, 2, 2, 2}, {2, 3}), 0);
      },
      {values({3, 3}, float64, Layout::transposed).requires_grad_()}, kTight);
  EXPECT_TRUE(r.ok) << r.message;
}

// ---- one_hot, cast ----

TEST(OneHot, MarksEachIndexInItsRow) {
  const Tensor y = one_hot(ints({2, 0, 3}, {3}, int32), 4, float16);
  EXPECT_EQ(y.dtype(), float16);
  EXPECT_TRUE(test::all_close(y, {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1}, {0, 0}));
  EXPECT_EQ(one_hot(ints({1, 0, 1, 1}, {2, 2}), 3).shape(), Shape({2, 2, 3}));
  EXPECT_EQ(one_hot(ints({}, {0}), 3).shape(), Shape({0, 3}));
  try {
    one_hot(ints({1, 4}, {2}), 4);
    FAIL() << "no error";
  } catch (const IndexError& e) {
    EXPECT_THAT(e.what(), HasSubstr("one_hot"));
    EXPECT_THAT(e.what(), HasSubstr("index 4"));
  }
  EXPECT_THROW(one_hot(ints({-1}, {1}), 4), IndexError);
  EXPECT_THROW(one_hot(values({2}), 4), TypeError);
  EXPECT_THROW(one_hot(ints({0}, {1}), -1), ValueError);
}

TEST(Cast, ConvertsAndPassesTheGradientBack) {
  const Tensor x = values({2, 3}).requires_grad_();
  const Tensor y = cast(x, float32);
  EXPECT_EQ(y.dtype(), float32);
  EXPECT_TRUE(test::all_close(y, x, test::tolerance_for(float32)));
  backward(y, ones({2, 3}, {.device = kCpu}));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), float64);
  EXPECT_TRUE(test::all_close(x.grad(), std::vector<double>(6, 1.0), {0, 0}));
}

}  // namespace
}  // namespace kiln
