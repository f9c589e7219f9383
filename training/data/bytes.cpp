// Bounds-checked byte reads, checked array sizes, element decoding, whole-file I/O.
#include "kiln/training/data/bytes.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <unistd.h>  // fsync

namespace kiln::data {

ByteSpan ByteCursor::take(std::size_t n, std::string_view field) {
  KILN_FORMAT_CHECK(n <= remaining(), source_, field, "truncated: needs ", n, " bytes at offset ",
                    offset_, ", the data has ", bytes_.size(), " bytes");
  const ByteSpan out = bytes_.subspan(offset_, n);
  offset_ += n;
  return out;
}

std::uint16_t ByteCursor::u16_le(std::string_view field) { return load_u16_le(take(2, field).data()); }
std::uint32_t ByteCursor::u32_le(std::string_view field) { return load_u32_le(take(4, field).data()); }
std::uint64_t ByteCursor::u64_le(std::string_view field) { return load_u64_le(take(8, field).data()); }

std::uint32_t ByteCursor::u32_be(std::string_view field) {
  const ByteSpan b = take(4, field);
  return (static_cast<std::uint32_t>(b[0]) << 24) | (static_cast<std::uint32_t>(b[1]) << 16) |
         (static_cast<std::uint32_t>(b[2]) << 8) | static_cast<std::uint32_t>(b[3]);
}

std::int64_t checked_array_bytes(std::span<const std::int64_t> dims, std::size_t itemsize,
                                 std::string_view source, std::string_view field) {
  // A zero extent makes the array empty whatever the others are, but each extent must
  // still be a valid one, and the product is checked in any order that could overflow.
  bool empty = false;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    KILN_FORMAT_CHECK(dims[i] >= 0, source, field, "negative extent ", dims[i], " at axis ", i);
    empty = empty || dims[i] == 0;
  }
  if (empty) return 0;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t bytes = static_cast<std::int64_t>(itemsize);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    KILN_FORMAT_CHECK(bytes <= kMax / dims[i], source, field, "the extents' product overflows ",
                      "(axis ", i, " of extent ", dims[i], " with ", itemsize,
                      "-byte elements passes 2^63 bytes)");
    bytes *= dims[i];
  }
  return bytes;
}

void decode_elements(const RawArray& raw, void* out, std::string_view source) {
  const std::size_t size = itemsize(raw.dtype);
  const std::size_t n = raw.payload.size();
  auto* dst = static_cast<std::uint8_t*>(out);
  if (raw.dtype == DType::bool_) {
    for (std::size_t i = 0; i < n; ++i) {
      KILN_FORMAT_CHECK(raw.payload[i] <= 1, source, "data", "bool element ", i, " is byte ",
                        static_cast<int>(raw.payload[i]), ", not 0 or 1");
    }
  }
  if (!raw.big_endian || size == 1) {
    if (n > 0) std::memcpy(dst, raw.payload.data(), n);
    return;
  }
  const std::uint8_t* src = raw.payload.data();
  for (std::size_t e = 0; e < n; e += size) {
    for (std::size_t b = 0; b < size; ++b) dst[e + b] = src[e + size - 1 - b];
  }
}

Bytes read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  KILN_CHECK(f != nullptr, IOError, path, ": cannot open for reading: ", std::strerror(errno));
  Bytes bytes;
  // Sized from the file itself (never from a header inside it).
  if (std::fseek(f, 0, SEEK_END) == 0) {
    const long end = std::ftell(f);
    if (end > 0) bytes.reserve(static_cast<std::size_t>(end));
    std::fseek(f, 0, SEEK_SET);
  }
  std::uint8_t chunk[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  KILN_CHECK(!failed, IOError, path, ": read failed: ", std::strerror(err));
  return bytes;
}

void write_file_atomic(const std::string& path, ByteSpan bytes) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  KILN_CHECK(f != nullptr, IOError, tmp, ": cannot open for writing: ", std::strerror(errno));
  const bool wrote = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool flushed = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !flushed || !closed) {
    std::remove(tmp.c_str());
    KILN_THROW(IOError, tmp, ": write failed: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rename_err = errno;
    std::remove(tmp.c_str());
    KILN_THROW(IOError, path, ": cannot rename ", tmp, " over it: ", std::strerror(rename_err));
  }
}

}  // namespace kiln::data
