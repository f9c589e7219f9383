// Shape (core/shape.h): construction and its 8-dim limit, numel, axes, printing,
// contiguous strides, NumPy broadcasting and validate_shape's overflow checks.
#include "kiln/core/shape.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <vector>

namespace kiln {
namespace {

using ::testing::HasSubstr;

constexpr std::int64_t kBig = std::int64_t{1} << 32;

TEST(Shape, ConstructsFromListAndSpan) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.ndim(), 3);
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s[0], 2);
  EXPECT_EQ(s[2], 4);
  const std::vector<std::int64_t> dims{2, 3, 4};
  EXPECT_EQ(Shape(std::span<const std::int64_t>(dims)), s);
  EXPECT_EQ(std::vector<std::int64_t>(s.begin(), s.end()), dims);
  EXPECT_TRUE(Shape{}.empty());
  EXPECT_EQ(Shape{}.ndim(), 0);
  EXPECT_FALSE(Shape({2, 3}) == Shape({3, 2}));
  EXPECT_FALSE(Shape({2}) == Shape({2, 1}));
}

TEST(Shape, MoreThanEightDimsRaiseValueError) {
  EXPECT_NO_THROW(Shape({1, 1, 1, 1, 1, 1, 1, 1}));
  try {
    Shape({1, 1, 1, 1, 1, 1, 1, 1, 1});
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("at most 8 dimensions"));
    EXPECT_THAT(e.message(), HasSubstr("got 9"));
  }
  Shape full{1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_THROW(full.push_back(9), ValueError);
  EXPECT_THROW(full.insert(0, 9), ValueError);
  EXPECT_EQ(full.ndim(), 8);  // a refused edit leaves the shape as it was
}

TEST(Shape, PushBackInsertErase) {
  Shape s;
  s.push_back(3);
  s.push_back(5);
  s.insert(0, 2);
  s.insert(3, 7);
  EXPECT_EQ(s, Shape({2, 3, 5, 7}));
  s.erase(1);
  EXPECT_EQ(s, Shape({2, 5, 7}));
  s.erase(2);
  EXPECT_EQ(s, Shape({2, 5}));
  EXPECT_THROW(s.erase(2), InternalError);
  EXPECT_THROW(s.insert(4, 1), InternalError);
}

TEST(Shape, Numel) {
  EXPECT_EQ(Shape({2, 3, 4}).numel(), 24);
  EXPECT_EQ(Shape{}.numel(), 1);  // a scalar holds one element
  EXPECT_EQ(Shape({5, 0, 3}).numel(), 0);
  EXPECT_EQ(Shape({kBig, 4}).numel(), kBig * 4);
}

TEST(Shape, NormalizeAxisAcceptsNegativeAxes) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.normalize_axis(0, "sum"), 0);
  EXPECT_EQ(s.normalize_axis(2, "sum"), 2);
  EXPECT_EQ(s.normalize_axis(-1, "sum"), 2);
  EXPECT_EQ(s.normalize_axis(-3, "sum"), 0);
}

TEST(Shape, NormalizeAxisOutOfRangeRaisesIndexErrorNamingAxisAndShape) {
  const Shape s{2, 3};
  for (std::int64_t axis : {2, -3, 100}) {
    try {
      s.normalize_axis(axis, "softmax");
      FAIL() << "expected IndexError for axis " << axis;
    } catch (const IndexError& e) {
      EXPECT_THAT(e.message(), HasSubstr("softmax"));
      EXPECT_THAT(e.message(), HasSubstr("axis " + std::to_string(axis)));
      EXPECT_THAT(e.message(), HasSubstr("(2, 3)"));
    }
  }
  EXPECT_THROW(Shape{}.normalize_axis(0, "sum"), IndexError);  // a scalar has no axes
}

TEST(Shape, StrPrintsTuples) {
  EXPECT_EQ(Shape({2, 3}).str(), "(2, 3)");
  EXPECT_EQ(Shape({5}).str(), "(5,)");
  EXPECT_EQ(Shape{}.str(), "()");
  EXPECT_EQ(Shape({1, 0, kBig}).str(), "(1, 0, 4294967296)");
  std::ostringstream os;
  os << Shape{4, 1};
  EXPECT_EQ(os.str(), "(4, 1)");
}

TEST(Shape, ContiguousStridesAreRowMajor) {
  EXPECT_EQ(contiguous_strides(Shape{2, 3, 4}), Shape({12, 4, 1}));
  EXPECT_EQ(contiguous_strides(Shape{7}), Shape({1}));
  EXPECT_EQ(contiguous_strides(Shape{}), Shape{});
  EXPECT_EQ(contiguous_strides(Shape{3, 1, 2}), Shape({2, 2, 1}));
  // A zero extent counts as 1, so strides stay usable (and unique) in empty tensors.
  EXPECT_EQ(contiguous_strides(Shape{2, 0, 3}), Shape({3, 3, 1}));
}

TEST(Shape, BroadcastFollowsNumPy) {
  EXPECT_EQ(broadcast_shapes(Shape{3, 1}, Shape{1, 4}), Shape({3, 4}));
  EXPECT_EQ(broadcast_shapes(Shape{2, 3}, Shape{3}), Shape({2, 3}));
  EXPECT_EQ(broadcast_shapes(Shape{3}, Shape{2, 1, 1}), Shape({2, 1, 3}));
  EXPECT_EQ(broadcast_shapes(Shape{}, Shape{2, 3}), Shape({2, 3}));
  EXPECT_EQ(broadcast_shapes(Shape{}, Shape{}), Shape{});
  EXPECT_EQ(broadcast_shapes(Shape{0}, Shape{1}), Shape({0}));
  EXPECT_EQ(broadcast_shapes(Shape{5, 0}, Shape{1, 0}), Shape({5, 0}));
}

TEST(Shape, BroadcastFailureNamesOpAndBothShapes) {
  try {
    broadcast_shapes(Shape{2, 3}, Shape{4, 3}, "add");
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.message(), HasSubstr("add"));
    EXPECT_THAT(e.message(), HasSubstr("(2, 3)"));
    EXPECT_THAT(e.message(), HasSubstr("(4, 3)"));
  }
  EXPECT_THROW(broadcast_shapes(Shape{0}, Shape{2}), ShapeError);
  EXPECT_THROW(broadcast_shapes(Shape{3}, Shape{2, 4}), ValueError);  // ShapeError is one
}

TEST(Shape, ValidateRejectsNegativeExtents) {
  try {
    validate_shape(Shape{2, -1, 3}, 4, "zeros");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("zeros"));
    EXPECT_THAT(e.message(), HasSubstr("-1"));
    EXPECT_THAT(e.message(), HasSubstr("axis 1"));
  }
  EXPECT_THROW(validate_shape(Shape{0, -1}, 4, "zeros"), ValueError);  // even when empty
}

TEST(Shape, ValidateRejectsElementCountOverflow) {
  // 2^32 * 2^32 elements overflow int64 even at one byte each.
  try {
    validate_shape(Shape{kBig, kBig}, 1, "empty");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("empty"));
    EXPECT_THAT(e.message(), HasSubstr("(4294967296, 4294967296)"));
  }
}

TEST(Shape, ValidateRejectsByteSizeOverflow) {
  const std::int64_t n = std::int64_t{1} << 61;  // fits as elements, not as 8-byte bytes
  EXPECT_NO_THROW(validate_shape(Shape{n}, 1, "empty"));
  EXPECT_NO_THROW(validate_shape(Shape{n}, 2, "empty"));
  EXPECT_THROW(validate_shape(Shape{n}, 4, "empty"), ValueError);
  EXPECT_THROW(validate_shape(Shape{n}, 8, "empty"), ValueError);
  EXPECT_THROW(validate_shape(Shape{2, n / 2}, 8, "empty"), ValueError);
}

TEST(Shape, ValidateAcceptsZeroExtentsAndScalars) {
  EXPECT_NO_THROW(validate_shape(Shape{}, 8, "full"));
  EXPECT_NO_THROW(validate_shape(Shape{0}, 8, "full"));
  // Zero elements whatever the other extents: no overflow.
  EXPECT_NO_THROW(validate_shape(Shape{kBig, kBig, 0}, 8, "full"));
  EXPECT_NO_THROW(validate_shape(Shape{1024, 1024, 1024}, 8, "full"));
}

}  // namespace
}  // namespace kiln
