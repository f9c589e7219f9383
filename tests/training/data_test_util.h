// Helpers for the data pipeline tests: a scratch directory per test, hand-built IDX and
// CIFAR files, gzip through zlib, and assertions that a call raises FormatError naming
// the file and the field.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>  // getpid

#include "kiln/core/error.h"
#include "kiln/training/data/bytes.h"

namespace kiln::test {

using data::Bytes;

// A fresh directory, removed with its contents when the object goes.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("kiln-data-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
             (info ? info->name() : "x"));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  // Writes bytes to <dir>/name and returns the path.
  std::string write(const std::string& name, const Bytes& bytes) const {
    data::write_file_atomic(file(name), bytes);
    return file(name);
  }

 private:
  std::filesystem::path path_;
};

inline void put_u32_be(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

// An IDX file: magic 00 00 <type> <ndim>, the extents, then `payload` as given.
inline Bytes make_idx(std::uint8_t type, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_u32_be(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// gzip (wrapper and CRC) of `raw`, as gzip(1) and Python's gzip module write it.
inline Bytes gzip_bytes(const Bytes& raw) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, raw.size()) + 32);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A CIFAR record: label bytes then the 3072 image bytes given by f(channel, row, col).
template <class F>
void append_cifar_record(Bytes& b, std::initializer_list<std::uint8_t> labels, F pixel) {
  b.insert(b.end(), labels.begin(), labels.end());
  for (int c = 0; c < 3; ++c)
    for (int r = 0; r < 32; ++r)
      for (int x = 0; x < 32; ++x) b.push_back(pixel(c, r, x));
}

}  // namespace kiln::test

// Expects `stmt` to throw kiln::FormatError whose message contains every given part
// (the file and the field, at least).
#define EXPECT_FORMAT_ERROR(stmt, ...)                                                   \
  do {                                                                                   \
    try {                                                                                \
      stmt;                                                                              \
      ADD_FAILURE() << "expected FormatError from " #stmt;                               \
    } catch (const ::kiln::FormatError& e) {                                             \
      for (const std::string& part : std::initializer_list<std::string>{__VA_ARGS__}) {  \
        EXPECT_NE(e.message().find(part), std::string::npos)                             \
            << "message lacks '" << part << "': " << e.message();                        \
      }                                                                                  \
    }                                                                                    \
  } while (0)
