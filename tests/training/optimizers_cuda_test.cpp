// The fused optimizer step on cuda against cpu (gpu label: SIM in CI, the GPU when one is
// lent): every optimizer and clipping mode, every float dtype, three steps over parameters
// of odd sizes (one past a chunk, under a chunk, a matrix), one of them skipped on a step.
// SIM runs the same element math compiled by the same compiler, and the clipping norms are
// summed in one order on both devices (Note [Norm reduction order]): the results must match
// bit for bit. A real GPU may contract multiply-adds: there a few ulp are allowed.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "kernels/op_test_util.h"
#include "kiln/training/optimizers.h"
#include "kiln_test.h"
#include "optimizer_test_util.h"

namespace kiln {
namespace {

using optimizers::Optimizer;
using test::kCpu;

constexpr Device kCuda0 = Device::cuda(0);

const Shape kShapes[] = {{optimizers::kChunk + 1}, {3, 5}, {7}};

struct Case {
  const char* name;
  std::function<std::shared_ptr<Optimizer>()> make;
};

std::vector<Case> cases() {
  using namespace optimizers;
  return {
      {"sgd", [] { return std::make_shared<SGD>(SGDOptions{.learning_rate = 0.1}); }},
      {"sgd_nesterov_decay_clipvalue",
       [] { return std::make_shared<SGD>(SGDOptions{.momentum = 0.9, .nesterov = true, .weight_decay = 0.01, .clipvalue = 0.5}); }},
      {"adam_clipnorm", [] { return std::make_shared<Adam>(AdamOptions{.learning_rate = 0.01, .clipnorm = 1.0}); }},
      {"adam_amsgrad_global", [] { return std::make_shared<Adam>(AdamOptions{.amsgrad = true, .global_clipnorm = 2.0}); }},
      {"adamw", [] { return std::make_shared<AdamW>(); }},
      {"rmsprop_centered_momentum",
       [] { return std::make_shared<RMSprop>(RMSpropOptions{.momentum = 0.5, .centered = true}); }},
      {"adagrad", [] { return std::make_shared<Adagrad>(); }},
      {"adadelta", [] { return std::make_shared<Adadelta>(AdadeltaOptions{.learning_rate = 1.0}); }},
      {"nadam", [] { return std::make_shared<Nadam>(); }},
  };
}

struct Stepper {
  std::vector<Tensor> params;
  std::shared_ptr<Optimizer> opt;
};

Stepper make_run(const Case& c, DType dt, Device device) {
  Stepper r{{}, c.make()};
  for (std::size_t k = 0; k < std::size(kShapes); ++k) {
    r.params.push_back(test::make_param(test::uniform_values(kShapes[k].numel(), -1, 1, 100 + k), kShapes[k], dt, device));
  }
  return r;
}

// Step t: gradients from a fixed seed; the matrix has none on step 2.
void step(Stepper& r, int t) {
  for (std::size_t k = 0; k < r.params.size(); ++k) {
    if (t == 2 && k == 1) {
      r.params[k].set_grad(Tensor());
      continue;
    }
    test::set_grad_values(r.params[k], test::uniform_values(r.params[k].numel(), -2, 2, 1000 * t + k));
  }
  r.opt->apply_gradients(r.params);
}

// Bitwise in SIM; on hardware a few ulp of fused multiply-adds (16-bit dtypes: their
// rounding).
test::Tolerance tolerance(DType dt) {
  if (cuda::is_simulated()) return {0, 0};
  return dt == float64 ? test::Tolerance{1e-14, 1e-13} : test::tolerance_for(dt);
}

TEST(OptimizersCuda, FusedStepMatchesCpuForEveryOptimizerAndDtype) {
  KILN_REQUIRE_CUDA();
  for (const Case& c : cases()) {
    for (DType dt : test::kFloatDTypes) {
      Stepper host = make_run(c, dt, kCpu), device = make_run(c, dt, kCuda0);
      for (int t = 1; t <= 3; ++t) {
        step(host, t);
        step(device, t);
        for (std::size_t k = 0; k < host.params.size(); ++k) {
          ASSERT_TRUE(test::all_close(device.params[k], host.params[k], tolerance(dt)))
              << c.name << " " << dt << " step " << t << " parameter " << k;
        }
      }
      for (const auto& spec : host.opt->slot_specs()) {
        for (std::size_t k = 0; k < host.params.size(); ++k) {
          EXPECT_TRUE(test::all_close(device.opt->slot(device.params[k], spec.name),
                                      host.opt->slot(host.params[k], spec.name), tolerance(dt)))
              << c.name << " " << dt << " slot " << spec.name << " parameter " << k;
        }
      }
      EXPECT_EQ(device.params[0].device(), kCuda0);
    }
  }
}

TEST(OptimizersCuda, GlobalClipnormSpansDevicesAndDtypes) {
  KILN_REQUIRE_CUDA();
  // Joint norm 5 over a cuda float32 and a cpu float64 parameter, clipped to 1.
  Tensor a = test::make_param({0.0}, {1}, float32, kCuda0), b = test::make_param({0.0}, {1}, float64, kCpu);
  test::set_grad_values(a, {3.0});
  test::set_grad_values(b, {4.0});
  optimizers::SGD sgd({.learning_rate = 1.0, .global_clipnorm = 1.0});
  sgd.apply_gradients({a, b});
  EXPECT_NEAR(a.item<double>(), -0.6, 1e-7);
  EXPECT_NEAR(b.item<double>(), -0.8, 1e-15);
}

TEST(OptimizersCuda, ParametersMovedToAnotherDeviceRepackWithTheirSlots) {
  KILN_REQUIRE_CUDA();
  Tensor host = test::make_param({1.0, 2.0}, {2}, float32, kCpu);
  Tensor moved = test::make_param({1.0, 2.0}, {2}, float32, kCpu);
  optimizers::Adam a({.learning_rate = 0.1}), b({.learning_rate = 0.1});
  test::set_grad_values(host, {0.5, -0.5});
  test::set_grad_values(moved, {0.5, -0.5});
  a.apply_gradients({host});
  b.apply_gradients({moved});
  // Re-point `moved` at a cuda copy (what moving a model does); b repacks on cuda:0 and
  // copies its m and v over.
  const Tensor on_cuda = moved.detach().to(kCuda0);
  moved.unsafe_impl().storage = on_cuda.storage();
  moved.unsafe_impl().offset = on_cuda.offset();
  moved.set_grad(Tensor());
  test::set_grad_values(host, {0.25, 1.0});
  test::set_grad_values(moved, {0.25, 1.0});
  a.apply_gradients({host});
  b.apply_gradients({moved});
  EXPECT_EQ(b.slot(moved, "velocity").device(), kCuda0);
  EXPECT_TRUE(test::all_close(moved, host, tolerance(float32)));
}

}  // namespace
}  // namespace kiln
