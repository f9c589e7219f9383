// DType (core/dtype.h): sizes, names and their parsing, and the dtype <-> C++ type maps.
#include "kiln/core/dtype.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

namespace kiln {
namespace {

using ::testing::HasSubstr;

struct DTypeCase {
  DType dtype;
  const char* name;
  std::size_t itemsize;
  bool floating;
  bool integral;
};

constexpr DTypeCase kCases[] = {
    {float32, "float32", 4, true, false}, {float16, "float16", 2, true, false},
    {bfloat16, "bfloat16", 2, true, false}, {float64, "float64", 8, true, false},
    {int32, "int32", 4, false, true},     {int64, "int64", 8, false, true},
    {uint8, "uint8", 1, false, true},     {bool_, "bool", 1, false, false},
};
static_assert(std::size(kCases) == kNumDTypes);

TEST(DType, ItemsizeNameAndKind) {
  for (const auto& c : kCases) {
    EXPECT_EQ(itemsize(c.dtype), c.itemsize) << c.name;
    EXPECT_EQ(name(c.dtype), c.name);
    EXPECT_EQ(is_floating(c.dtype), c.floating) << c.name;
    EXPECT_EQ(is_integral(c.dtype), c.integral) << c.name;
    std::ostringstream os;
    os << c.dtype;
    EXPECT_EQ(os.str(), c.name);
  }
}

TEST(DType, ParseRoundTripsCanonicalNames) {
  for (const auto& c : kCases) EXPECT_EQ(parse_dtype(c.name), c.dtype) << c.name;
}

TEST(DType, ParseAcceptsAliases) {
  EXPECT_EQ(parse_dtype("float"), float32);
  EXPECT_EQ(parse_dtype("half"), float16);
  EXPECT_EQ(parse_dtype("double"), float64);
  EXPECT_EQ(parse_dtype("int"), int32);
  EXPECT_EQ(parse_dtype("long"), int64);
  EXPECT_EQ(parse_dtype("bf16"), bfloat16);
  // Aliases parse but never print: name() gives the canonical spelling.
  EXPECT_EQ(name(parse_dtype("half")), "float16");
}

TEST(DType, ParseUnknownRaisesTypeErrorListingValidNames) {
  for (const char* bad : {"float8", "Float32", "", " int32", "int32 "}) {
    try {
      parse_dtype(bad);
      FAIL() << "expected TypeError for '" << bad << "'";
    } catch (const TypeError& e) {
      EXPECT_THAT(e.message(), HasSubstr(std::string("'") + bad + "'"));
      EXPECT_THAT(e.message(), HasSubstr("float32, float16, bfloat16, float64, int32, "
                                         "int64, uint8, bool"));
    }
  }
}

TEST(DType, VisitCallsWithTheMatchingCppType) {
  for (const auto& c : kCases) {
    const auto [size, back] = visit_dtype(c.dtype, []<class T>() {
      return std::pair<std::size_t, DType>{sizeof(T), dtype_of<T>()};
    });
    EXPECT_EQ(size, c.itemsize) << c.name;
    EXPECT_EQ(back, c.dtype) << c.name;
  }
}

TEST(DType, VisitReturnsReferencesThrough) {
  int target = 0;
  int& ref = visit_dtype(int64, [&]<class T>() -> int& { return target; });
  ref = 7;
  EXPECT_EQ(target, 7);
}

TEST(DType, InvalidEnumValueIsAnInternalError) {
  const auto bad = static_cast<DType>(200);
  EXPECT_THROW(name(bad), InternalError);
  EXPECT_THROW(visit_dtype(bad, []<class T>() { return 0; }), InternalError);
}

// The compile-time maps agree in both directions.
static_assert(dtype_of<float>() == float32);
static_assert(dtype_of<const double>() == float64);
static_assert(dtype_of<Half>() == float16);
static_assert(dtype_of<BFloat16>() == bfloat16);
static_assert(dtype_of<std::int32_t>() == int32);
static_assert(dtype_of<std::int64_t>() == int64);
static_assert(dtype_of<std::uint8_t>() == uint8);
static_assert(dtype_of<bool>() == bool_);
static_assert(std::is_same_v<cpp_type_t<float16>, Half>);
static_assert(std::is_same_v<cpp_type_t<bool_>, bool>);
static_assert(dtype_of<cpp_type_t<bfloat16>>() == bfloat16);
static_assert(itemsize(int64) == sizeof(cpp_type_t<int64>));

}  // namespace
}  // namespace kiln
