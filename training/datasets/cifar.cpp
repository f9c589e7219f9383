// CIFAR-10 and CIFAR-100 binary batches into Keras-shaped splits.
#include "kiln/training/datasets/cifar.h"

#include <cstring>
#include <filesystem>
#include <vector>

#include "kiln/training/data/readers.h"

namespace kiln::datasets {
namespace {

namespace fs = std::filesystem;

// `dir` itself when it holds `marker`, else dir/<subdir> when that does.
std::string resolve(const std::string& dir, const std::string& subdir, const std::string& marker,
                    const char* op) {
  if (fs::is_regular_file(fs::path(dir) / marker)) return dir;
  const fs::path nested = fs::path(dir) / subdir;
  KILN_CHECK(fs::is_regular_file(nested / marker), IOError, op, ": neither ", dir, " nor ",
             nested.string(), " holds ", marker);
  return nested.string();
}

std::string require(const std::string& dir, const std::string& name, const char* op) {
  const fs::path p = fs::path(dir) / name;
  KILN_CHECK(fs::is_regular_file(p), IOError, op, ": ", dir, " has no ", name);
  return p.string();
}

// Concatenates batches along N, widening the labels to int64.
Split concat(const std::vector<data::CifarBatch>& parts) {
  std::int64_t n = 0;
  for (const auto& p : parts) n += p.x.size(0);
  Split out{empty({n, data::kCifarSide, data::kCifarSide, 3}, {.dtype = uint8, .device = Device::cpu()}),
            empty({n}, {.dtype = int64, .device = Device::cpu()})};
  auto* x = out.x.data<std::uint8_t>();
  auto* y = out.y.data<std::int64_t>();
  for (const auto& p : parts) {
    std::memcpy(x, p.x.data_ptr(), p.x.nbytes());
    x += p.x.nbytes();
    const std::uint8_t* labels = p.y.data<std::uint8_t>();
    for (std::int64_t i = 0; i < p.y.size(0); ++i) *y++ = labels[i];
  }
  return out;
}

}  // namespace

namespace cifar10 {

TrainTest load_data(const std::string& dir) {
  constexpr const char* kOp = "cifar10::load_data";
  const std::string root = resolve(dir, "cifar-10-batches-bin", "test_batch.bin", kOp);
  std::vector<data::CifarBatch> train;
  for (int i = 1; i <= 5; ++i) {
    train.push_back(data::read_cifar10_batch(require(root, "data_batch_" + std::to_string(i) + ".bin", kOp)));
  }
  return {concat(train), concat({data::read_cifar10_batch(require(root, "test_batch.bin", kOp))})};
}

}  // namespace cifar10

namespace cifar100 {

TrainTest load_data(const std::string& dir, const std::string& label_mode) {
  constexpr const char* kOp = "cifar100::load_data";
  KILN_CHECK(label_mode == "fine" || label_mode == "coarse", ValueError, kOp,
             ": label_mode must be \"fine\" or \"coarse\", got \"", label_mode, "\"");
  const auto labels = label_mode == "fine" ? data::CifarLabels::fine : data::CifarLabels::coarse;
  const std::string root = resolve(dir, "cifar-100-binary", "test.bin", kOp);
  return {concat({data::read_cifar100_batch(require(root, "train.bin", kOp), labels)}),
          concat({data::read_cifar100_batch(require(root, "test.bin", kOp), labels)})};
}

}  // namespace cifar100
}  // namespace kiln::datasets
