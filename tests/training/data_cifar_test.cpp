// CIFAR-10/100 binary batch reader and the cifar10/cifar100 load_data on hand-built
// files: CHW -> HWC layout, labels, record-size and label-range validation.
#include <algorithm>
#include <filesystem>

#include "data_test_util.h"
#include "kiln/training/data/cifar_reader.h"
#include "kiln/training/data/loader.h"
#include "kiln/training/data/readers.h"
#include "kiln/training/datasets/cifar.h"

namespace kiln::test {
namespace {

// A pixel value that differs by channel, row and column (mod 256).
std::uint8_t pixel(int c, int r, int x) { return static_cast<std::uint8_t>(c * 80 + r * 3 + x * 5 + 1); }
std::uint8_t pixel2(int c, int r, int x) { return static_cast<std::uint8_t>(255 - pixel(c, r, x)); }

Bytes cifar10_file(std::initializer_list<std::uint8_t> labels) {
  Bytes b;
  int k = 0;
  for (auto l : labels) append_cifar_record(b, {l}, k++ % 2 ? pixel2 : pixel);
  return b;
}

TEST(CifarReader, Cifar10RecordsBecomeNhwcImages) {
  ScratchDir dir;
  const auto batch = data::read_cifar10_batch(dir.write("data_batch_1.bin", cifar10_file({3, 9})));
  ASSERT_EQ(batch.x.shape(), Shape({2, 32, 32, 3}));
  EXPECT_EQ(batch.x.dtype(), uint8);
  EXPECT_EQ(batch.y.to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{3, 9}));
  for (int r : {0, 17, 31}) {
    for (int x : {0, 5, 31}) {
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(batch.x.at<int>({0, r, x, c}), pixel(c, r, x)) << r << "," << x << "," << c;
        EXPECT_EQ(batch.x.at<int>({1, r, x, c}), pixel2(c, r, x)) << r << "," << x << "," << c;
      }
    }
  }
}

TEST(CifarReader, Cifar100FineAndCoarseLabels) {
  ScratchDir dir;
  Bytes b;
  append_cifar_record(b, {19, 99}, pixel);
  append_cifar_record(b, {0, 42}, pixel2);
  const auto path = dir.write("train.bin", b);
  EXPECT_EQ(data::read_cifar100_batch(path).y.to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{99, 42}));
  const auto coarse = data::read_cifar100_batch(path, data::CifarLabels::coarse);
  EXPECT_EQ(coarse.y.to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{19, 0}));
  EXPECT_EQ(coarse.x.at<int>({1, 2, 3, 1}), pixel2(1, 2, 3));
}

TEST(CifarReaderMalformed, SizeNotAMultipleOfTheRecord) {
  ScratchDir dir;
  Bytes b = cifar10_file({1, 2});
  b.pop_back();
  const auto p = dir.write("cut.bin", b);
  EXPECT_FORMAT_ERROR(data::read_cifar10_batch(p), p, "records", "3073");
  // A CIFAR-100 file (3074-byte records) read as CIFAR-10.
  Bytes c100;
  append_cifar_record(c100, {1, 2}, pixel);
  const auto q = dir.write("c100.bin", c100);
  EXPECT_FORMAT_ERROR(data::read_cifar10_batch(q), q, "records");
  EXPECT_FORMAT_ERROR(data::read_cifar10_batch(dir.write("empty.bin", {})), "empty.bin", "records", "empty");
}

TEST(CifarReaderMalformed, LabelOutOfRange) {
  ScratchDir dir;
  const auto p = dir.write("l.bin", cifar10_file({1, 10}));
  EXPECT_FORMAT_ERROR(data::read_cifar10_batch(p), p, "label", "record 1", "10");
  Bytes b;
  append_cifar_record(b, {20, 5}, pixel);
  const auto q = dir.write("coarse.bin", b);
  EXPECT_FORMAT_ERROR(data::read_cifar100_batch(q), q, "coarse label", "20");
  Bytes f;
  append_cifar_record(f, {2, 100}, pixel);
  const auto r = dir.write("fine.bin", f);
  EXPECT_FORMAT_ERROR(data::read_cifar100_batch(r), r, "fine label", "100");
}

TEST(CifarLoadData, Cifar10ConcatenatesFiveBatchesAndFindsTheSubfolder) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.file("cifar-10-batches-bin"));
  for (int i = 1; i <= 5; ++i) {
    dir.write("cifar-10-batches-bin/data_batch_" + std::to_string(i) + ".bin",
              cifar10_file({static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i + 1)}));
  }
  dir.write("cifar-10-batches-bin/test_batch.bin", cifar10_file({0}));
  for (const std::string& root : {dir.str(), dir.file("cifar-10-batches-bin")}) {
    const auto data = datasets::cifar10::load_data(root);
    EXPECT_EQ(data.train.x.shape(), Shape({10, 32, 32, 3}));
    EXPECT_EQ(data.train.y.dtype(), int64);
    EXPECT_EQ(data.train.y.to_vector<std::int64_t>(),
              (std::vector<std::int64_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6}));
    EXPECT_EQ(data.train.x.at<int>({9, 4, 4, 2}), pixel2(2, 4, 4));
    EXPECT_EQ(data.test.x.shape(), Shape({1, 32, 32, 3}));
  }
}

TEST(CifarLoadData, MissingBatchIsIOErrorNamingIt) {
  ScratchDir dir;
  dir.write("test_batch.bin", cifar10_file({0}));
  dir.write("data_batch_1.bin", cifar10_file({0}));
  try {
    datasets::cifar10::load_data(dir.str());
    ADD_FAILURE() << "expected IOError";
  } catch (const IOError& e) {
    EXPECT_NE(e.message().find("data_batch_2.bin"), std::string::npos) << e.message();
  }
  EXPECT_THROW(datasets::cifar10::load_data(dir.file("nowhere")), IOError);
}

TEST(CifarLoadData, Cifar100LabelModes) {
  ScratchDir dir;
  Bytes b;
  append_cifar_record(b, {7, 77}, pixel);
  dir.write("train.bin", b);
  dir.write("test.bin", b);
  EXPECT_EQ(datasets::cifar100::load_data(dir.str()).train.y.to_vector<std::int64_t>(),
            std::vector<std::int64_t>{77});
  EXPECT_EQ(datasets::cifar100::load_data(dir.str(), "coarse").test.y.to_vector<std::int64_t>(),
            std::vector<std::int64_t>{7});
  EXPECT_THROW(datasets::cifar100::load_data(dir.str(), "medium"), ValueError);
}

TEST(CifarReaderLazy, GathersRecordsAcrossFilesLikeTheEagerReader) {
  ScratchDir dir;
  const auto a = dir.write("a.bin", cifar10_file({1, 2, 3}));
  const auto b = dir.write("b.bin", cifar10_file({4, 5}));
  auto reader = std::make_shared<data::CifarReader>(std::vector<std::string>{a, b});
  EXPECT_EQ(reader->size(), 5);
  const data::Batch got = reader->gather(std::vector<std::int64_t>{4, 0, 3});
  EXPECT_EQ(got.y.to_vector<std::int64_t>(), (std::vector<std::int64_t>{5, 1, 4}));
  const auto eager_b = data::read_cifar10_batch(b);
  const auto eager_a = data::read_cifar10_batch(a);
  EXPECT_EQ(got.x[0].to_vector<int>(), eager_b.x[1].to_vector<int>());
  EXPECT_EQ(got.x[1].to_vector<int>(), eager_a.x[0].to_vector<int>());
  EXPECT_EQ(got.x[2].to_vector<int>(), eager_b.x[0].to_vector<int>());
  // Through a loader with prefetch: every example once.
  data::DataLoader loader(data::Dataset(reader), {.batch_size = 2, .shuffle = true, .seed = 3,
                                                  .device = Device::cpu(), .prefetch = 2});
  std::vector<std::int64_t> labels;
  loader.begin_epoch(0);
  while (auto batch = loader.next()) {
    for (auto v : batch->y.to_vector<std::int64_t>()) labels.push_back(v);
  }
  std::sort(labels.begin(), labels.end());
  EXPECT_EQ(labels, (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  EXPECT_THROW(reader->gather(std::vector<std::int64_t>{5}), IndexError);
}

TEST(CifarReaderLazy, ValidatesSizesUpFrontAndLabelsOnRead) {
  ScratchDir dir;
  Bytes cut = cifar10_file({1});
  cut.pop_back();
  const auto p = dir.write("cut.bin", cut);
  EXPECT_FORMAT_ERROR(data::CifarReader({p}), p, "records");
  EXPECT_THROW(data::CifarReader({dir.file("missing.bin")}), IOError);
  const auto q = dir.write("bad.bin", cifar10_file({1, 12}));
  data::CifarReader reader({q});
  EXPECT_NO_THROW(reader.gather(std::vector<std::int64_t>{0}));
  EXPECT_FORMAT_ERROR(reader.gather(std::vector<std::int64_t>{1}), q, "label", "12");
  Bytes c100;
  append_cifar_record(c100, {3, 33}, pixel);
  const auto r = dir.write("c100.bin", c100);
  data::CifarReader coarse({r}, data::CifarVariant::cifar100, data::CifarLabels::coarse);
  EXPECT_EQ(coarse.gather(std::vector<std::int64_t>{0}).y.item<std::int64_t>(), 3);
}

}  // namespace
}  // namespace kiln::test
