// Metrics and losses on cuda against cpu (gpu label): the accumulators live on the device
// of the first batch and agree with the cpu ones after several weighted batches; weighted
// and ignore_class losses agree and backpropagate on cuda.
#include <gtest/gtest.h>

#include "kernels/op_test_util.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/training/losses.h"
#include "kiln/training/metrics.h"
#include "kiln_test.h"

namespace kiln {
namespace {

using test::kCpu;
constexpr Device kCuda0 = Device::cuda(0);

struct Batch {
  Tensor y_sparse, y_onehot, y_binary, probs, weights;
};

Batch make_batch(std::int64_t n, std::int64_t classes, std::uint64_t seed, Device device) {
  const auto p = test::uniform_values(n * classes, 0.01, 1, seed);
  std::vector<std::int64_t> labels(n);
  std::vector<double> onehot(n * classes, 0.0), binary(n * classes);
  const auto u = test::uniform_values(n * classes, 0, 1, seed + 1);
  for (std::int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<std::int64_t>(u[i] * classes) % classes;
    onehot[i * classes + labels[i]] = 1.0;
  }
  for (std::int64_t i = 0; i < n * classes; ++i) binary[i] = u[i] < p[i] ? 1.0 : 0.0;
  const TensorOptions f{.dtype = float32, .device = device};
  return {from_vector(labels, {.device = device}), from_vector(onehot, {n, classes}, f), from_vector(binary, {n, classes}, f),
          from_vector(p, {n, classes}, f), from_vector(test::uniform_values(n, 0, 2, seed + 2), {n}, f)};
}

TEST(MetricsCuda, AccumulateOnTheDeviceAndAgreeWithCpu) {
  KILN_REQUIRE_CUDA();
  const std::vector<std::string> names = {"sparse_categorical_accuracy", "top_k_categorical_accuracy", "auc",
                                          "precision", "recall", "mse", "categorical_accuracy", "binary_accuracy"};
  for (const std::string& name : names) {
    auto host = metrics::get(name), device = metrics::get(name);
    for (std::uint64_t b = 0; b < 3; ++b) {
      const Batch h = make_batch(37, 7, 10 * b, kCpu), d = make_batch(37, 7, 10 * b, kCuda0);
      const bool sparse = name.rfind("sparse", 0) == 0;
      const bool binary = name == "auc" || name == "precision" || name == "recall" || name == "binary_accuracy";
      const Tensor& yh = sparse ? h.y_sparse : (binary ? h.y_binary : h.y_onehot);
      const Tensor& yd = sparse ? d.y_sparse : (binary ? d.y_binary : d.y_onehot);
      host->update_state(yh, h.probs, b == 1 ? h.weights : Tensor());
      device->update_state(yd, d.probs, b == 1 ? d.weights : Tensor());
    }
    EXPECT_NEAR(device->result(), host->result(), 1e-6) << name;
    device->reset_state();
    EXPECT_EQ(device->result(), 0.0) << name;
  }
}

// After reset_state a metric accumulates on whichever device its next update comes from
// (a model moved between epochs); without a reset a device change is a DeviceError.
TEST(MetricsCuda, ResetStateLetsTheNextUpdateUseAnotherDevice) {
  KILN_REQUIRE_CUDA();
  for (const std::string name : {"categorical_accuracy", "precision", "auc"}) {
    const bool binary = name != "categorical_accuracy";
    auto moving = metrics::get(name), reference = metrics::get(name);
    const Batch h = make_batch(29, 5, 3, kCpu), d = make_batch(29, 5, 3, kCuda0);
    moving->update_state(binary ? h.y_binary : h.y_onehot, h.probs);
    EXPECT_THROW(moving->update_state(binary ? d.y_binary : d.y_onehot, d.probs), DeviceError) << name;
    moving->reset_state();
    moving->update_state(binary ? d.y_binary : d.y_onehot, d.probs);
    reference->update_state(binary ? h.y_binary : h.y_onehot, h.probs);
    EXPECT_NEAR(moving->result(), reference->result(), 1e-6) << name;
  }
}

TEST(LossesCuda, WeightedAndMaskedLossesAgreeWithCpuAndBackpropagate) {
  KILN_REQUIRE_CUDA();
  const Batch h = make_batch(29, 5, 3, kCpu), d = make_batch(29, 5, 3, kCuda0);
  const losses::SparseCategoricalCrossentropy scce({.ignore_class = 2});
  const losses::BinaryCrossentropy bce({.label_smoothing = 0.1});
  EXPECT_NEAR(scce(d.y_sparse, d.probs, d.weights).item<double>(), scce(h.y_sparse, h.probs, h.weights).item<double>(),
              1e-5);
  EXPECT_NEAR(bce(d.y_binary, d.probs, d.weights).item<double>(), bce(h.y_binary, h.probs, h.weights).item<double>(),
              1e-5);
  Tensor logits = d.probs.detach().clone();
  logits.requires_grad_(true);
  backward(scce(d.y_sparse, logits, d.weights));
  ASSERT_TRUE(logits.grad().defined());
  EXPECT_EQ(logits.grad().device(), kCuda0);
}

}  // namespace
}  // namespace kiln
