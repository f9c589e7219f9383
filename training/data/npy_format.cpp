// NPY parsing and writing (numpy.lib.format). The header is a Python dict literal; this
// reads exactly the subset numpy writes (quoted keys, a quoted descr, True/False, a tuple
// of non-negative integers) and rejects everything else by field name.
#include <cctype>
#include <cstring>
#include <limits>

#include "kiln/training/data/formats.h"

namespace kiln::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
constexpr std::size_t kAlign = 64;  // numpy pads the header so the data starts aligned

struct DescrEntry {
  const char* descr;
  DType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"<f2", DType::float16}, {"<f4", DType::float32}, {"<f8", DType::float64},
    {"<i4", DType::int32},   {"<i8", DType::int64},   {"|u1", DType::uint8},
    {"|b1", DType::bool_},
};

// A cursor over the header text; failures name the field being read.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  bool at_end() const { return pos_ == text_.size(); }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool accept(char c) {
    skip_space();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c, std::string_view field) {
    KILN_FORMAT_CHECK(accept(c), source_, field, "expected '", c, "' at header offset ", pos_,
                      " in ", quoted());
  }
  std::string string(std::string_view field) {
    skip_space();
    const char quote = peek();
    KILN_FORMAT_CHECK(quote == '\'' || quote == '"', source_, field,
                      "expected a quoted string at header offset ", pos_, " in ", quoted());
    const std::size_t close = text_.find(quote, pos_ + 1);
    KILN_FORMAT_CHECK(close != std::string_view::npos, source_, field, "unterminated string in ",
                      quoted());
    std::string out(text_.substr(pos_ + 1, close - pos_ - 1));
    pos_ = close + 1;
    return out;
  }
  bool boolean(std::string_view field) {
    skip_space();
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      if (text_.substr(pos_, std::strlen(word)) == word) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    KILN_FORMAT_FAIL(source_, field, "expected True or False in ", quoted());
  }
  std::int64_t integer(std::string_view field) {
    skip_space();
    KILN_FORMAT_CHECK(std::isdigit(static_cast<unsigned char>(peek())), source_, field,
                      "expected a non-negative integer at header offset ", pos_, " in ", quoted());
    std::int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      const int digit = peek() - '0';
      KILN_FORMAT_CHECK(v <= (std::numeric_limits<std::int64_t>::max() - digit) / 10, source_,
                        field, "an extent overflows int64 in ", quoted());
      v = v * 10 + digit;
      ++pos_;
    }
    if (peek() == 'L') ++pos_;  // Python 2 long literals, as old numpy wrote them
    return v;
  }
  std::string quoted() const { return "'" + std::string(text_) + "'"; }
  std::string_view source() const { return source_; }

 private:
  std::string_view text_;
  std::string_view source_;
  std::size_t pos_ = 0;
};

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

std::vector<std::int64_t> parse_shape(HeaderParser& p) {
  std::vector<std::int64_t> dims;
  p.expect('(', "shape");
  while (!p.accept(')')) {
    KILN_FORMAT_CHECK(dims.size() < static_cast<std::size_t>(Shape::kMaxDims), p.source(), "shape",
                      "more than ", Shape::kMaxDims, " dimensions");
    dims.push_back(p.integer("shape"));
    // (3) is an int in Python, not a tuple: a one-element tuple needs its comma.
    if (!p.accept(',')) {
      p.expect(')', "shape");
      KILN_FORMAT_CHECK(dims.size() != 1, p.source(), "shape", "(n) is not a tuple; numpy writes (n,)");
      break;
    }
  }
  return dims;
}

Header parse_header(std::string_view text, std::string_view source) {
  HeaderParser p(text, source);
  Header h;
  bool seen[3] = {false, false, false};
  p.expect('{', "header");
  while (!p.accept('}')) {
    const std::string key = p.string("header key");
    p.expect(':', key);
    int which = -1;
    if (key == "descr") {
      which = 0;
      p.skip_space();
      KILN_FORMAT_CHECK(p.peek() != '[', source, "descr", "structured dtypes are not supported");
      h.descr = p.string("descr");
    } else if (key == "fortran_order") {
      which = 1;
      h.fortran_order = p.boolean("fortran_order");
    } else if (key == "shape") {
      which = 2;
      h.shape = parse_shape(p);
    } else {
      KILN_FORMAT_FAIL(source, "header", "unexpected key '", key, "' (numpy writes only descr, ",
                       "fortran_order and shape)");
    }
    KILN_FORMAT_CHECK(!seen[which], source, key, "appears twice in the header");
    seen[which] = true;
    if (!p.accept(',')) {
      p.expect('}', "header");
      break;
    }
  }
  p.skip_space();
  KILN_FORMAT_CHECK(p.at_end(), source, "header", "unexpected text after the dict in ", p.quoted());
  const char* keys[3] = {"descr", "fortran_order", "shape"};
  for (int i = 0; i < 3; ++i) {
    KILN_FORMAT_CHECK(seen[i], source, keys[i], "missing from the header ", p.quoted());
  }
  return h;
}

DType descr_dtype(const std::string& descr, std::string_view source) {
  for (const auto& e : kDescrs) {
    if (descr == e.descr) return e.dtype;
  }
  // numpy also writes "<u1" / "<b1" style 1-byte descrs on some paths: same bytes.
  if (descr == "<u1" || descr == "=u1") return DType::uint8;
  if (descr == "<b1" || descr == "=b1") return DType::bool_;
  KILN_FORMAT_CHECK(descr.empty() || descr[0] != '>', source, "descr", "'", descr,
                    "' is big-endian; kiln reads little-endian arrays only");
  KILN_FORMAT_FAIL(source, "descr", "'", descr, "' is not supported (<f2 <f4 <f8 <i4 <i8 |u1 |b1)");
}

}  // namespace

RawArray parse_npy(ByteSpan bytes, std::string_view source) {
  ByteCursor c(bytes, source);
  const ByteSpan magic = c.take(kMagicSize, "magic");
  KILN_FORMAT_CHECK(std::memcmp(magic.data(), kMagic, kMagicSize) == 0, source, "magic",
                    "expected \\x93NUMPY (not a .npy file)");
  const std::uint8_t major = c.u8("version");
  const std::uint8_t minor = c.u8("version");
  KILN_FORMAT_CHECK(major >= 1 && major <= 3 && minor == 0, source, "version", static_cast<int>(major),
                    ".", static_cast<int>(minor), " (kiln reads 1.0, 2.0 and 3.0)");
  const std::uint32_t header_len = major == 1 ? c.u16_le("header length") : c.u32_le("header length");
  const ByteSpan header = c.take(header_len, "header");
  const Header h = parse_header(
      std::string_view(reinterpret_cast<const char*>(header.data()), header.size()), source);
  RawArray raw;
  raw.dtype = descr_dtype(h.descr, source);
  KILN_FORMAT_CHECK(!h.fortran_order || h.shape.size() <= 1, source, "fortran_order",
                    "True is not supported (kiln reads C-order arrays)");
  const std::int64_t payload = checked_array_bytes(h.shape, itemsize(raw.dtype), source, "shape");
  KILN_FORMAT_CHECK(static_cast<std::uint64_t>(payload) <= c.remaining(), source, "data",
                    "truncated: the shape declares ", payload, " bytes of data, the file holds ",
                    c.remaining());
  KILN_FORMAT_CHECK(static_cast<std::uint64_t>(payload) == c.remaining(), source, "data",
                    c.remaining() - static_cast<std::uint64_t>(payload),
                    " trailing bytes after the declared ", payload);
  raw.shape = Shape(std::span<const std::int64_t>(h.shape));
  raw.payload = c.take(static_cast<std::size_t>(payload), "data");
  return raw;
}

std::string npy_descr(DType dtype) {
  for (const auto& e : kDescrs) {
    if (e.dtype == dtype) return e.descr;
  }
  KILN_THROW(TypeError, "npy: ", dtype, " has no numpy dtype (supported: float16, float32, ",
             "float64, int32, int64, uint8, bool)");
}

Bytes npy_bytes(DType dtype, const Shape& shape, ByteSpan data) {
  KILN_CHECK(data.size() == static_cast<std::size_t>(shape.numel()) * itemsize(dtype), ValueError,
             "npy: ", data.size(), " bytes cannot hold shape ", shape, " of ", dtype);
  std::string header = "{'descr': '" + npy_descr(dtype) + "', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < shape.ndim(); ++i) {
    header += std::to_string(shape[i]);
    if (i + 1 < shape.ndim() || shape.ndim() == 1) header += shape.ndim() == 1 ? "," : ", ";
  }
  header += "), }";
  // Version 1.0 has a 16-bit header length; 2.0 a 32-bit one.
  std::size_t prefix = kMagicSize + 2 + 2;
  if (header.size() + 1 + kAlign + prefix > 0xffff) prefix += 2;
  const std::size_t padded = (prefix + header.size() + 1 + kAlign - 1) / kAlign * kAlign;
  header.append(padded - prefix - header.size() - 1, ' ');
  header += '\n';
  Bytes out(prefix);
  std::memcpy(out.data(), kMagic, kMagicSize);
  out[kMagicSize] = prefix == kMagicSize + 4 ? 1 : 2;
  out[kMagicSize + 1] = 0;
  if (out[kMagicSize] == 1) {
    store_u16_le(out.data() + kMagicSize + 2, static_cast<std::uint16_t>(header.size()));
  } else {
    store_u32_le(out.data() + kMagicSize + 2, static_cast<std::uint32_t>(header.size()));
  }
  out.reserve(prefix + header.size() + data.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace kiln::data
