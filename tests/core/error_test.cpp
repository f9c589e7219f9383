// Errors (core/error.h): the kind hierarchy, message() versus what() with its location,
// KILN_CHECK / KILN_THROW formatting, and KILN_ASSERT / KILN_DASSERT as bug reports.
#include "kiln/core/error.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/shape.h"

namespace kiln {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The hierarchy error.h documents: a catch of the base catches the refinements.
static_assert(std::is_base_of_v<std::runtime_error, Error>);
static_assert(std::is_base_of_v<Error, ValueError>);
static_assert(std::is_base_of_v<ValueError, ShapeError>);
static_assert(std::is_base_of_v<ValueError, IndexError>);
static_assert(std::is_base_of_v<Error, TypeError>);
static_assert(std::is_base_of_v<Error, DeviceError>);
static_assert(std::is_base_of_v<DeviceError, CudaError>);
static_assert(std::is_base_of_v<Error, OutOfMemoryError>);
static_assert(std::is_base_of_v<Error, IOError>);
static_assert(std::is_base_of_v<Error, FormatError>);
static_assert(std::is_base_of_v<Error, InternalError>);
// Kinds that are not refinements of each other stay apart.
static_assert(!std::is_base_of_v<ValueError, TypeError>);
static_assert(!std::is_base_of_v<ValueError, DeviceError>);
static_assert(!std::is_base_of_v<DeviceError, OutOfMemoryError>);
static_assert(!std::is_base_of_v<ShapeError, IndexError>);

TEST(Error, KindsAreCaughtThroughTheirBases) {
  EXPECT_THROW(KILN_THROW(ShapeError, "s"), ValueError);
  EXPECT_THROW(KILN_THROW(IndexError, "i"), ValueError);
  EXPECT_THROW(KILN_THROW(CudaError, "c"), DeviceError);
  EXPECT_THROW(KILN_THROW(OutOfMemoryError, "o"), Error);
  EXPECT_THROW(KILN_THROW(FormatError, "f"), std::runtime_error);
  try {
    KILN_THROW(TypeError, "t");
  } catch (const ValueError&) {
    FAIL() << "TypeError must not be caught as ValueError";
  } catch (const TypeError&) {
  }
}

TEST(Error, MessageHasNoLocationAndWhatHasIt) {
  const int line = __LINE__ + 2;
  try {
    KILN_THROW(ValueError, "reshape: cannot view ", 6, " elements");
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "reshape: cannot view 6 elements");
    const std::string what = e.what();
    EXPECT_THAT(what, StartsWith(e.message() + "\n  (raised at "));
    EXPECT_THAT(what, EndsWith("error_test.cpp:" + std::to_string(line) + ")"));
    // The path starts at the source tree, not at the build machine's root.
    EXPECT_NE(what.at(e.message().size() + std::string("\n  (raised at ").size()), '/');
    return;
  }
  FAIL() << "nothing thrown";
}

TEST(Error, WhatNamesTheCoreFileThatRaised) {
  try {
    Shape{2, 3}.normalize_axis(5, "sum");
    FAIL() << "expected IndexError";
  } catch (const IndexError& e) {
    EXPECT_THAT(e.what(), HasSubstr("(raised at core/shape.cpp:"));
    EXPECT_THAT(e.message(), ::testing::Not(HasSubstr("raised at")));
  }
}

TEST(Error, CheckFormatsNumbersShapesDevicesAndDTypes) {
  try {
    KILN_CHECK(1 + 1 == 3, ShapeError, "matmul: ", Shape{2, 3}, " @ ", Shape{4}, " on ",
               Device::cuda(1), " in ", float16, ", scale ", 0.5, ", delta ", -7, ", ",
               std::int64_t{1} << 40);
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_EQ(e.message(),
              "matmul: (2, 3) @ (4,) on cuda:1 in float16, scale 0.5, delta -7, 1099511627776");
  }
}

TEST(Error, CheckEvaluatesMessagePartsOnlyOnFailure) {
  int formatted = 0;
  auto part = [&] {
    ++formatted;
    return "part";
  };
  KILN_CHECK(true, ValueError, part());
  EXPECT_EQ(formatted, 0);
  EXPECT_THROW(KILN_CHECK(false, ValueError, part()), ValueError);
  EXPECT_EQ(formatted, 1);
}

TEST(Error, AssertRaisesInternalErrorSayingItIsABug) {
  const int answer = 41;
  try {
    KILN_ASSERT(answer == 42, "answer was ", answer);
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_THAT(e.message(), HasSubstr("a bug in kiln"));
    EXPECT_THAT(e.message(), HasSubstr("'answer == 42'"));
    EXPECT_THAT(e.message(), EndsWith("answer was 41"));
  }
  EXPECT_NO_THROW(KILN_ASSERT(answer == 41, "unused"));
}

TEST(Error, AssertWithoutMessageNamesTheCondition) {
  try {
    KILN_ASSERT(sizeof(int) == 1);
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_THAT(e.message(), EndsWith("check 'sizeof(int) == 1' failed"));
  }
}

TEST(Error, DebugAssertFollowsNDEBUG) {
#ifdef NDEBUG
  EXPECT_NO_THROW(KILN_DASSERT(false, "compiled out"));
#else
  EXPECT_THROW(KILN_DASSERT(false, "checked in debug"), InternalError);
#endif
  EXPECT_NO_THROW(KILN_DASSERT(true, "holds"));
}

}  // namespace
}  // namespace kiln
