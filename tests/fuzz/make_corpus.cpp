// Writes the seed corpus of the fuzz targets: one or more valid files of each format
// (the fuzzer mutates from there, reaching deep paths quickly). Usage: make_corpus <dir>;
// creates <dir>/{idx,cifar,npy,npz}/.
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "../training/data_npz_fixtures.h"
#include "kiln/training/data/formats.h"
#include "kiln/training/data/zip.h"

namespace {

using kiln::data::Bytes;
namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, const Bytes& bytes) {
  fs::create_directories(dir);
  kiln::data::write_file_atomic((dir / name).string(), bytes);
}

Bytes idx(std::uint8_t type, std::initializer_list<std::uint32_t> dims, std::size_t item) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  std::size_t n = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
    n *= d;
  }
  for (std::size_t i = 0; i < n * item; ++i) b.push_back(static_cast<std::uint8_t>(i * 31));
  return b;
}

Bytes gzip(const Bytes& raw) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&zs, raw.size()) + 32);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <dir>\n");
    return 2;
  }
  const fs::path root = argv[1];
  write(root / "idx", "images", idx(0x08, {3, 4, 4}, 1));
  write(root / "idx", "labels", idx(0x08, {5}, 1));
  write(root / "idx", "floats", idx(0x0D, {2, 3}, 4));
  write(root / "idx", "doubles", idx(0x0E, {2}, 8));
  write(root / "idx", "images.gz", gzip(idx(0x08, {2, 5, 5}, 1)));
  Bytes cifar10, cifar100;
  for (int r = 0; r < 2; ++r) {
    cifar10.push_back(static_cast<std::uint8_t>(r + 3));
    cifar100.push_back(static_cast<std::uint8_t>(r + 1));
    cifar100.push_back(static_cast<std::uint8_t>(r + 50));
    for (int i = 0; i < 3072; ++i) {
      cifar10.push_back(static_cast<std::uint8_t>(i));
      cifar100.push_back(static_cast<std::uint8_t>(i * 3));
    }
  }
  write(root / "cifar", "cifar10.bin", cifar10);
  write(root / "cifar", "cifar100.bin", cifar100);
  const Bytes f32(4 * 6, 0x3f), i64(8 * 2, 1), u8(7, 200), b1 = {0, 1, 1};
  const Bytes npy_f32 = kiln::data::npy_bytes(kiln::DType::float32, kiln::Shape({2, 3}), f32);
  const Bytes npy_i64 = kiln::data::npy_bytes(kiln::DType::int64, kiln::Shape({2}), i64);
  write(root / "npy", "f32.npy", npy_f32);
  write(root / "npy", "i64.npy", npy_i64);
  write(root / "npy", "u8.npy", kiln::data::npy_bytes(kiln::DType::uint8, kiln::Shape({7}), u8));
  write(root / "npy", "b1.npy", kiln::data::npy_bytes(kiln::DType::bool_, kiln::Shape({3, 1}), b1));
  write(root / "npy", "scalar.npy", kiln::data::npy_bytes(kiln::DType::float64, kiln::Shape{}, Bytes(8, 0)));
  write(root / "npz", "stored.npz", kiln::data::write_zip({{"x.npy", npy_f32}, {"y.npy", npy_i64}}));
  write(root / "npz", "numpy_stored.npz", kiln::test::kNpzStored);
  write(root / "npz", "numpy_deflated.npz", kiln::test::kNpzDeflated);
  return 0;
}
