// The image layers on a cuda device (a GPU, or the SIM emulator) against the same layers
// on cpu: outputs, input and weight gradients, and BatchNormalization's moving statistics.
// Sizes stay tiny: SIM runs one fiber per CUDA thread.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "image_test_util.h"
#include "kernels/op_test_util.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/layers/conv.h"
#include "kiln/layers/normalization.h"
#include "kiln/layers/pooling.h"
#include "kiln/layers/reshaping.h"
#include "kiln_test.h"

namespace kiln::layers {
namespace {

using test::seeded_uniform;

constexpr test::Tolerance kF32{2e-5, 2e-4};

struct Pass {
  Tensor y;
  std::vector<Tensor> grads;    // d(sum(y * v)) / d(x, trainable weights...), on the host
  std::vector<Tensor> weights;  // every weight after the pass (moving statistics), on the host
};

// One forward and backward of `layer` on `device`, starting from `initial` weights.
Pass run(const LayerRef& layer, const std::vector<Tensor>& initial, const Tensor& x_host, bool training,
         Device device) {
  layer->to(device);
  layer->set_weights(initial);
  Tensor x = x_host.to(device).clone();
  x.requires_grad_();
  Pass p;
  const Tensor y = (*layer)(x, training);
  EXPECT_EQ(y.device(), device);
  for (const Variable& w : layer->weights()) EXPECT_EQ(w.device(), device) << w.name();
  const Tensor v = seeded_uniform(y.shape(), 99, float32, device);
  backward(sum(mul(y, v)));
  p.y = y.detach().to(Device::cpu());
  p.grads.push_back(x.grad().to(Device::cpu()));
  std::vector<Tensor> params = layer->trainable_parameters();
  for (const Tensor& w : params) p.grads.push_back(w.grad().to(Device::cpu()));
  zero_grad(params);
  p.weights = layer->get_weights();
  return p;
}

void expect_cuda_matches_cpu(const LayerRef& layer, const Shape& xs, bool training) {
  SCOPED_TRACE(layer->class_name() + " on " + xs.str() + (training ? " training" : ""));
  layer->maybe_build({with_unknown_batch(xs)});
  // Non-trivial weights (biases, gamma, moving statistics) so every term is exercised.
  for (const Variable& v : layer->weights()) {
    if (v.shape().ndim() == 1) v.assign(seeded_uniform(v.shape(), 7, float32, test::kHost, 0.5, 1.5));
  }
  const std::vector<Tensor> initial = layer->get_weights();
  const Tensor x = seeded_uniform(xs, 3);
  const Pass cpu = run(layer, initial, x, training, Device::cpu());
  const Pass gpu = run(layer, initial, x, training, Device::cuda());
  EXPECT_TRUE(test::all_close(gpu.y, cpu.y, kF32)) << "output";
  ASSERT_EQ(gpu.grads.size(), cpu.grads.size());
  for (std::size_t i = 0; i < cpu.grads.size(); ++i) {
    EXPECT_TRUE(test::all_close(gpu.grads[i], cpu.grads[i], kF32)) << "gradient " << i << " (0 is the input's)";
  }
  for (std::size_t i = 0; i < cpu.weights.size(); ++i) {
    EXPECT_TRUE(test::all_close(gpu.weights[i], cpu.weights[i], kF32)) << "weight " << i << " after the pass";
  }
}

TEST(ImageLayersCuda, ConvLayersMatchCpu) {
  KILN_REQUIRE_CUDA();
  expect_cuda_matches_cpu(Conv2D(4, 3, {.strides = 2, .padding = "same", .activation = "tanh"}), {1, 5, 6, 3}, true);
  expect_cuda_matches_cpu(Conv2D(4, 2, {.groups = 2}), {2, 4, 3, 2}, true);
  expect_cuda_matches_cpu(DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2}), {1, 4, 5, 2}, true);
  expect_cuda_matches_cpu(SeparableConv2D(3, 2, {.depth_multiplier = 2}), {1, 4, 4, 2}, true);
  expect_cuda_matches_cpu(Conv2DTranspose(3, 3, {.strides = 2, .output_padding = {1, 1}}), {1, 3, 2, 2}, true);
}

TEST(ImageLayersCuda, PoolingAndReshapingLayersMatchCpu) {
  KILN_REQUIRE_CUDA();
  expect_cuda_matches_cpu(MaxPooling2D(2, {.padding = "same"}), {1, 5, 3, 3}, true);
  expect_cuda_matches_cpu(AveragePooling2D(3, {.strides = 2, .padding = "same"}), {2, 5, 4, 2}, true);
  expect_cuda_matches_cpu(GlobalAveragePooling2D(), {2, 3, 4, 3}, true);
  expect_cuda_matches_cpu(GlobalMaxPooling2D({.keepdims = true}), {2, 3, 4, 3}, true);
  expect_cuda_matches_cpu(ZeroPadding2D({{1, 2}, {0, 1}}), {1, 3, 2, 2}, true);
  expect_cuda_matches_cpu(UpSampling2D(2, {.interpolation = "bilinear"}), {1, 3, 2, 2}, true);
}

TEST(ImageLayersCuda, NormalizationLayersMatchCpu) {
  KILN_REQUIRE_CUDA();
  expect_cuda_matches_cpu(BatchNormalization({.momentum = 0.9}), {3, 2, 3, 4}, /*training=*/true);
  expect_cuda_matches_cpu(BatchNormalization(), {3, 2, 3, 4}, /*training=*/false);
  expect_cuda_matches_cpu(BatchNormalization({.axis = 1}), {4, 3, 2}, true);
  expect_cuda_matches_cpu(LayerNormalization(), {2, 3, 5}, true);
  expect_cuda_matches_cpu(LayerNormalization({.axis = {1, 2}, .rms_scaling = true}), {2, 3, 4}, true);
}

}  // namespace
}  // namespace kiln::layers
