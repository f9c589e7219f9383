// Dataset and DataLoader on cpu: batching, drop_last, order and determinism with a seed,
// prefetch on and off giving identical batches, epochs restarting mid-way, reader-backed
// datasets, errors surfacing from the prefetching thread, and argument validation.
#include <algorithm>
#include <atomic>
#include <numeric>
#include <set>

#include "data_test_util.h"
#include "kiln/training/data/loader.h"
#include "kiln/training/data/transforms.h"

namespace kiln::test {
namespace {

using data::Batch;
using data::DataLoader;
using data::Dataset;

constexpr Device kCpu = Device::cpu();

// x[i] = (i, i + 0.5) as float32 (N, 2), y[i] = 10 i as int64, w[i] = i / 100.
Dataset numbered(std::int64_t n, bool weights = false) {
  std::vector<float> x;
  std::vector<std::int64_t> y;
  std::vector<float> w;
  for (std::int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(static_cast<float>(i) + 0.5f);
    y.push_back(10 * i);
    w.push_back(static_cast<float>(i) / 100.0f);
  }
  return Dataset(from_vector(x, {n, 2}), from_vector(y, {n}),
                 weights ? from_vector(w, {n}) : Tensor());
}

// The example indices of a batch of a `numbered` dataset, read back from x[:, 0].
std::vector<std::int64_t> ids(const Batch& b) {
  std::vector<std::int64_t> out;
  const auto x = b.x.to_vector<float>();
  for (std::size_t i = 0; i < x.size(); i += 2) out.push_back(static_cast<std::int64_t>(x[i]));
  return out;
}

std::vector<std::vector<std::int64_t>> epoch_ids(DataLoader& loader, std::int64_t epoch) {
  loader.begin_epoch(epoch);
  std::vector<std::vector<std::int64_t>> out;
  while (auto b = loader.next()) out.push_back(ids(*b));
  return out;
}

TEST(Dataset, ValidatesShapes) {
  EXPECT_THROW(Dataset{Tensor()}, ValueError);
  EXPECT_THROW(Dataset{full({}, 1.0, {.device = kCpu})}, ValueError);
  EXPECT_THROW(Dataset(zeros({4, 2}, {.device = kCpu}), zeros({3}, {.device = kCpu})), ShapeError);
  EXPECT_THROW(Dataset(zeros({4, 2}, {.device = kCpu}), Tensor(), zeros({4, 1}, {.device = kCpu})), ShapeError);
  EXPECT_THROW(Dataset(std::shared_ptr<const data::Reader>()), ValueError);
}

TEST(Dataset, GathersRowsOfEveryTensorConsistently) {
  const Dataset ds = numbered(6, /*weights=*/true);
  const std::vector<std::int64_t> idx = {5, 0, 3};
  const Batch b = ds.gather(idx);
  EXPECT_EQ(b.x.shape(), Shape({3, 2}));
  EXPECT_EQ(ids(b), idx);
  EXPECT_EQ(b.y.to_vector<std::int64_t>(), (std::vector<std::int64_t>{50, 0, 30}));
  EXPECT_EQ(b.sample_weight.to_vector<float>(), (std::vector<float>{0.05f, 0.0f, 0.03f}));
  EXPECT_THROW(ds.gather(std::vector<std::int64_t>{6}), IndexError);
  EXPECT_THROW(ds.gather(std::vector<std::int64_t>{-1}), IndexError);
}

TEST(Dataset, SliceIsAViewWithPythonBounds) {
  const Dataset ds = numbered(10);
  const Dataset tail = ds.slice(-3, 100);
  EXPECT_EQ(tail.size(), 3);
  EXPECT_TRUE(tail.x().shares_storage(ds.x()));
  EXPECT_EQ(ids(tail.gather(std::vector<std::int64_t>{0, 2})), (std::vector<std::int64_t>{7, 9}));
  EXPECT_EQ(ds.slice(5, 2).size(), 0);
}

TEST(DataLoader, BatchesInOrderWithAPartialLastBatch) {
  DataLoader loader(numbered(10), {.batch_size = 4, .seed = 1, .device = kCpu});
  EXPECT_EQ(loader.size(), 3);
  const auto got = epoch_ids(loader, 0);
  EXPECT_EQ(got, (std::vector<std::vector<std::int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_FALSE(loader.next().has_value());  // stays done until the next begin_epoch
  EXPECT_EQ(loader.batches_returned(), 3);
}

TEST(DataLoader, DropLastDropsOnlyAShortBatch) {
  DataLoader a(numbered(10), {.batch_size = 4, .drop_last = true, .device = kCpu});
  EXPECT_EQ(a.size(), 2);
  EXPECT_EQ(epoch_ids(a, 0).size(), 2u);
  DataLoader b(numbered(8), {.batch_size = 4, .drop_last = true, .device = kCpu});
  EXPECT_EQ(b.size(), 2);
  DataLoader c(numbered(3), {.batch_size = 4, .drop_last = true, .device = kCpu});
  EXPECT_EQ(c.size(), 0);
  EXPECT_TRUE(epoch_ids(c, 0).empty());
}

TEST(DataLoader, CarriesLabelsAndWeightsWithTheirExamples) {
  DataLoader loader(numbered(37, true), {.batch_size = 8, .shuffle = true, .seed = 3, .device = kCpu});
  loader.begin_epoch(0);
  while (auto b = loader.next()) {
    const auto id = ids(*b);
    const auto y = b->y.to_vector<std::int64_t>();
    const auto w = b->sample_weight.to_vector<float>();
    for (std::size_t i = 0; i < id.size(); ++i) {
      EXPECT_EQ(y[i], 10 * id[i]);
      EXPECT_FLOAT_EQ(w[i], static_cast<float>(id[i]) / 100.0f);
    }
  }
}

TEST(DataLoader, ShuffleIsAPermutationPerEpochFixedBySeed) {
  DataLoader a(numbered(101), {.batch_size = 16, .shuffle = true, .seed = 42, .device = kCpu});
  DataLoader same(numbered(101), {.batch_size = 16, .shuffle = true, .seed = 42, .device = kCpu});
  DataLoader other(numbered(101), {.batch_size = 16, .shuffle = true, .seed = 43, .device = kCpu});
  std::vector<std::int64_t> identity(101);
  std::iota(identity.begin(), identity.end(), 0);
  std::vector<std::vector<std::int64_t>> orders;
  for (std::int64_t e = 0; e < 3; ++e) {
    std::vector<std::int64_t> flat;
    for (const auto& b : epoch_ids(a, e)) flat.insert(flat.end(), b.begin(), b.end());
    EXPECT_EQ(flat, a.epoch_order(e));
    std::vector<std::int64_t> sorted = flat;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity) << "epoch " << e << " is not a permutation";
    EXPECT_NE(flat, identity);
    EXPECT_EQ(epoch_ids(same, e), epoch_ids(a, e));
    EXPECT_NE(epoch_ids(other, e), epoch_ids(a, e));
    orders.push_back(flat);
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);
}

TEST(DataLoader, ShuffleLeavesEachPositionUniform) {
  // Over 2000 epochs of 4 examples, each example lands at each position ~500 times.
  DataLoader loader(numbered(4), {.batch_size = 4, .shuffle = true, .seed = 7, .device = kCpu, .prefetch = 0});
  int count[4][4] = {};
  for (std::int64_t e = 0; e < 2000; ++e) {
    const auto order = loader.epoch_order(e);
    for (int p = 0; p < 4; ++p) ++count[p][order[static_cast<std::size_t>(p)]];
  }
  for (auto& row : count) {
    for (int c : row) EXPECT_NEAR(c, 500, 90);  // ~5 standard deviations
  }
}

TEST(DataLoader, UnsetSeedIsDrawnAndReported) {
  DataLoader a(numbered(50), {.shuffle = true, .device = kCpu});
  DataLoader b(numbered(50), {.shuffle = true, .device = kCpu});
  ASSERT_TRUE(a.options().seed.has_value());
  EXPECT_NE(*a.options().seed, *b.options().seed);
  EXPECT_EQ(a.device(), kCpu);
}

// Crop, flip and normalize in the list: prefetch must not change a single bit.
std::vector<data::TransformPtr> augmentations() {
  return {data::RandomCrop(4, 4, {.padding = 1}), data::RandomFlip("horizontal_and_vertical"),
          data::Normalize({0.5, 1.0, 2.0}, {2.0, 4.0, 0.5})};
}

Dataset images(std::int64_t n) {
  return Dataset(arange(static_cast<double>(n * 4 * 4 * 3), {.dtype = float32, .device = kCpu}).reshape({n, 4, 4, 3}),
                 arange(static_cast<double>(n), {.dtype = int64, .device = kCpu}));
}

TEST(DataLoader, PrefetchDoesNotChangeBatches) {
  for (int prefetch : {1, 3, 8}) {
    SCOPED_TRACE(prefetch);
    DataLoader off(images(29), {.batch_size = 5, .shuffle = true, .seed = 11, .device = kCpu,
                                .prefetch = 0, .transforms = augmentations()});
    DataLoader on(images(29), {.batch_size = 5, .shuffle = true, .seed = 11, .device = kCpu,
                               .prefetch = prefetch, .transforms = augmentations()});
    for (std::int64_t e = 0; e < 2; ++e) {
      off.begin_epoch(e);
      on.begin_epoch(e);
      for (std::int64_t i = 0; i < off.size(); ++i) {
        const auto a = off.next(), b = on.next();
        ASSERT_TRUE(a && b);
        EXPECT_EQ(a->x.to_vector<float>(), b->x.to_vector<float>()) << "epoch " << e << " batch " << i;
        EXPECT_EQ(a->y.to_vector<std::int64_t>(), b->y.to_vector<std::int64_t>());
      }
      EXPECT_FALSE(off.next() || on.next());
    }
  }
}

TEST(DataLoader, BeginEpochAbandonsTheRestOfThePreviousOne) {
  DataLoader loader(numbered(40), {.batch_size = 4, .shuffle = true, .seed = 5, .device = kCpu, .prefetch = 3});
  DataLoader fresh(numbered(40), {.batch_size = 4, .shuffle = true, .seed = 5, .device = kCpu, .prefetch = 0});
  loader.begin_epoch(0);
  loader.next();
  loader.next();
  EXPECT_EQ(epoch_ids(loader, 1), epoch_ids(fresh, 1));
  EXPECT_EQ(loader.epoch(), 1);
}

TEST(DataLoader, NextBeforeBeginEpochStartsEpochZero) {
  DataLoader loader(numbered(6), {.batch_size = 6, .shuffle = true, .seed = 9, .device = kCpu});
  EXPECT_EQ(loader.epoch(), -1);
  const auto b = loader.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(loader.epoch(), 0);
  EXPECT_EQ(ids(*b), loader.epoch_order(0));
}

TEST(DataLoader, DestroyedMidEpochWithPrefetchDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    DataLoader loader(numbered(100), {.batch_size = 3, .device = kCpu, .prefetch = 4});
    loader.begin_epoch(0);
    if (i % 2) loader.next();
  }
}

TEST(DataLoader, MovesKeepTheirState) {
  DataLoader a(numbered(9), {.batch_size = 3, .seed = 2, .device = kCpu, .prefetch = 2});
  a.begin_epoch(0);
  a.next();
  DataLoader b(std::move(a));
  EXPECT_EQ(ids(*b.next()), (std::vector<std::int64_t>{3, 4, 5}));
  DataLoader c(numbered(2), {.batch_size = 1, .device = kCpu});
  c = std::move(b);
  EXPECT_EQ(ids(*c.next()), (std::vector<std::int64_t>{6, 7, 8}));
}

TEST(DataLoader, ValidatesOptions) {
  EXPECT_THROW(DataLoader(numbered(3), {.batch_size = 0, .device = kCpu}), ValueError);
  EXPECT_THROW(DataLoader(numbered(3), {.device = kCpu, .prefetch = -1}), ValueError);
  EXPECT_THROW(DataLoader(numbered(3), {.device = kCpu, .transforms = {nullptr}}), ValueError);
  DataLoader ok(numbered(3), {.device = kCpu});
  EXPECT_THROW(ok.begin_epoch(-1), ValueError);
}

// A reader of `n` examples x[i] = (i, i + 0.5) that throws for index `poison`.
class CountingReader final : public data::Reader {
 public:
  CountingReader(std::int64_t n, std::int64_t poison) : n_(n), poison_(poison) {}
  std::int64_t size() const override { return n_; }
  bool has_y() const override { return false; }
  Batch gather(std::span<const std::int64_t> indices) const override {
    ++calls;
    std::vector<float> x;
    for (auto i : indices) {
      KILN_CHECK(i != poison_, IOError, "CountingReader: example ", i, " is unreadable");
      x.push_back(static_cast<float>(i));
      x.push_back(static_cast<float>(i) + 0.5f);
    }
    return {from_vector(x, {static_cast<std::int64_t>(indices.size()), 2}), {}, {}};
  }
  mutable std::atomic<int> calls{0};

 private:
  std::int64_t n_, poison_;
};

TEST(DataLoader, ReadsFromAReaderAndItsSlices) {
  auto reader = std::make_shared<CountingReader>(20, -1);
  const Dataset ds(reader);
  EXPECT_EQ(ds.size(), 20);
  EXPECT_FALSE(ds.has_y());
  DataLoader loader(ds.slice(10, 20), {.batch_size = 4, .device = kCpu});
  EXPECT_EQ(epoch_ids(loader, 0), (std::vector<std::vector<std::int64_t>>{{10, 11, 12, 13}, {14, 15, 16, 17}, {18, 19}}));
  EXPECT_EQ(reader->calls.load(), 3);
}

TEST(DataLoader, ReaderErrorsSurfaceAtTheirBatch) {
  for (int prefetch : {0, 2}) {
    SCOPED_TRACE(prefetch);
    DataLoader loader(Dataset(std::make_shared<CountingReader>(12, 5)),
                      {.batch_size = 4, .device = kCpu, .prefetch = prefetch});
    loader.begin_epoch(0);
    EXPECT_TRUE(loader.next().has_value());     // 0..3
    EXPECT_THROW(loader.next(), IOError);       // 4..7 holds 5
    EXPECT_EQ(ids(*loader.next()), (std::vector<std::int64_t>{8, 9, 10, 11}));
    EXPECT_FALSE(loader.next().has_value());
  }
}

TEST(DataLoader, ReaderWithAWrongBatchShapeIsAShapeError) {
  class Bad final : public data::Reader {
   public:
    std::int64_t size() const override { return 4; }
    Batch gather(std::span<const std::int64_t>) const override { return {zeros({1, 2}, {.device = Device::cpu()}), {}, {}}; }
  };
  DataLoader loader(Dataset(std::make_shared<Bad>()), {.batch_size = 2, .device = kCpu, .prefetch = 1});
  EXPECT_THROW(loader.next(), ShapeError);
}

}  // namespace
}  // namespace kiln::test
