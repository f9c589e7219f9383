// DataLoader delivering to a cuda device (runs under SIM in CI): batches land on the
// device, equal the cpu loader's bit for bit, prefetch (pinned staging on a copy stream)
// and no prefetch agree, memory is handed over to the consumer's stream, and the caching
// allocator stays consistent across epochs.
#include "data_test_util.h"
#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/cuda/pinned_allocator.h"
#include "kiln_test.h"
#include "kiln/training/data/loader.h"
#include "kiln/training/data/transforms.h"

namespace kiln::test {
namespace {

using data::DataLoader;
using data::Dataset;

constexpr Device kCuda = Device::cuda(0);

// 23 images (4, 4, 3) uint8, int64 labels, float32 weights: small for the emulator.
Dataset small_images() {
  const std::int64_t n = 23;
  return Dataset(arange(static_cast<double>(n * 48), {.dtype = int32, .device = Device::cpu()})
                     .to(uint8)
                     .reshape({n, 4, 4, 3}),
                 arange(static_cast<double>(n), {.dtype = int64, .device = Device::cpu()}),
                 full({n}, 0.25, {.device = Device::cpu()}));
}

data::LoaderOptions options(Device device, int prefetch) {
  return {.batch_size = 5, .shuffle = true, .seed = 21, .device = device, .prefetch = prefetch,
          .transforms = {data::RandomCrop(3, 3, {.padding = 1}), data::RandomFlip(), data::Rescale(1.0 / 255)}};
}

TEST(DataLoaderCuda, BatchesArriveOnTheDeviceEqualToTheCpuLoaders) {
  KILN_REQUIRE_CUDA();
  DataLoader cpu(small_images(), options(Device::cpu(), 0));
  for (int prefetch : {0, 2}) {
    SCOPED_TRACE(prefetch);
    DataLoader gpu(small_images(), options(kCuda, prefetch));
    EXPECT_EQ(gpu.device(), kCuda);
    for (std::int64_t e = 0; e < 2; ++e) {
      cpu.begin_epoch(e);
      gpu.begin_epoch(e);
      std::int64_t batches = 0;
      while (auto g = gpu.next()) {
        const auto c = cpu.next();
        ASSERT_TRUE(c.has_value());
        EXPECT_EQ(g->x.device(), kCuda);
        EXPECT_EQ(g->y.device(), kCuda);
        EXPECT_EQ(g->sample_weight.device(), kCuda);
        EXPECT_EQ(g->x.dtype(), float32);
        EXPECT_EQ(g->x.to_vector<float>(), c->x.to_vector<float>()) << "epoch " << e;
        EXPECT_EQ(g->y.to_vector<std::int64_t>(), c->y.to_vector<std::int64_t>());
        EXPECT_EQ(g->sample_weight.to_vector<float>(), c->sample_weight.to_vector<float>());
        ++batches;
      }
      EXPECT_EQ(batches, 5);
      EXPECT_FALSE(cpu.next().has_value());
    }
  }
  cuda::device_allocator(0).check_invariants();
}

TEST(DataLoaderCuda, PrefetchStagesThroughPinnedMemory) {
  KILN_REQUIRE_CUDA();
  const auto before = cuda::pinned_stats();
  {
    DataLoader gpu(small_images(), options(kCuda, 3));
    gpu.begin_epoch(0);
    while (auto b = gpu.next()) {
      // The consumer uses the batch on its own stream while the next ones are prepared.
      const Tensor doubled = b->x.to(Device::cpu());
      EXPECT_EQ(doubled.shape()[1], 3);
    }
  }
  const auto after = cuda::pinned_stats();
  EXPECT_GT(after.host_allocs + after.cache_hits, before.host_allocs + before.cache_hits);
  EXPECT_EQ(after.active_blocks.current, before.active_blocks.current);  // all returned
  cuda::device_allocator(0).check_invariants();
}

TEST(DataLoaderCuda, MissingDeviceIsADeviceError) {
  KILN_REQUIRE_CUDA();
  EXPECT_THROW(DataLoader(small_images(), {.device = Device::cuda(cuda::device_count())}), DeviceError);
}

}  // namespace
}  // namespace kiln::test
