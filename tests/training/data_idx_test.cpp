// IDX reader (raw and gzip) against hand-built files, including every malformed case:
// bad magic, unknown types, bad ndim, truncated header and data, trailing bytes, extents
// whose product overflows, and corrupt, truncated or padded gzip streams.
#include <cmath>
#include <cstring>
#include <limits>

#include "data_test_util.h"
#include "kiln/training/data/formats.h"
#include "kiln/training/data/gzip.h"
#include "kiln/training/data/readers.h"

namespace kiln::test {
namespace {

using data::read_idx;

Bytes be_floats(const std::vector<float>& v) {
  Bytes b;
  for (float f : v) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    put_u32_be(b, u);
  }
  return b;
}

TEST(IdxReader, ReadsRawUint8Images) {
  ScratchDir dir;
  Bytes payload(3 * 2 * 2);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(250 + i % 6);
  const Tensor t = read_idx(dir.write("images-idx3-ubyte", make_idx(0x08, {3, 2, 2}, payload)));
  EXPECT_EQ(t.dtype(), uint8);
  EXPECT_EQ(t.shape(), Shape({3, 2, 2}));
  EXPECT_EQ(t.to_vector<std::uint8_t>(), std::vector<std::uint8_t>(payload.begin(), payload.end()));
}

TEST(IdxReader, ReadsGzipBigEndianFloat32WithNanAndInf) {
  ScratchDir dir;
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {1.5f, -2.0f, inf, -inf, std::nanf(""), 0.0f, -0.0f};
  const Bytes file = make_idx(0x0D, {7}, be_floats(values));
  const Tensor t = read_idx(dir.write("v.gz", gzip_bytes(file)));
  EXPECT_EQ(t.dtype(), float32);
  const auto got = t.to_vector<float>();
  ASSERT_EQ(got.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << i;
    } else {
      EXPECT_EQ(std::memcmp(&got[i], &values[i], 4), 0) << i;  // -0.0 keeps its sign
    }
  }
}

TEST(IdxReader, ReadsInt32AndFloat64) {
  ScratchDir dir;
  Bytes ints;
  for (std::int32_t v : {-1, 7, std::numeric_limits<std::int32_t>::min()}) put_u32_be(ints, static_cast<std::uint32_t>(v));
  const Tensor i = read_idx(dir.write("i", make_idx(0x0C, {3}, ints)));
  EXPECT_EQ(i.dtype(), int32);
  EXPECT_EQ(i.to_vector<std::int32_t>(), (std::vector<std::int32_t>{-1, 7, std::numeric_limits<std::int32_t>::min()}));
  Bytes dbl;
  const double d = -3.25;
  std::uint64_t u;
  std::memcpy(&u, &d, 8);
  put_u32_be(dbl, static_cast<std::uint32_t>(u >> 32));
  put_u32_be(dbl, static_cast<std::uint32_t>(u));
  const Tensor f = read_idx(dir.write("d", make_idx(0x0E, {1, 1}, dbl)));
  EXPECT_EQ(f.dtype(), float64);
  EXPECT_EQ(f.shape(), Shape({1, 1}));
  EXPECT_EQ(f.item<double>(), -3.25);
}

TEST(IdxReader, ZeroExtentGivesEmptyTensor) {
  ScratchDir dir;
  const Tensor t = read_idx(dir.write("e", make_idx(0x08, {0, 28, 28}, {})));
  EXPECT_EQ(t.shape(), Shape({0, 28, 28}));
}

TEST(IdxReader, ReadsConcatenatedGzipMembers) {
  ScratchDir dir;
  const Bytes file = make_idx(0x08, {4}, {1, 2, 3, 4});
  // Split the file in two gzip members, as `cat a.gz b.gz` makes.
  Bytes gz = gzip_bytes(Bytes(file.begin(), file.begin() + 6));
  const Bytes rest = gzip_bytes(Bytes(file.begin() + 6, file.end()));
  gz.insert(gz.end(), rest.begin(), rest.end());
  EXPECT_EQ(read_idx(dir.write("m.gz", gz)).to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{1, 2, 3, 4}));
}

TEST(IdxReader, MissingFileIsIOErrorNamingIt) {
  ScratchDir dir;
  try {
    read_idx(dir.file("nope"));
    ADD_FAILURE() << "expected IOError";
  } catch (const IOError& e) {
    EXPECT_NE(e.message().find(dir.file("nope")), std::string::npos) << e.message();
  }
}

TEST(IdxReaderMalformed, BadMagic) {
  ScratchDir dir;
  Bytes f = make_idx(0x08, {2}, {1, 2});
  f[0] = 0x1f;
  f[1] = 0x00;  // not gzip either
  const auto p = dir.write("bad", f);
  EXPECT_FORMAT_ERROR(read_idx(p), p, "magic");
  EXPECT_FORMAT_ERROR(read_idx(dir.write("empty", {})), "empty", "magic", "truncated");
  EXPECT_FORMAT_ERROR(read_idx(dir.write("short", {0, 0})), "short", "magic", "truncated");
}

TEST(IdxReaderMalformed, UnknownOrUnsupportedType) {
  ScratchDir dir;
  const auto p = dir.write("t", make_idx(0x07, {1}, {0}));
  EXPECT_FORMAT_ERROR(read_idx(p), p, "magic", "unknown element type");
  const auto q = dir.write("i8", make_idx(0x09, {1}, {0}));
  EXPECT_FORMAT_ERROR(read_idx(q), q, "magic", "int8");
  const auto r = dir.write("i16", make_idx(0x0B, {1}, {0, 0}));
  EXPECT_FORMAT_ERROR(read_idx(r), r, "magic", "int16");
}

TEST(IdxReaderMalformed, BadDimensionCount) {
  ScratchDir dir;
  EXPECT_FORMAT_ERROR(read_idx(dir.write("zero", {0, 0, 8, 0, 5})), "zero", "magic", "0 dimensions");
  const auto p = dir.write("nine", make_idx(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1}, {7}));
  EXPECT_FORMAT_ERROR(read_idx(p), p, "magic", "9 dimensions");
}

TEST(IdxReaderMalformed, TruncatedHeader) {
  ScratchDir dir;
  Bytes f = make_idx(0x08, {10000, 28, 28}, {});
  f.resize(4 + 4 + 2);  // the second extent is cut
  const auto p = dir.write("h", f);
  EXPECT_FORMAT_ERROR(read_idx(p), p, "dimension", "truncated");
}

TEST(IdxReaderMalformed, DeclaredSizeLargerThanFile) {
  ScratchDir dir;
  // MNIST's header (10000 x 28 x 28) over 100 bytes of data: rejected before allocating.
  const auto p = dir.write("t10k", make_idx(0x08, {10000, 28, 28}, Bytes(100, 1)));
  EXPECT_FORMAT_ERROR(read_idx(p), p, "data", "truncated", "7840000");
  // The same inside gzip: the declared size is checked against the inflated bytes.
  const auto q = dir.write("t10k.gz", gzip_bytes(make_idx(0x08, {10000, 28, 28}, Bytes(100, 1))));
  EXPECT_FORMAT_ERROR(read_idx(q), q, "data", "truncated");
  // One element short.
  const auto r = dir.write("f32", make_idx(0x0D, {3}, Bytes(11, 0)));
  EXPECT_FORMAT_ERROR(read_idx(r), r, "data", "truncated");
}

TEST(IdxReaderMalformed, TrailingBytes) {
  ScratchDir dir;
  const auto p = dir.write("tail", make_idx(0x08, {2}, {1, 2, 3}));
  EXPECT_FORMAT_ERROR(read_idx(p), p, "data", "1 trailing bytes");
}

TEST(IdxReaderMalformed, ExtentProductOverflows) {
  ScratchDir dir;
  // 8 extents of 2^32 - 1: 2^256 elements. Must fail on arithmetic, not on allocation.
  const auto p = dir.write("huge", make_idx(0x0E, std::vector<std::uint32_t>(8, 0xffffffffu), {}));
  EXPECT_FORMAT_ERROR(read_idx(p), p, "dimensions", "overflows");
  // Large but representable: the truncation check catches it before any allocation.
  const auto q = dir.write("big", make_idx(0x08, {0xffffffffu, 0xffffu}, {}));  // 2^48 bytes
  EXPECT_FORMAT_ERROR(read_idx(q), q, "data", "truncated");
}

TEST(IdxReaderMalformed, TruncatedGzip) {
  ScratchDir dir;
  Bytes payload(4000);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 7);
  Bytes gz = gzip_bytes(make_idx(0x08, {4000}, payload));
  gz.resize(gz.size() / 2);
  const auto p = dir.write("cut.gz", gz);
  EXPECT_FORMAT_ERROR(read_idx(p), p, "data", "truncated");
  // Only the trailer (CRC, size) missing.
  Bytes whole = gzip_bytes(make_idx(0x08, {4}, {1, 2, 3, 4}));
  whole.resize(whole.size() - 4);
  const auto q = dir.write("notrailer.gz", whole);
  EXPECT_FORMAT_ERROR(read_idx(q), q, "data");
}

TEST(IdxReaderMalformed, CorruptGzip) {
  ScratchDir dir;
  Bytes gz = gzip_bytes(make_idx(0x08, {64}, Bytes(64, 9)));
  gz[gz.size() - 6] ^= 0xff;  // inside the CRC-32 of the trailer
  const auto p = dir.write("crc.gz", gz);
  EXPECT_FORMAT_ERROR(read_idx(p), p, "data", "corrupt");
  Bytes bad_method = gzip_bytes(make_idx(0x08, {1}, {1}));
  bad_method[2] = 7;  // compression method other than deflate
  const auto q = dir.write("method.gz", bad_method);
  EXPECT_FORMAT_ERROR(read_idx(q), q, "data");
}

TEST(IdxReaderMalformed, TrailingGarbageAfterGzip) {
  ScratchDir dir;
  Bytes gz = gzip_bytes(make_idx(0x08, {1}, {1}));
  gz.push_back(0);
  gz.push_back(0);
  const auto p = dir.write("pad.gz", gz);
  EXPECT_FORMAT_ERROR(read_idx(p), p, "data", "trailing bytes after the gzip stream");
}

TEST(Gunzip, StopsAtTheLimitInsteadOfGrowingWithoutBound) {
  // 1 MiB of zeros compresses to ~1 KiB; a 64 KiB limit must stop it.
  const Bytes gz = gzip_bytes(Bytes(1 << 20, 0));
  EXPECT_FORMAT_ERROR(data::gunzip(gz, "zeros.gz", 1 << 16), "zeros.gz", "data", "more than 65536");
  EXPECT_EQ(data::gunzip(gz, "zeros.gz").size(), std::size_t{1} << 20);
}

}  // namespace
}  // namespace kiln::test
