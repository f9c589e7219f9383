// Reading untrusted bytes: a bounds-checked cursor whose every failure is a FormatError
// naming the file and the field, the checked size arithmetic of array headers, RawArray
// (a validated array header plus a view of its payload), and whole-file reads/writes.
// Nothing here knows Tensor, so the format parsers built on it (formats.h) compile into
// the fuzz targets on their own (tests/fuzz, scripts/fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/core/shape.h"

namespace kiln::data {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

// Raises FormatError "<source>: <field>: <parts...>".
#define KILN_FORMAT_FAIL(source, field, ...) KILN_THROW(FormatError, source, ": ", field, ": ", __VA_ARGS__)
#define KILN_FORMAT_CHECK(cond, source, field, ...)    \
  do {                                                 \
    if (!(cond)) [[unlikely]] {                        \
      KILN_FORMAT_FAIL(source, field, __VA_ARGS__);    \
    }                                                  \
  } while (0)

// A read position in a byte span. Every read checks that the bytes are there first.
class ByteCursor {
 public:
  ByteCursor(ByteSpan bytes, std::string_view source) : bytes_(bytes), source_(source) {}

  std::size_t offset() const { return offset_; }
  std::size_t remaining() const { return bytes_.size() - offset_; }
  std::string_view source() const { return source_; }

  // The next n bytes; FormatError "<source>: <field>: truncated ..." when fewer remain.
  ByteSpan take(std::size_t n, std::string_view field);
  std::uint8_t u8(std::string_view field) { return take(1, field)[0]; }
  std::uint16_t u16_le(std::string_view field);
  std::uint32_t u32_le(std::string_view field);
  std::uint64_t u64_le(std::string_view field);
  std::uint32_t u32_be(std::string_view field);

 private:
  ByteSpan bytes_;
  std::string_view source_;
  std::size_t offset_ = 0;
};

// Little-endian loads from a span known to hold the bytes.
inline std::uint16_t load_u16_le(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t load_u32_le(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint64_t load_u64_le(const std::uint8_t* p) {
  return load_u32_le(p) | (static_cast<std::uint64_t>(load_u32_le(p + 4)) << 32);
}
inline void store_u16_le(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
inline void store_u32_le(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// The byte size of an array of `dims` with `itemsize`-byte elements, or FormatError
// "<source>: <field>: ..." when an extent is negative or the product overflows int64.
// Checked before anything is allocated for the array.
std::int64_t checked_array_bytes(std::span<const std::int64_t> dims, std::size_t itemsize,
                                 std::string_view source, std::string_view field);

// A validated array inside a file's bytes: dtype, shape and its payload (exactly
// shape.numel() * itemsize(dtype) bytes, in the file's byte order).
struct RawArray {
  DType dtype = DType::uint8;
  Shape shape;
  ByteSpan payload;
  bool big_endian = false;  // the payload's byte order (IDX is big-endian, npy little)
};

// Copies raw.payload into `out` (raw.payload.size() bytes) as native little-endian
// elements. bool elements must be 0 or 1 (FormatError naming the first that is not):
// any other byte in a C++ bool is undefined behaviour downstream.
void decode_elements(const RawArray& raw, void* out, std::string_view source);

// The whole file. IOError naming the path when it cannot be opened or read.
Bytes read_file(const std::string& path);
// Writes `bytes` to path.tmp, flushes it and renames it over `path`, so a crash never
// leaves a torn file. IOError naming the path on failure.
void write_file_atomic(const std::string& path, ByteSpan bytes);

}  // namespace kiln::data
