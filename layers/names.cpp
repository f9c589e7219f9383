// Automatic layer names (Note [Layer names] in layer.h) and Keras' shape text.
#include <map>
#include <mutex>
#include <sstream>

#include "kiln/layers/layer.h"

namespace kiln::layers {

namespace {
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
char lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

std::mutex& names_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, int, std::less<>>& name_counters() {
  static std::map<std::string, int, std::less<>> counters;
  return counters;
}
}  // namespace

// Keras: re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name), then re.sub("([a-z])([A-Z])",
// r"\1_\2", ...), lower-cased. Both rules insert "_" before an upper-case letter: the
// first when it starts a capitalised word and is not the first character, the second
// when it follows a lower-case letter.
std::string to_snake_case(std::string_view name) {
  std::string out;
  const std::size_t n = name.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = name[i];
    if (i > 0 && is_upper(c)) {
      const bool starts_word = i + 1 < n && is_lower(name[i + 1]);
      const bool after_lower = is_lower(name[i - 1]);
      if ((starts_word || after_lower) && out.back() != '_') out += '_';
    }
    out += lower(c);
  }
  return out;
}

std::string unique_name(std::string_view base) {
  std::lock_guard lock(names_mutex());
  auto& counters = name_counters();
  auto it = counters.find(base);
  if (it == counters.end()) {
    counters.emplace(std::string(base), 1);
    return std::string(base);
  }
  return std::string(base) + "_" + std::to_string(it->second++);
}

void clear_session() {
  std::lock_guard lock(names_mutex());
  name_counters().clear();
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '(';
  for (int i = 0; i < shape.ndim(); ++i) {
    if (i > 0) os << ", ";
    if (shape[i] < 0) {
      os << "None";
    } else {
      os << shape[i];
    }
  }
  if (shape.ndim() == 1) os << ',';
  os << ')';
  return os.str();
}

Shape with_unknown_batch(const Shape& shape) {
  Shape out = shape;
  if (out.ndim() > 0) out[0] = -1;
  return out;
}

Shape batch_shape(const std::vector<std::int64_t>& input_shape) {
  KILN_CHECK(static_cast<int>(input_shape.size()) < Shape::kMaxDims, ShapeError,
             "input_shape: at most ", Shape::kMaxDims - 1, " axes besides the batch, got ",
             input_shape.size());
  Shape out{-1};
  for (std::int64_t d : input_shape) {
    KILN_CHECK(d > 0 || d == -1, ShapeError, "input_shape: extents must be positive (or -1 for unknown), got ", d);
    out.push_back(d);
  }
  return out;
}

bool shapes_compatible(const Shape& expected, const Shape& actual) {
  if (expected.ndim() != actual.ndim()) return false;
  for (int i = 0; i < expected.ndim(); ++i) {
    if (expected[i] >= 0 && actual[i] >= 0 && expected[i] != actual[i]) return false;
  }
  return true;
}

}  // namespace kiln::layers
