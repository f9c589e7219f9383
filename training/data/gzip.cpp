// gzip and raw-deflate inflation through zlib, bounded by the caller's limits.
#include "kiln/training/data/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <climits>

namespace kiln::data {
namespace {

constexpr std::size_t kFirstChunk = 1 << 16;

// Owns a z_stream set up for inflation; inflateEnd on every path.
class Inflater {
 public:
  Inflater(int window_bits, std::string_view source) {
    const int ret = inflateInit2(&zs_, window_bits);
    KILN_CHECK(ret == Z_OK, InternalError, source, ": zlib inflateInit2 failed (", ret, ")");
  }
  ~Inflater() { inflateEnd(&zs_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream* operator->() { return &zs_; }
  z_stream* get() { return &zs_; }

 private:
  z_stream zs_{};
};

// Hands zlib the next piece of `in` (its counters are 32-bit) once it has used the last.
void feed(z_stream* zs, ByteSpan in, std::size_t& in_pos) {
  if (zs->avail_in != 0 || in_pos == in.size()) return;
  const std::size_t n = std::min<std::size_t>(in.size() - in_pos, UINT_MAX);
  zs->next_in = const_cast<Bytef*>(in.data() + in_pos);
  zs->avail_in = static_cast<uInt>(n);
  in_pos += n;
}

std::string zlib_message(const z_stream* zs, int ret) {
  return zs->msg ? std::string(zs->msg) : "zlib error " + std::to_string(ret);
}

}  // namespace

bool is_gzip(ByteSpan bytes) { return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b; }

Bytes gunzip(ByteSpan in, std::string_view source, std::uint64_t max_bytes) {
  KILN_FORMAT_CHECK(is_gzip(in), source, "gzip magic", "expected bytes 1f 8b at offset 0");
  if (max_bytes == 0) max_bytes = kMaxDeflateRatio * in.size() + 1024;
  Inflater zs(16 + MAX_WBITS, source);  // 16+: the gzip wrapper only (zlib checks CRC, ISIZE)
  Bytes out;
  std::size_t produced = 0;
  std::size_t in_pos = 0;
  for (;;) {
    feed(zs.get(), in, in_pos);
    if (produced == out.size()) {
      KILN_FORMAT_CHECK(out.size() < max_bytes, source, "data", "decompresses to more than ",
                        max_bytes, " bytes (", in.size(), " compressed bytes)");
      out.resize(static_cast<std::size_t>(
          std::min<std::uint64_t>(max_bytes, std::max<std::size_t>(2 * out.size(), kFirstChunk))));
    }
    const std::size_t room = std::min<std::size_t>(out.size() - produced, UINT_MAX);
    zs->next_out = out.data() + produced;
    zs->avail_out = static_cast<uInt>(room);
    const int ret = inflate(zs.get(), Z_NO_FLUSH);
    produced += room - zs->avail_out;
    if (ret == Z_STREAM_END) {
      const std::size_t next = in_pos - zs->avail_in;  // where the member ended
      if (next == in.size()) break;
      // Only another gzip member may follow (gzip -c a b > ab.gz concatenates members).
      KILN_FORMAT_CHECK(is_gzip(in.subspan(next)), source, "data", in.size() - next,
                        " trailing bytes after the gzip stream at offset ", next);
      inflateReset(zs.get());
      continue;
    }
    if (ret == Z_OK) continue;
    const bool starved = zs->avail_in == 0 && in_pos == in.size();
    if (ret == Z_BUF_ERROR && !starved) continue;  // needs more room: grown above
    KILN_FORMAT_CHECK(ret != Z_BUF_ERROR, source, "data",
                      "truncated: the gzip stream ends before its end marker (", produced,
                      " bytes decompressed)");
    KILN_FORMAT_FAIL(source, "data", "corrupt gzip data: ", zlib_message(zs.get(), ret));
  }
  out.resize(produced);
  return out;
}

Bytes inflate_raw(ByteSpan in, std::uint64_t expected_bytes, std::string_view source,
                  std::string_view field) {
  Inflater zs(-MAX_WBITS, source);  // negative: raw deflate, no wrapper
  // One spare byte shows a stream that produces more than it was declared to.
  Bytes out(static_cast<std::size_t>(expected_bytes) + 1);
  std::size_t produced = 0;
  std::size_t in_pos = 0;
  for (;;) {
    feed(zs.get(), in, in_pos);
    const std::size_t room = std::min<std::size_t>(out.size() - produced, UINT_MAX);
    zs->next_out = out.data() + produced;
    zs->avail_out = static_cast<uInt>(room);
    const int ret = inflate(zs.get(), Z_NO_FLUSH);
    produced += room - zs->avail_out;
    KILN_FORMAT_CHECK(produced <= expected_bytes, source, field, "decompresses to more than the ",
                      expected_bytes, " bytes declared");
    if (ret == Z_STREAM_END) break;
    if (ret == Z_OK) continue;
    const bool starved = zs->avail_in == 0 && in_pos == in.size();
    if (ret == Z_BUF_ERROR && !starved) continue;
    KILN_FORMAT_CHECK(ret != Z_BUF_ERROR, source, field, "truncated deflate data (", produced,
                      " of ", expected_bytes, " bytes decompressed)");
    KILN_FORMAT_FAIL(source, field, "corrupt deflate data: ", zlib_message(zs.get(), ret));
  }
  KILN_FORMAT_CHECK(produced == expected_bytes, source, field, "decompresses to ", produced,
                    " bytes, the directory declares ", expected_bytes);
  out.resize(produced);
  return out;
}

std::uint32_t crc32_of(ByteSpan bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const std::size_t n = std::min<std::size_t>(bytes.size() - pos, UINT_MAX);
    crc = crc32(crc, bytes.data() + pos, static_cast<uInt>(n));
    pos += n;
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace kiln::data
