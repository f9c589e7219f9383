// Layers and models on cuda:0 (gpu label: a real GPU, or the SIM emulator in CI): the
// same seeded weights on cpu and cuda, a small two-input model whose outputs and
// gradients on cuda match cpu, seeded Dropout masks equal across devices, deferred builds
// after to(cuda), device errors, regularizers and constraints on cuda.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/layers/core.h"
#include "kiln/layers/initializers.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/network.h"
#include "kiln/layers/shape_layers.h"
#include "kiln_test.h"

namespace kiln::layers {
namespace {

using ::testing::HasSubstr;

const Device kCuda = Device::cuda(0);
constexpr Device kHost = Device::cpu();

::testing::AssertionResult near(const Tensor& a, const Tensor& b, double atol, double rtol) {
  if (!(a.shape() == b.shape())) return ::testing::AssertionFailure() << a.shape() << " vs " << b.shape();
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::abs(x[i] - y[i]) > atol + rtol * std::abs(y[i])) {
      return ::testing::AssertionFailure() << "element " << i << ": " << x[i] << " vs " << y[i];
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(LayersCuda, SeededInitializersGiveTheSameWeightsOnEveryDevice) {
  KILN_REQUIRE_CUDA();
  for (const char* name : {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
                           "random_normal", "random_uniform", "truncated_normal", "orthogonal"}) {
    SCOPED_TRACE(name);
    manual_seed(77);
    const Tensor on_cpu = (*initializers::get(name))({5, 7}, {.device = kHost});
    manual_seed(77);
    const Tensor on_cuda = (*initializers::get(name))({5, 7}, {.device = kCuda});
    EXPECT_EQ(on_cuda.device(), kCuda);
    EXPECT_EQ(on_cuda.to_vector<float>(), on_cpu.to_vector<float>());
  }
  const Tensor a = (*initializers::HeNormal({.seed = 5}))({3, 3, 2, 4}, {.dtype = DType::float16, .device = kHost});
  const Tensor b = (*initializers::HeNormal({.seed = 5}))({3, 3, 2, 4}, {.dtype = DType::float16, .device = kCuda});
  EXPECT_EQ(b.to_vector<float>(), a.to_vector<float>());
}

// x (6,) -> Dense(8, relu) -> residual Dense(8) -> Add; tokens (3,) -> Embedding(10, 4) ->
// Flatten; Concatenate -> Dropout -> Dense(3, softmax). Built on cpu with fixed seeds.
std::shared_ptr<Network> small_model() {
  manual_seed(11);
  auto x = Input({6}, {.name = "x"});
  auto tokens = Input({3}, {.dtype = DType::int64, .name = "tokens"});
  auto h = Dense(8, {.activation = "relu"})(x);
  KerasTensor r = Add()({h, Dense(8, {.kernel_regularizer = "l2"})(h)});
  auto e = Flatten()(Embedding(10, 4)(tokens));
  KerasTensor cat = Concatenate()({r, e});
  auto out = Dense(3, {.activation = "softmax", .kernel_constraint = "max_norm"})(Dropout(0.5)(cat));
  return std::make_shared<Network>(std::vector<KerasTensor>{x, tokens}, std::vector<KerasTensor>{out});
}

TEST(LayersCuda, ASmallModelMatchesCpuInOutputsAndGradients) {
  KILN_REQUIRE_CUDA();
  auto net = small_model();
  Generator gen(3);
  const Tensor x = randn({5, 6}, {.device = kHost}, &gen);
  const Tensor tokens = from_vector<std::int64_t>({0, 3, 9, 1, 1, 2, 8, 7, 6, 5, 4, 3, 2, 1, 0}, Shape{5, 3});

  const Tensor y_cpu = net->call({x, tokens}, false)[0];
  backward(sum(mul(y_cpu, arange(15.0, {.device = kHost}).reshape({5, 3}))));
  std::vector<Tensor> grads_cpu;
  for (const Variable& v : net->trainable_weights()) grads_cpu.push_back(v.grad().to(kHost));
  const double reg_cpu = net->regularization_loss().item<double>();

  net->to(kCuda);
  EXPECT_EQ(net->device(), kCuda);
  for (const Variable& v : net->weights()) {
    EXPECT_EQ(v.device(), kCuda) << v.name();
    EXPECT_TRUE(v.value().requires_grad()) << v.name();
  }
  const Tensor y_cuda = net->call({x.to(kCuda), tokens.to(kCuda)}, false)[0];
  EXPECT_EQ(y_cuda.device(), kCuda);
  EXPECT_TRUE(near(y_cuda, y_cpu, 1e-6, 1e-5));
  backward(sum(mul(y_cuda, arange(15.0, {.device = kCuda}).reshape({5, 3}))));
  const auto weights = net->trainable_weights();
  ASSERT_EQ(weights.size(), grads_cpu.size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    EXPECT_TRUE(near(weights[i].grad(), grads_cpu[i], 1e-5, 1e-4)) << weights[i].name();
  }
  const Tensor reg = net->regularization_loss();
  EXPECT_EQ(reg.device(), kCuda);
  EXPECT_NEAR(reg.item<double>(), reg_cpu, 1e-5 * reg_cpu);
  net->apply_constraints();  // max_norm on cuda: every column norm <= 2
  for (const Variable& v : net->weights()) {
    if (v.name().find("kernel") != std::string::npos && v.constraint()) {
      for (double n : norm(v.value(), 2.0, {0}).to_vector<double>()) EXPECT_LE(n, 2.0 + 1e-5);
    }
  }
}

TEST(LayersCuda, SeededDropoutDropsTheSameElementsOnCpuAndCuda) {
  KILN_REQUIRE_CUDA();
  auto on_cpu = Dropout(0.3, {.seed = 42});
  auto on_cuda = Dropout(0.3, {.seed = 42});
  on_cuda->to(kCuda);
  const Tensor x = ones({4, 33}, {.device = kHost});
  EXPECT_EQ(on_cuda(x.to(kCuda), true).to_vector<float>(), on_cpu(x, true).to_vector<float>());
}

TEST(LayersCuda, DeferredBuildAfterToCudaCreatesWeightsThere) {
  KILN_REQUIRE_CUDA();
  Network net({Dense(4, {.activation = "relu"}), Dense(2)});
  net.to(kCuda);
  const Tensor y = net.call(ones({3, 5}, {.device = kCuda}), false);
  EXPECT_EQ(y.device(), kCuda);
  for (const Variable& v : net.weights()) EXPECT_EQ(v.device(), kCuda) << v.name();
  // Layers without weights run wherever their input is.
  EXPECT_EQ(Activation("relu")(ones({2}, {.device = kCuda})).device(), kCuda);
  EXPECT_THAT(
      [&] {
        try {
          (void)net.call(ones({3, 5}, {.device = kHost}), false);
        } catch (const DeviceError& e) {
          return e.message();
        }
        return std::string("(no error)");
      }(),
      HasSubstr("input 0 is on cpu but the layer's weights are on cuda:0"));
}

}  // namespace
}  // namespace kiln::layers
