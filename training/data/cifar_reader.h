// CifarReader: a Reader (loader.h) that reads CIFAR-10/100 records on demand from the
// binary batch files instead of loading them whole, for Dataset(reader) pipelines. Each
// gather reads just the requested 3073/3074-byte records with pread, so one reader may
// serve several loaders and threads at once.
#pragma once

#include <string>
#include <vector>

#include "kiln/training/data/formats.h"
#include "kiln/training/data/loader.h"
#include "kiln/training/data/readers.h"

namespace kiln::data {

class CifarReader final : public Reader {
 public:
  // The files' examples, in order. Each file's size must be a positive multiple of the
  // record (FormatError naming it, checked here without reading the files); IOError
  // when one cannot be opened. Labels are range-checked as records are read.
  explicit CifarReader(const std::vector<std::string>& paths,
                       CifarVariant variant = CifarVariant::cifar10,
                       CifarLabels labels = CifarLabels::fine);

  std::int64_t size() const override { return size_; }
  // x uint8 (B, 32, 32, 3) NHWC, y int64 (B,), as cifar10::load_data gives them.
  Batch gather(std::span<const std::int64_t> indices) const override;

 private:
  // An open file descriptor, closed with its owner. Move-only.
  class Fd {
   public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd();
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&&) = delete;
    Fd(const Fd&) = delete;
    int get() const { return fd_; }

   private:
    int fd_;
  };
  struct File {
    std::string path;
    Fd fd;
    std::int64_t first = 0;  // index of its first example
    std::int64_t count = 0;
  };
  std::vector<File> files_;
  CifarVariant variant_;
  int label_index_;
  std::int64_t size_ = 0;
};

}  // namespace kiln::data
