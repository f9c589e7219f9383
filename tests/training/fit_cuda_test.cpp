// Model::fit / evaluate / predict on cuda:0 (a real GPU, or kiln's SIMT emulator in SIM
// builds): training learns and matches the cpu run, and predict keeps device memory flat
// across calls. Sizes stay tiny: SIM runs one fiber per CUDA thread.
#include <gtest/gtest.h>

#include "kiln/core/cuda/caching_allocator.h"
#include "kiln/core/random.h"
#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/training/model.h"
#include "kiln_test.h"

namespace kiln {
namespace {

using layers::Dense;

struct Task {
  Tensor x, y;
  explicit Task(std::int64_t n) {
    Generator gen(31);
    x = randn({n, 4}, {.device = Device::cpu()}, &gen);
    const auto xs = x.to_vector<float>();
    std::vector<std::int64_t> labels;
    for (std::int64_t i = 0; i < n; ++i) labels.push_back(xs[i * 4] - xs[i * 4 + 2] > 0 ? 1 : 0);
    y = from_vector(labels, {n}, {.device = Device::cpu()});
  }
};

std::unique_ptr<Sequential> model_on(Device d) {
  manual_seed(41);  // same initial weights on every device (Philox)
  auto m = std::make_unique<Sequential>(std::vector<layers::LayerRef>{
      Dense(8, {.activation = "relu", .input_shape = {4}}), Dense(2, {.activation = "softmax"})});
  m->to(d);
  m->compile({.optimizer = optimizers::Adam({.learning_rate = 0.05}), .loss = "sparse_categorical_crossentropy",
              .metrics = {"accuracy"}});
  return m;
}

TEST(FitCuda, LearnsAndMatchesTheCpuRun) {
  KILN_REQUIRE_CUDA();
  Task task(48);
  const FitOptions opts{.batch_size = 16, .epochs = 3, .verbose = 0, .validation_split = 0.25, .seed = 5};
  auto gpu = model_on(Device::cuda(0));
  auto cpu = model_on(Device::cpu());
  const History hg = gpu->fit(task.x, task.y, opts);
  const History hc = cpu->fit(task.x, task.y, opts);
  ASSERT_EQ(hg.history.at("loss").size(), 3u);
  EXPECT_LT(hg.history.at("loss").back(), hg.history.at("loss").front());
  for (const char* key : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    for (std::size_t e = 0; e < 3; ++e) {
      EXPECT_NEAR(hg.history.at(key)[e], hc.history.at(key)[e], 1e-4) << key << " epoch " << e;
    }
  }
  const auto wg = gpu->get_weights(), wc = cpu->get_weights();
  for (std::size_t i = 0; i < wg.size(); ++i) {
    EXPECT_EQ(wg[i].device(), Device::cpu());  // get_weights copies to the host
    const auto a = wg[i].to_vector<float>(), b = wc[i].to_vector<float>();
    for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-4) << "weight " << i << "[" << k << "]";
  }
  const Logs eval = gpu->evaluate(task.x, task.y, {.batch_size = 16, .verbose = 0});
  EXPECT_NEAR(eval.at("loss"), cpu->evaluate(task.x, task.y, {.batch_size = 16, .verbose = 0}).at("loss"), 1e-4);
}

// Two inputs and two outputs through the prefetching loader (pinned staging and the copy
// stream carry every tensor of the batch): the same history as on the cpu.
TEST(FitCuda, MultiInputMultiOutputMatchesTheCpuRun) {
  KILN_REQUIRE_CUDA();
  Task task(32);
  const Tensor xa = task.x.slice(1, 0, 2).contiguous();
  const Tensor xb = task.x.slice(1, 2, 4).contiguous();
  const Tensor reg = task.x.slice(1, 1, 2).contiguous();
  auto make = [](Device d) {
    manual_seed(43);
    auto in_a = layers::Input({2});
    auto in_b = layers::Input({2});
    layers::KerasTensor h = layers::Concatenate()({in_a, in_b});
    h = Dense(8, {.activation = "relu"})(h);
    layers::KerasTensor cls = Dense(2, {.activation = "softmax", .name = "cls"})(h);
    layers::KerasTensor out = Dense(1, {.name = "reg"})(h);
    auto m = std::make_unique<Model>(std::vector{in_a, in_b}, std::vector{cls, out});
    m->to(d);
    m->compile({.optimizer = "adam", .loss = {"sparse_categorical_crossentropy", "mse"}, .metrics = {"accuracy"}});
    return m;
  };
  const FitOptions opts{.batch_size = 8, .epochs = 2, .verbose = 0, .validation_split = 0.25, .seed = 3,
                        .prefetch = 2};
  auto gpu = make(Device::cuda(0));
  auto cpu = make(Device::cpu());
  const History hg = gpu->fit({xa, xb}, {task.y, reg}, opts);
  const History hc = cpu->fit({xa, xb}, {task.y, reg}, opts);
  for (const char* key : {"loss", "cls_loss", "reg_loss", "cls_accuracy", "val_loss", "val_reg_loss"}) {
    ASSERT_TRUE(hg.history.contains(key)) << key;
    for (std::size_t e = 0; e < 2; ++e) {
      EXPECT_NEAR(hg.history.at(key)[e], hc.history.at(key)[e], 1e-4) << key << " epoch " << e;
    }
  }
  const std::vector<Tensor> pg = gpu->predict_outputs({xa, xb}, {.batch_size = 8, .verbose = 0});
  ASSERT_EQ(pg.size(), 2u);
  EXPECT_EQ(pg[1].shape(), (Shape{32, 1}));
}

// A model moved from the cpu to cuda:0 between two fits continues with its optimizer's
// moments: it lands where two epochs on the cpu do.
TEST(FitCuda, MovingToTheGpuBetweenFitsKeepsTheOptimizerState) {
  KILN_REQUIRE_CUDA();
  Task task(32);
  const FitOptions one{.batch_size = 8, .epochs = 1, .verbose = 0, .shuffle = false};
  auto cpu = model_on(Device::cpu());
  cpu->fit(task.x, task.y, {.batch_size = 8, .epochs = 2, .verbose = 0, .shuffle = false});
  auto moved = model_on(Device::cpu());
  moved->fit(task.x, task.y, one);
  moved->to(Device::cuda(0));
  EXPECT_EQ(moved->weights()[0].value().device(), Device::cuda(0));
  moved->fit(task.x, task.y, one);
  const auto wm = moved->get_weights(), wc = cpu->get_weights();
  for (std::size_t i = 0; i < wm.size(); ++i) {
    const auto a = wm[i].to_vector<float>(), b = wc[i].to_vector<float>();
    for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-4) << "weight " << i << "[" << k << "]";
  }
}

TEST(FitCuda, PredictKeepsDeviceMemoryFlatAcrossCalls) {
  KILN_REQUIRE_CUDA();
  Task task(40);
  auto gpu = model_on(Device::cuda(0));
  gpu->fit(task.x, task.y, {.batch_size = 16, .epochs = 1, .verbose = 0, .seed = 1});
  auto& alloc = cuda::device_allocator(0);
  const Tensor first = gpu->predict(task.x, {.batch_size = 16, .verbose = 0});
  EXPECT_EQ(first.device(), Device::cpu());  // returned where x lives
  EXPECT_FALSE(first.requires_grad());
  const std::int64_t after_first = alloc.stats().allocated_bytes.current;
  alloc.reset_peak_stats();
  for (int i = 0; i < 3; ++i) {
    const Tensor p = gpu->predict(task.x, {.batch_size = 16, .verbose = 0});
    EXPECT_EQ(alloc.stats().allocated_bytes.current, after_first) << "call " << i;
    EXPECT_EQ(p.to_vector<float>(), first.to_vector<float>());
  }
  // The peak of a call is bounded by one batch's intermediates plus the outputs, far below
  // what a kept graph of every batch would hold.
  EXPECT_LT(alloc.stats().allocated_bytes.peak - after_first, 64 * 1024);
}

}  // namespace
}  // namespace kiln
