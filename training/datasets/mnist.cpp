// MNIST from IDX files (raw or .gz); see mnist.h for the behaviour without train-*.
#include "kiln/training/datasets/mnist.h"

#include <filesystem>
#include <optional>

#include "kiln/training/data/readers.h"

namespace kiln::datasets::mnist {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kSide = 28;
constexpr std::int64_t kClasses = 10;

// <dir>/<name> or <dir>/<name>.gz, the raw file first; nullopt when neither exists.
std::optional<std::string> find(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {name, name + ".gz"}) {
    const fs::path p = fs::path(dir) / candidate;
    if (fs::is_regular_file(p)) return p.string();
  }
  return std::nullopt;
}

std::string require(const std::string& dir, const std::string& name) {
  auto path = find(dir, name);
  KILN_CHECK(path.has_value(), IOError, "mnist::load_data: ", dir, " has no ", name, " (or ", name,
             ".gz)");
  return *path;
}

// Images (N, 28, 28) uint8 and labels (N,) in [0, 10) as int64.
Split read_split(const std::string& images_path, const std::string& labels_path) {
  Tensor x = data::read_idx(images_path);
  KILN_FORMAT_CHECK(x.dtype() == uint8 && x.ndim() == 3 && x.size(1) == kSide && x.size(2) == kSide,
                    images_path, "dimensions", "expected uint8 images (N, 28, 28), got ", x.dtype(),
                    " ", x.shape());
  const Tensor labels = data::read_idx(labels_path);
  KILN_FORMAT_CHECK(labels.dtype() == uint8 && labels.ndim() == 1, labels_path, "dimensions",
                    "expected uint8 labels (N,), got ", labels.dtype(), " ", labels.shape());
  KILN_FORMAT_CHECK(labels.size(0) == x.size(0), labels_path, "dimensions", labels.size(0),
                    " labels for ", x.size(0), " images in ", images_path);
  Tensor y = empty({labels.size(0)}, {.dtype = int64, .device = Device::cpu()});
  const std::uint8_t* src = labels.data<std::uint8_t>();
  std::int64_t* dst = y.data<std::int64_t>();
  for (std::int64_t i = 0; i < labels.size(0); ++i) {
    KILN_FORMAT_CHECK(src[i] < kClasses, labels_path, "data", "label ", static_cast<int>(src[i]),
                      " at index ", i, " is outside [0, 10)");
    dst[i] = src[i];
  }
  return {std::move(x), std::move(y)};
}

}  // namespace

bool has_training_set(const std::string& dir) {
  return find(dir, "train-images-idx3-ubyte").has_value() &&
         find(dir, "train-labels-idx1-ubyte").has_value();
}

TrainTest load_data(const std::string& dir) {
  TrainTest out;
  // Each path is resolved before the next, so the first missing file is the one named.
  const std::string test_images = require(dir, "t10k-images-idx3-ubyte");
  const std::string test_labels = require(dir, "t10k-labels-idx1-ubyte");
  out.test = read_split(test_images, test_labels);
  const auto train_images = find(dir, "train-images-idx3-ubyte");
  const auto train_labels = find(dir, "train-labels-idx1-ubyte");
  if (train_images || train_labels) {
    // One without the other is an incomplete download, not the test-only layout.
    const std::string images = require(dir, "train-images-idx3-ubyte");
    const std::string labels = require(dir, "train-labels-idx1-ubyte");
    out.train = read_split(images, labels);
  } else {
    out.train = {empty({0, kSide, kSide}, {.dtype = uint8, .device = Device::cpu()}),
                 empty({0}, {.dtype = int64, .device = Device::cpu()})};
  }
  return out;
}

}  // namespace kiln::datasets::mnist
