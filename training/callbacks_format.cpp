// Python's number formatting where Keras' callbacks rely on it: str.format fields in
// ModelCheckpoint's filepath ("{epoch:02d}-{val_loss:.2f}") and float repr in CSVLogger rows.
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "kiln/core/error.h"
#include "kiln/training/callbacks.h"

namespace kiln::callbacks {
namespace {

// A parsed format spec: [[fill]align][sign][#][0][width][.precision][type].
struct Spec {
  char fill = ' ';
  char align = 0;  // '<', '>', '^', '=' or 0 (default: right for numbers)
  char sign = '-';
  int width = 0;
  int precision = -1;
  char type = 0;
};

bool is_align(char c) { return c == '<' || c == '>' || c == '^' || c == '='; }

Spec parse_spec(std::string_view s, std::string_view field) {
  Spec spec;
  std::size_t i = 0;
  if (s.size() >= 2 && is_align(s[1])) {
    spec.fill = s[0];
    spec.align = s[1];
    i = 2;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = s[0];
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) spec.sign = s[i++];
  if (i < s.size() && s[i] == '#') ++i;
  if (i < s.size() && s[i] == '0') {
    if (spec.align == 0) {
      spec.fill = '0';
      spec.align = '=';
    }
    ++i;
  }
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) spec.width = spec.width * 10 + (s[i++] - '0');
  if (i < s.size() && s[i] == '.') {
    ++i;
    KILN_CHECK(i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])), ValueError,
               "format_path: format specifier missing precision in field {", field, ":", s, "}");
    spec.precision = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) spec.precision = spec.precision * 10 + (s[i++] - '0');
  }
  if (i < s.size()) spec.type = s[i++];
  KILN_CHECK(i == s.size() && (spec.type == 0 || std::string_view("dfFeEgG%").find(spec.type) != std::string_view::npos),
             ValueError, "format_path: unsupported format specifier '", s, "' in field {", field,
             "} (supported: fill, align, sign, 0, width, .precision and the types d f F e E g G %)");
  return spec;
}

std::string format_number(double v, const Spec& spec, bool integer_field, std::string_view field) {
  std::string body;
  char flags[4] = {0};
  if (spec.sign == '+' || spec.sign == ' ') flags[0] = spec.sign;
  char buf[512];
  if (spec.type == 'd' || (spec.type == 0 && integer_field)) {
    KILN_CHECK(v == std::floor(v) && std::abs(v) < 9.2e18, ValueError, "format_path: field {", field,
               "} has the non-integer value ", v, " for an integer format");
    std::snprintf(buf, sizeof(buf), (std::string("%") + flags + "lld").c_str(), static_cast<long long>(v));
    body = buf;
  } else if (spec.type == 0 && spec.precision < 0) {
    body = python_float_repr(v);
    if (spec.sign != '-' && !std::signbit(v)) body.insert(body.begin(), spec.sign);
  } else {
    const char type = spec.type == 0 ? 'g' : spec.type == '%' ? 'f' : spec.type;
    const int precision = spec.precision < 0 ? 6 : spec.precision;
    const double x = spec.type == '%' ? v * 100.0 : v;
    std::snprintf(buf, sizeof(buf), (std::string("%") + flags + ".*" + type).c_str(), precision, x);
    body = buf;
    if (spec.type == '%') body += '%';
  }
  if (static_cast<int>(body.size()) >= spec.width) return body;
  const std::size_t pad = static_cast<std::size_t>(spec.width) - body.size();
  switch (spec.align) {
    case '<': return body + std::string(pad, spec.fill);
    case '^': return std::string(pad / 2, spec.fill) + body + std::string(pad - pad / 2, spec.fill);
    case '=': {  // padding between the sign and the digits
      const std::size_t sign_len = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
      return body.substr(0, sign_len) + std::string(pad, spec.fill) + body.substr(sign_len);
    }
    default: return std::string(pad, spec.fill) + body;
  }
}

}  // namespace

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: fixed for 1e-4 <= |v| < 1e16.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // "-1.2345e-05"
  const std::size_t e = sci.find('e');
  const int exponent = std::atoi(sci.c_str() + e + 1);
  const bool negative = sci[0] == '-';
  std::string digits;
  for (std::size_t i = negative ? 1 : 0; i < e; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp;
  }
  if (exponent < 0) return out + "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  const auto int_digits = static_cast<std::size_t>(exponent) + 1;
  if (digits.size() <= int_digits) return out + digits + std::string(int_digits - digits.size(), '0') + ".0";
  return out + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

std::string format_path(const std::string& pattern, const Logs& values) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '}') {
      KILN_CHECK(i + 1 < pattern.size() && pattern[i + 1] == '}', ValueError,
                 "format_path: single '}' in '", pattern, "'");
      out += '}';
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < pattern.size() && pattern[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const std::size_t close = pattern.find('}', i);
    KILN_CHECK(close != std::string::npos, ValueError, "format_path: unclosed '{' in '", pattern, "'");
    const std::string field = pattern.substr(i + 1, close - i - 1);
    const std::size_t colon = field.find(':');
    const std::string name = field.substr(0, colon);
    const auto it = values.find(name);
    if (it == values.end()) {
      std::string keys;
      for (const auto& [k, v] : values) keys += (keys.empty() ? "" : ", ") + k;
      KILN_THROW(ValueError, "format_path: '", pattern, "' names {", name,
                 "}, which is not available; available keys: ", keys);
    }
    const Spec spec = colon == std::string::npos ? Spec{} : parse_spec(std::string_view(field).substr(colon + 1), name);
    out += format_number(it->second, spec, name == "epoch" || name == "batch", name);
    i = close;
  }
  return out;
}

}  // namespace kiln::callbacks
