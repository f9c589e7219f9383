// mnist::load_data on the bundled test set (samples/data/mnist) and on hand-built
// directories: the test-only behaviour, the full layout, missing and malformed files;
// split_at and to_float_images; and the bundled set through a DataLoader.
#include <array>

#include "data_test_util.h"
#include "kiln/training/data/loader.h"
#include "kiln/training/datasets/mnist.h"

#ifndef KILN_SOURCE_DIR
#error "KILN_SOURCE_DIR must name the source root (tests/training/CMakeLists.txt sets it)"
#endif

namespace kiln::test {
namespace {

namespace mnist = datasets::mnist;

const std::string kBundled = std::string(KILN_SOURCE_DIR) + "/samples/data/mnist";

// A tiny MNIST-layout file pair of n images (pixel = i + r + c) and labels i % 10.
void write_split(const ScratchDir& dir, const std::string& prefix, std::uint32_t n, bool gz) {
  Bytes pixels, labels;
  for (std::uint32_t i = 0; i < n; ++i) {
    labels.push_back(static_cast<std::uint8_t>(i % 10));
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) pixels.push_back(static_cast<std::uint8_t>(i + r + c));
  }
  const Bytes images = make_idx(0x08, {n, 28, 28}, pixels);
  const Bytes label_file = make_idx(0x08, {n}, labels);
  const std::string sfx = gz ? ".gz" : "";
  dir.write(prefix + "-images-idx3-ubyte" + sfx, gz ? gzip_bytes(images) : images);
  dir.write(prefix + "-labels-idx1-ubyte" + sfx, gz ? gzip_bytes(label_file) : label_file);
}

TEST(MnistLoadData, BundledTestSetOnlyGivesAnEmptyTrainSplit) {
  const auto data = mnist::load_data(kBundled);
  EXPECT_FALSE(mnist::has_training_set(kBundled));
  EXPECT_EQ(data.train.x.shape(), Shape({0, 28, 28}));
  EXPECT_EQ(data.train.y.shape(), Shape({0}));
  ASSERT_EQ(data.test.x.shape(), Shape({10000, 28, 28}));
  EXPECT_EQ(data.test.x.dtype(), uint8);
  EXPECT_EQ(data.test.y.dtype(), int64);
  const auto y = data.test.y.to_vector<std::int64_t>();
  EXPECT_EQ(std::vector<std::int64_t>(y.begin(), y.begin() + 10),
            (std::vector<std::int64_t>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}));
  // The published class counts of the MNIST test set.
  std::array<int, 10> counts{};
  for (auto v : y) ++counts[static_cast<std::size_t>(v)];
  EXPECT_EQ(counts, (std::array<int, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
  // Digits are dark strokes on a zero background: corners are 0, some pixels are 255.
  const auto x = data.test.x.to_vector<std::uint8_t>();
  EXPECT_EQ(x[0], 0);
  EXPECT_EQ(*std::max_element(x.begin(), x.end()), 255);
}

TEST(MnistLoadData, SplitAndPreprocessTheBundledSet) {
  const auto data = mnist::load_data(kBundled);
  const auto [train, test] = datasets::split_at(data.test, 8000);
  EXPECT_EQ(train.size(), 8000);
  EXPECT_EQ(test.size(), 2000);
  EXPECT_TRUE(test.x.shares_storage(data.test.x));
  EXPECT_EQ(test.y.at<std::int64_t>({0}), data.test.y.at<std::int64_t>({8000}));
  const Tensor f = datasets::to_float_images(test.x);
  EXPECT_EQ(f.shape(), Shape({2000, 28, 28, 1}));
  EXPECT_EQ(f.dtype(), float32);
  const auto v = f.to_vector<float>();
  EXPECT_EQ(*std::max_element(v.begin(), v.end()), 1.0f);
  EXPECT_FLOAT_EQ(f.at<float>({5, 14, 14, 0}), test.x.at<float>({5, 14, 14}) / 255.0f);
  EXPECT_THROW(datasets::to_float_images(f), TypeError);
}

TEST(MnistLoadData, BundledSetThroughALoader) {
  const auto data = mnist::load_data(kBundled);
  data::DataLoader loader(data::Dataset(datasets::to_float_images(data.test.x), data.test.y),
                          {.batch_size = 128, .shuffle = true, .seed = 1, .device = Device::cpu()});
  EXPECT_EQ(loader.size(), 79);
  loader.begin_epoch(0);
  std::int64_t seen = 0;
  while (auto b = loader.next()) {
    EXPECT_EQ(b->x.size(1), 28);
    EXPECT_EQ(b->x.size(3), 1);
    seen += b->x.size(0);
  }
  EXPECT_EQ(seen, 10000);
}

TEST(MnistLoadData, ReadsTheFullLayoutRawOrGzip) {
  for (bool gz : {false, true}) {
    ScratchDir dir;
    write_split(dir, "train", 12, gz);
    write_split(dir, "t10k", 5, !gz);
    EXPECT_TRUE(mnist::has_training_set(dir.str()));
    const auto data = mnist::load_data(dir.str());
    EXPECT_EQ(data.train.x.shape(), Shape({12, 28, 28}));
    EXPECT_EQ(data.train.y.to_vector<std::int64_t>()[11], 1);
    EXPECT_EQ(data.train.x.at<int>({11, 2, 3}), 16);
    EXPECT_EQ(data.test.x.shape(), Shape({5, 28, 28}));
  }
}

TEST(MnistLoadData, MissingFilesAreIOErrorsNamingThem) {
  ScratchDir dir;
  auto expect_io = [&](const std::string& missing) {
    try {
      mnist::load_data(dir.str());
      ADD_FAILURE() << "expected IOError naming " << missing;
    } catch (const IOError& e) {
      EXPECT_NE(e.message().find(missing), std::string::npos) << e.message();
    }
  };
  expect_io("t10k-images-idx3-ubyte");
  write_split(dir, "t10k", 3, true);
  // Train images without their labels: an incomplete download, not the test-only layout.
  write_split(dir, "train", 3, false);
  std::filesystem::remove(dir.file("train-labels-idx1-ubyte"));
  expect_io("train-labels-idx1-ubyte");
}

TEST(MnistLoadData, RejectsWrongShapesCountsAndLabels) {
  ScratchDir dir;
  write_split(dir, "t10k", 4, false);
  dir.write("t10k-labels-idx1-ubyte", make_idx(0x08, {3}, {1, 2, 3}));
  EXPECT_FORMAT_ERROR(mnist::load_data(dir.str()), "t10k-labels-idx1-ubyte", "3 labels for 4 images");
  dir.write("t10k-labels-idx1-ubyte", make_idx(0x08, {4}, {1, 2, 10, 3}));
  EXPECT_FORMAT_ERROR(mnist::load_data(dir.str()), "t10k-labels-idx1-ubyte", "label 10 at index 2");
  dir.write("t10k-images-idx3-ubyte", make_idx(0x08, {4, 28, 27}, Bytes(4 * 28 * 27, 0)));
  EXPECT_FORMAT_ERROR(mnist::load_data(dir.str()), "t10k-images-idx3-ubyte", "dimensions", "(N, 28, 28)");
}

}  // namespace
}  // namespace kiln::test
