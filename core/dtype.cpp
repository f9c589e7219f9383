#include "kiln/core/dtype.h"

#include <array>
#include <ostream>
#include <string>

namespace kiln {
namespace {

struct DTypeName {
  std::string_view text;
  DType dtype;
};

// Canonical names first (name() uses them), then accepted aliases.
constexpr std::array<DTypeName, 14> kNames{{
    {"float32", DType::float32},  {"float16", DType::float16}, {"bfloat16", DType::bfloat16},
    {"float64", DType::float64},  {"int32", DType::int32},     {"int64", DType::int64},
    {"uint8", DType::uint8},      {"bool", DType::bool_},      {"float", DType::float32},
    {"half", DType::float16},     {"double", DType::float64},  {"int", DType::int32},
    {"long", DType::int64},       {"bf16", DType::bfloat16},
}};

}  // namespace

std::string_view name(DType dt) {
  for (const auto& n : kNames) {
    if (n.dtype == dt) return n.text;
  }
  KILN_THROW(InternalError, "name: invalid dtype value ", static_cast<int>(dt));
}

DType parse_dtype(std::string_view text) {
  for (const auto& n : kNames) {
    if (n.text == text) return n.dtype;
  }
  std::string valid;
  for (int i = 0; i < kNumDTypes; ++i) valid += (i ? ", " : "") + std::string(kNames[i].text);
  KILN_THROW(TypeError, "unknown dtype '", text, "'; valid dtypes: ", valid);
}

std::ostream& operator<<(std::ostream& os, DType dt) { return os << name(dt); }

}  // namespace kiln
