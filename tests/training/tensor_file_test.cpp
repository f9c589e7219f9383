// The safetensors file format (training/tensor_file.h): bit-exact round trips of every
// dtype, the byte layout the spec fixes, hostile files (truncated at every byte, corrupt
// JSON, offsets out of range / overlapping / leaving gaps, unknown dtypes, sizes that do
// not match the shape, fuzzed header bytes) that must end in a FormatError naming the file
// and the field, and the atomic write (no partial file after a failed write).
#include "kiln/training/tensor_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "kiln/core/error.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// A scratch folder unique to this process, removed at the end of each test.
class TensorFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_tensor_file_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  fs::path path(const std::string& name) const { return dir_ / name; }
  fs::path dir_;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header text (padded here only when `pad`) and raw data bytes.
std::string raw_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<std::uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  return out + header + data;
}

// The bytes of a host tensor (made contiguous).
std::string tensor_bytes(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  return {static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.nbytes())};
}

// The FormatError message reading `p` gives; fails the test on success or another error.
std::string format_error(const fs::path& p) {
  try {
    (void)read_tensor_file(p);
  } catch (const FormatError& e) {
    return e.message();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a FormatError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected a FormatError, the file was read";
  return "";
}

std::vector<std::pair<std::string, Tensor>> every_dtype() {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float denormal = std::numeric_limits<float>::denorm_min();
  return {
      {"f32", from_vector(std::vector<float>{1.5f, -0.0f, inf, -inf, nan, denormal, 3.0e38f}, {7})},
      {"f64", from_vector(std::vector<double>{1.0 / 3.0, -2.5e-300, std::numeric_limits<double>::infinity()}, {3, 1})},
      {"f16", from_vector(std::vector<float>{0.1f, -65504.0f, 6.0e-8f, nan}, {2, 2}).to(DType::float16)},
      {"bf16", from_vector(std::vector<float>{0.1f, -3.0e38f, inf, 1.0e-38f, 7.0f}, {5}).to(DType::bfloat16)},
      {"i64", from_vector(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), -1, 0,
                                                    std::numeric_limits<std::int64_t>::max()},
                          {2, 2})},
      {"i32", from_vector(std::vector<std::int32_t>{-7, 1 << 30, 3}, {3})},
      {"u8", from_vector(std::vector<std::uint8_t>{0, 255, 17}, {1, 3})},
      {"bool", from_vector(std::vector<std::uint8_t>{1, 0, 1}, {3}).to(DType::bool_)},
      {"scalar", from_vector(std::vector<double>{42.0}, Shape{})},
      {"empty", zeros({0, 3})},
      // A non-contiguous view: written row-major.
      {"transposed", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).transpose(0, 1)},
  };
}

TEST_F(TensorFileTest, EveryDTypeRoundTripsBitExactly) {
  const auto tensors = every_dtype();
  write_tensor_file(path("all.safetensors"), tensors, {{"format", "test"}, {"note", "\"quoted\" \xC3\xA9"}});
  const TensorFile file = read_tensor_file(path("all.safetensors"));
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, want] = tensors[i];
    EXPECT_EQ(file.tensors[i].first, name);  // file order is the order given
    const Tensor got = file.find(name);
    ASSERT_TRUE(got.defined()) << name;
    EXPECT_EQ(got.dtype(), want.dtype()) << name;
    EXPECT_EQ(got.shape(), want.shape()) << name;
    EXPECT_EQ(tensor_bytes(got), tensor_bytes(want)) << name << " differs in its bytes";
  }
  EXPECT_EQ(file.metadata.at("format"), "test");
  EXPECT_EQ(file.metadata.at("note"), "\"quoted\" \xC3\xA9");
  EXPECT_FALSE(file.find("missing").defined());
}

// The layout the spec fixes, read by hand: 8-byte little-endian header length, a JSON
// header padded with spaces to 8 bytes, data_offsets relative to the end of the header.
TEST_F(TensorFileTest, LayoutFollowsTheSpec) {
  const Tensor a = from_vector(std::vector<float>{1, 2, 3}, {3});
  const Tensor b = from_vector(std::vector<std::int64_t>{-5, 6}, {1, 2});
  write_tensor_file(path("x.safetensors"), {{"a", a}, {"b", b}}, {{"k", "v"}});
  const std::string bytes = read_bytes(path("x.safetensors"));
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 12 + 16);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));  // padded with spaces only
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["k"], "v");
  EXPECT_EQ(j["a"]["dtype"], "F32");
  EXPECT_EQ(j["a"]["shape"], nlohmann::json::array({3}));
  EXPECT_EQ(j["b"]["dtype"], "I64");
  EXPECT_EQ(j["b"]["shape"], nlohmann::json::array({1, 2}));
  const auto ob = j["b"]["data_offsets"].get<std::vector<std::uint64_t>>();
  const auto oa = j["a"]["data_offsets"].get<std::vector<std::uint64_t>>();
  EXPECT_EQ(bytes.substr(8 + n + oa[0], oa[1] - oa[0]), tensor_bytes(a));
  EXPECT_EQ(bytes.substr(8 + n + ob[0], ob[1] - ob[0]), tensor_bytes(b));
}

TEST_F(TensorFileTest, TruncatedAtEveryByteIsAFormatError) {
  write_tensor_file(path("full"), {{"w", from_vector(std::vector<float>{1, 2, 3}, {3})},
                                   {"b", from_vector(std::vector<std::int64_t>{7}, {1})},
                                   {"z", zeros({0})}},
                    {{"format", "test"}});
  const std::string bytes = read_bytes(path("full"));
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    write_bytes(path("cut"), bytes.substr(0, cut));
    const std::string msg = format_error(path("cut"));
    EXPECT_NE(msg.find(path("cut").string()), std::string::npos) << "cut " << cut << ": " << msg;
  }
  // One byte too many is as wrong as one too few.
  write_bytes(path("long"), bytes + "x");
  EXPECT_NE(format_error(path("long")).find("bytes after the last tensor"), std::string::npos);
}

TEST_F(TensorFileTest, HeaderLengthPastTheFileIsRejectedBeforeAllocating) {
  for (std::uint64_t len : {std::uint64_t{1} << 62, ~std::uint64_t{0}, std::uint64_t{9}}) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
    write_bytes(path("long_header"), bytes + "{}");
    EXPECT_NE(format_error(path("long_header")).find("header length"), std::string::npos) << len;
  }
}

TEST_F(TensorFileTest, CorruptJsonHeaderIsAFormatError) {
  write_bytes(path("a"), raw_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], ", std::string(4, '\0')));
  EXPECT_NE(format_error(path("a")).find("not valid JSON"), std::string::npos);
  write_bytes(path("b"), raw_file("[1, 2]", ""));
  EXPECT_NE(format_error(path("b")).find("not a JSON object"), std::string::npos);
  write_bytes(path("c"), raw_file("{\"w\": \"F32\"}", ""));
  EXPECT_NE(format_error(path("c")).find("tensor 'w' is not an object"), std::string::npos);
  write_bytes(path("d"), raw_file("{\"__metadata__\": {\"k\": 3}}", ""));
  EXPECT_NE(format_error(path("d")).find("__metadata__"), std::string::npos);
  write_bytes(path("e"), raw_file("\xFF\xFE{}", ""));
  EXPECT_NE(format_error(path("e")).find("not valid JSON"), std::string::npos);
}

// One bad header entry, the error it must give (tensor name and field).
struct BadEntry {
  const char* header;
  std::size_t data_bytes;
  const char* expect;  // a part of the message
};

TEST_F(TensorFileTest, BadEntriesNameTheFileTheTensorAndTheField) {
  const BadEntry cases[] = {
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1000]}})", 8,
       "\"data_offsets\" [0, 1000) out of range"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, "out of range"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8, "\"data_offsets\""},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8]}})", 8, "\"data_offsets\""},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8, "\"data_offsets\""},
      {R"({"w": {"dtype": "F32", "shape": [2]}})", 8, "\"data_offsets\""},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12, "overlap"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8, "overlap"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", 12, "gap"},
      {R"({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", 2, "\"dtype\" 'F8_E4M3'"},
      {R"({"w": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}})", 8, "\"dtype\" 'f32'"},
      {R"({"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", 8, "\"dtype\""},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 16, "needs 12 bytes"},
      {R"({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}})", 16, "needs 16 bytes"},
      {R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, "\"shape\""},
      {R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8, "\"shape\""},
      {R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", 8, "\"shape\""},
      {R"({"w": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,2], "data_offsets": [0, 8]}})", 8, "rank 9"},
      {R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8, "more bytes"},
      {R"({"w": {"dtype": "U8", "shape": [9223372036854775807, 3], "data_offsets": [0, 8]}})", 8, "more bytes"},
      {R"({"w": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})", 0, "more bytes than the data section"},
  };
  for (const BadEntry& c : cases) {
    write_bytes(path("bad"), raw_file(c.header, std::string(c.data_bytes, '\0')));
    const std::string msg = format_error(path("bad"));
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.header << "\n  gave: " << msg;
    EXPECT_NE(msg.find(path("bad").string()), std::string::npos) << msg;
  }
  // A zero extent makes any shape empty, even one whose other extents overflow a product.
  write_bytes(path("zero"), raw_file(R"({"w": {"dtype": "F32", "shape": [0, 4611686018427387904, 8],
                                          "data_offsets": [0, 0]}})", ""));
  EXPECT_EQ(read_tensor_file(path("zero")).find("w").numel(), 0);
  // BOOL bytes other than 0 and 1 are not booleans.
  write_bytes(path("bool"), raw_file(R"({"w": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})",
                                     std::string("\x01\x02", 2)));
  EXPECT_NE(format_error(path("bool")).find("neither 0 nor 1"), std::string::npos);
}

// Every byte of the length and the header replaced by bytes JSON cares about: the read
// either succeeds (the change kept the file valid) or ends in a FormatError.
TEST_F(TensorFileTest, FuzzedHeaderBytesNeverEndInAnythingButAFormatError) {
  write_tensor_file(path("seed"), {{"a", from_vector(std::vector<float>{1, 2}, {2})},
                                   {"b", from_vector(std::vector<std::uint8_t>{1, 0}, {2}).to(DType::bool_)}},
                    {{"m", "x"}});
  const std::string bytes = read_bytes(path("seed"));
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  int read_ok = 0, rejected = 0;
  for (std::size_t pos = 0; pos < 8 + n; ++pos) {
    for (const char c : {'}', '"', '9', '-', '\0', '\xFF'}) {
      std::string mutated = bytes;
      if (mutated[pos] == c) continue;
      mutated[pos] = c;
      write_bytes(path("fuzz"), mutated);
      try {
        (void)read_tensor_file(path("fuzz"));
        ++read_ok;
      } catch (const FormatError&) {
        ++rejected;
      } catch (const std::exception& e) {
        FAIL() << "byte " << pos << " set to " << static_cast<int>(c) << ": " << e.what();
      }
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(read_ok, 0);  // e.g. a metadata letter or trailing padding changed
}

TEST_F(TensorFileTest, MissingFilesAndFoldersAreIOErrors) {
  EXPECT_THROW(read_tensor_file(path("nope")), IOError);
  EXPECT_THROW(read_tensor_file(dir_), IOError);
  write_bytes(path("plain_file"), "x");
  EXPECT_THROW(write_tensor_file(path("plain_file") / "sub" / "w.safetensors", {{"a", zeros({1})}}), IOError);
  EXPECT_THROW(write_tensor_file(path("d"), {{"a", zeros({1})}, {"a", zeros({1})}}), ValueError);
  EXPECT_THROW(write_tensor_file(path("d"), {{"__metadata__", zeros({1})}}), ValueError);
}

// Files in the folder besides `keep`: any leftover temporary shows here.
std::vector<std::string> other_files(const fs::path& dir, const std::string& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() != keep) out.push_back(e.path().filename().string());
  }
  return out;
}

// A write that fails half-way (the file size limit, which holds even for root) leaves the
// old file as it was and no temporary behind.
TEST_F(TensorFileTest, FailedWriteLeavesTheOldFileAndNoPartialFile) {
  const fs::path p = path("ckpt.safetensors");
  const Tensor old_value = from_vector(std::vector<float>{1, 2, 3}, {3});
  write_tensor_file(p, {{"w", old_value}});
  const std::string old_bytes = read_bytes(p);

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);  // else exceeding the limit kills the process
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw_io = false;
  try {
    write_tensor_file(p, {{"w", zeros({100000})}});
  } catch (const IOError&) {
    threw_io = true;
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous);
  EXPECT_TRUE(threw_io);
  EXPECT_EQ(read_bytes(p), old_bytes);
  EXPECT_EQ(other_files(dir_, "ckpt.safetensors"), std::vector<std::string>{});
  // And a write that succeeds replaces the file whole.
  write_tensor_file(p, {{"w", zeros({5})}});
  EXPECT_EQ(read_tensor_file(p).find("w").numel(), 5);
  EXPECT_EQ(other_files(dir_, "ckpt.safetensors"), std::vector<std::string>{});
}

TEST_F(TensorFileTest, ReadOnlyFolderIsAnIOErrorAndLeavesNothing) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root, which may write into a read-only folder";
  const fs::path ro = path("ro");
  fs::create_directories(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(write_tensor_file(ro / "w.safetensors", {{"w", zeros({3})}}), IOError);
  fs::permissions(ro, fs::perms::owner_all);
  EXPECT_TRUE(fs::is_empty(ro));
}

}  // namespace
}  // namespace kiln
