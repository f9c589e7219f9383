// NPY and NPZ: round trips of every dtype (NaN/Inf, empty, scalar, non-contiguous),
// archives made the numpy way (zip64 local headers, stored and deflated), and the
// malformed cases: magic, version, header length, header dict, descr, fortran order,
// shape overflow, truncated and trailing data, bool bytes, zip directory and CRC errors.
#include <cmath>
#include <cstring>
#include <limits>

#include "data_npz_fixtures.h"
#include "data_test_util.h"
#include "kiln/training/data/formats.h"
#include "kiln/training/data/readers.h"
#include "kiln/training/data/zip.h"

namespace kiln::test {
namespace {

using data::load_npy;
using data::load_npz;
using data::save_npy;
using data::save_npz;

// A .npy file with the given version and header text (a newline is appended).
Bytes npy_file(const std::string& dict, const Bytes& payload, int major = 1) {
  const std::string header = dict + "\n";
  Bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(major), 0};
  const auto n = static_cast<std::uint32_t>(header.size());
  b.push_back(static_cast<std::uint8_t>(n));
  b.push_back(static_cast<std::uint8_t>(n >> 8));
  if (major >= 2) {
    b.push_back(static_cast<std::uint8_t>(n >> 16));
    b.push_back(static_cast<std::uint8_t>(n >> 24));
  }
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

std::string dict(const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

void expect_same_bits(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.shape(), b.shape());
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  if (ca.nbytes() > 0) {
    EXPECT_EQ(std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()), 0);
  }
}

TEST(Npy, RoundTripsEveryDtype) {
  ScratchDir dir;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<Tensor> tensors = {
      from_vector<float>({1.5f, nan, inf, -inf, -0.0f, 3.0f}, {2, 3}),
      from_vector<double>({1e300, -1e-300, std::nan(""), 0.0, 2.0}, {5}),
      from_vector<std::int32_t>({std::numeric_limits<std::int32_t>::min(), -1, 0, 7}, {2, 1, 2}),
      from_vector<std::int64_t>({std::numeric_limits<std::int64_t>::max(), -5}, {2}),
      from_vector<std::uint8_t>({0, 255, 128}, {3, 1}),
      from_vector<bool>({true, false, true, true}, {2, 2}),
      arange(7.0, {.dtype = float16, .device = Device::cpu()}),
      zeros({0, 4}, {.dtype = float32, .device = Device::cpu()}),
      full({}, 2.5, {.dtype = float64, .device = Device::cpu()}),  // a 0-d scalar
  };
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(i);
    const auto path = dir.file("t" + std::to_string(i) + ".npy");
    save_npy(path, tensors[i]);
    expect_same_bits(load_npy(path), tensors[i]);
  }
}

TEST(Npy, SavesNonContiguousViewsInCOrder) {
  ScratchDir dir;
  const Tensor base = arange(12.0, {.dtype = int32, .device = Device::cpu()}).reshape({3, 4});
  const Tensor view = base.t().slice(0, 1, 4, 2);  // (2, 3), strided
  save_npy(dir.file("v.npy"), view);
  const Tensor back = load_npy(dir.file("v.npy"));
  EXPECT_EQ(back.shape(), Shape({2, 3}));
  EXPECT_EQ(back.to_vector<std::int32_t>(), view.to_vector<std::int32_t>());
}

TEST(Npy, WritesNumpysHeaderLayout) {
  const Bytes b = data::npy_bytes(float32, Shape({2, 3}), Bytes(24, 0));
  ASSERT_GE(b.size(), 10u);
  const std::string header(b.begin() + 10, b.end() - 24);
  EXPECT_EQ(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u) << header;
  EXPECT_EQ((b.size() - 24) % 64, 0u);  // the data starts 64-byte aligned
  EXPECT_EQ(header.back(), '\n');
  const Bytes one = data::npy_bytes(uint8, Shape({5}), Bytes(5, 0));
  EXPECT_NE(std::string(one.begin(), one.end()).find("'shape': (5,)"), std::string::npos);
}

TEST(Npy, ReadsVersions2And3AndFortranOrderOf1D) {
  ScratchDir dir;
  const Bytes payload = {1, 0, 0, 0, 2, 0, 0, 0};
  for (int major : {2, 3}) {
    const auto p = dir.write("v" + std::to_string(major), npy_file(dict("<i4", "(2,)"), payload, major));
    EXPECT_EQ(load_npy(p).to_vector<std::int32_t>(), (std::vector<std::int32_t>{1, 2}));
  }
  // Fortran and C order are the same bytes for one dimension; "<u1" and double quotes too.
  const auto q = dir.write("f", npy_file("{\"descr\": \"<u1\", \"fortran_order\": True, \"shape\": (2,)}", {5, 6}));
  EXPECT_EQ(load_npy(q).to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{5, 6}));
}

TEST(NpyMalformed, MagicAndVersion) {
  ScratchDir dir;
  Bytes b = npy_file(dict("<f4", "(1,)"), Bytes(4, 0));
  b[1] = 'n';
  const auto p = dir.write("m.npy", b);
  EXPECT_FORMAT_ERROR(load_npy(p), p, "magic");
  const auto q = dir.write("v.npy", npy_file(dict("<f4", "(1,)"), Bytes(4, 0), 4));
  EXPECT_FORMAT_ERROR(load_npy(q), q, "version", "4.0");
  EXPECT_FORMAT_ERROR(load_npy(dir.write("e.npy", {0x93, 'N'})), "e.npy", "magic", "truncated");
}

TEST(NpyMalformed, HeaderLengthPastTheFile) {
  ScratchDir dir;
  Bytes b = npy_file(dict("<f4", "(1,)"), {});
  b[8] = 0xff;
  b[9] = 0xff;  // 65535 header bytes declared
  const auto p = dir.write("h.npy", b);
  EXPECT_FORMAT_ERROR(load_npy(p), p, "header", "truncated", "65535");
}

TEST(NpyMalformed, HeaderDict) {
  ScratchDir dir;
  const std::pair<std::string, std::string> cases[] = {
      {"{'descr': '<f4', 'shape': (1,), }", "fortran_order"},                                  // missing key
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unexpected key"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "twice"},
      {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", "True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1)}", "not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,) junk", "expected '}'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after the dict"},
      {"['descr']", "expected '{'"},
      {"{'descr: '<f4'}", "expected ':'"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "structured"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", "more than 8"},
  };
  for (const auto& [text, what] : cases) {
    SCOPED_TRACE(text);
    const auto p = dir.write("d.npy", npy_file(text, Bytes(4, 0)));
    EXPECT_FORMAT_ERROR(load_npy(p), p, what);
  }
}

TEST(NpyMalformed, DescrAndOrder) {
  ScratchDir dir;
  const auto big = dir.write("b.npy", npy_file(dict(">f4", "(1,)"), Bytes(4, 0)));
  EXPECT_FORMAT_ERROR(load_npy(big), big, "descr", "big-endian");
  const auto u2 = dir.write("u.npy", npy_file(dict("<u2", "(1,)"), Bytes(2, 0)));
  EXPECT_FORMAT_ERROR(load_npy(u2), u2, "descr", "'<u2' is not supported");
  const auto f = dir.write("f.npy", npy_file(dict("<f4", "(2, 2)", "True"), Bytes(16, 0)));
  EXPECT_FORMAT_ERROR(load_npy(f), f, "fortran_order", "C-order");
}

TEST(NpyMalformed, ShapeOverflowAndDataSize) {
  ScratchDir dir;
  const auto o = dir.write("o.npy", npy_file(dict("<f8", "(4294967296, 4294967296)"), {}));
  EXPECT_FORMAT_ERROR(load_npy(o), o, "shape", "overflows");
  const auto i = dir.write("i.npy", npy_file(dict("<f8", "(99999999999999999999,)"), {}));
  EXPECT_FORMAT_ERROR(load_npy(i), i, "shape", "overflows int64");
  const auto t = dir.write("t.npy", npy_file(dict("<f4", "(1000, 1000)"), Bytes(16, 0)));
  EXPECT_FORMAT_ERROR(load_npy(t), t, "data", "truncated", "4000000");
  const auto x = dir.write("x.npy", npy_file(dict("<i4", "(1,)"), Bytes(5, 0)));
  EXPECT_FORMAT_ERROR(load_npy(x), x, "data", "1 trailing bytes");
  const auto b = dir.write("bool.npy", npy_file(dict("|b1", "(3,)"), {1, 2, 0}));
  EXPECT_FORMAT_ERROR(load_npy(b), b, "data", "bool element 1");
}

TEST(Npy, RejectsDtypesNumpyCannotName) {
  ScratchDir dir;
  EXPECT_THROW(save_npy(dir.file("bf.npy"), zeros({2}, {.dtype = bfloat16, .device = Device::cpu()})), TypeError);
  EXPECT_THROW(save_npy(dir.file("u.npy"), Tensor()), ValueError);
}

TEST(Npz, ReadsArchivesWrittenTheNumpyWay) {
  ScratchDir dir;
  for (const auto* fixture : {&kNpzStored, &kNpzDeflated}) {
    const auto arrays = load_npz(dir.write("f.npz", *fixture));
    ASSERT_EQ(arrays.size(), 2u);
    const Tensor& a = arrays.at("a");
    EXPECT_EQ(a.shape(), Shape({2, 3}));
    const auto av = a.to_vector<float>();
    EXPECT_EQ(av[0], 0.5f);
    EXPECT_EQ(av[2], 2.25f);
    EXPECT_TRUE(std::isinf(av[4]));
    EXPECT_TRUE(std::signbit(av[5]));
    EXPECT_EQ(arrays.at("b").to_vector<std::int64_t>(), (std::vector<std::int64_t>{-7, 0, std::int64_t{1} << 40}));
  }
}

TEST(Npz, RoundTrips) {
  ScratchDir dir;
  const std::map<std::string, Tensor> arrays = {
      {"x", from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2})},
      {"y", from_vector<std::int64_t>({0, 9, 4}, {3})},
      {"empty", zeros({0}, {.dtype = uint8, .device = Device::cpu()})},
  };
  save_npz(dir.file("a.npz"), arrays);
  const auto back = load_npz(dir.file("a.npz"));
  ASSERT_EQ(back.size(), 3u);
  for (const auto& [name, t] : arrays) expect_same_bits(back.at(name), t);
}

TEST(NpzMalformed, TruncatedArchive) {
  ScratchDir dir;
  for (std::size_t keep : {kNpzStored.size() - 1, kNpzStored.size() / 2, std::size_t{10}}) {
    const Bytes cut(kNpzStored.begin(), kNpzStored.begin() + static_cast<std::ptrdiff_t>(keep));
    const auto p = dir.write("c.npz", cut);
    EXPECT_FORMAT_ERROR(load_npz(p), p, "end of central directory");
  }
}

TEST(NpzMalformed, CrcMismatchNamesTheMember) {
  ScratchDir dir;
  Bytes b = kNpzStored;
  // The last element byte of "a.npy" (-0.0f's sign byte): a.npy's data ends where the
  // second local header ("PK\3\4") begins.
  std::size_t second = 4;
  while (!(b[second] == 'P' && b[second + 1] == 'K' && b[second + 2] == 3 && b[second + 3] == 4)) ++second;
  b[second - 1] ^= 0x80;
  const auto p = dir.write("crc.npz", b);
  EXPECT_FORMAT_ERROR(load_npz(p), p, "a.npy", "CRC-32");
}

TEST(NpzMalformed, DirectoryFieldsOutOfRange) {
  ScratchDir dir;
  // The end record is the last 22 bytes; its directory offset is at +16.
  Bytes b = kNpzStored;
  const std::size_t end = b.size() - 22;
  data::store_u32_le(b.data() + end + 16, 0x7fffffff);
  const auto p = dir.write("off.npz", b);
  EXPECT_FORMAT_ERROR(load_npz(p), p, "central directory offset");
  // An entry count that cannot fit in the directory.
  Bytes c = kNpzStored;
  data::store_u16_le(c.data() + end + 8, 5000);
  data::store_u16_le(c.data() + end + 10, 5000);
  const auto q = dir.write("count.npz", c);
  EXPECT_FORMAT_ERROR(load_npz(q), q, "entry count");
}

TEST(NpzMalformed, DeclaredSizeBeyondWhatDeflateCanProduce) {
  ScratchDir dir;
  Bytes b = kNpzDeflated;
  // The first central header: its uncompressed size field is at +24.
  std::size_t cd = 0;
  while (!(b[cd] == 'P' && b[cd + 1] == 'K' && b[cd + 2] == 1 && b[cd + 3] == 2)) ++cd;
  data::store_u32_le(b.data() + cd + 24, 0xfffffff0u);
  const auto p = dir.write("bomb.npz", b);
  EXPECT_FORMAT_ERROR(load_npz(p), p, "a.npy", "more than deflate can produce");
}

TEST(NpzMalformed, MembersThatAreNotNpy) {
  ScratchDir dir;
  const Bytes zip = data::write_zip({{"readme.txt", Bytes{'h', 'i'}}});
  const auto p = dir.write("t.npz", zip);
  EXPECT_FORMAT_ERROR(load_npz(p), p, "readme.txt", "not a .npy member");
  const Bytes bad = data::write_zip({{"x.npy", Bytes{1, 2, 3}}});
  const auto q = dir.write("b.npz", bad);
  EXPECT_FORMAT_ERROR(load_npz(q), q + ": x.npy", "magic");
}

TEST(Zip, WriterRejectsDuplicateAndEmptyNames) {
  EXPECT_THROW(data::write_zip({{"a", {}}, {"a", {}}}), ValueError);
  EXPECT_THROW(data::write_zip({{"", {}}}), ValueError);
}

}  // namespace
}  // namespace kiln::test
