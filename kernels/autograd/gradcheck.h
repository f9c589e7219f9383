// The one gradient checker: compares the gradients an op's recorded backward computes
// (kiln::backward) with central differences of the forward, in float64, on any device.
// A differentiable op is certified by one line:
//   auto r = kiln::gradcheck([](const std::vector<Tensor>& in) { return kiln::tanh(in[0]); },
//                            {kiln::randn({3, 4}, {.dtype = kiln::float64})});
//   EXPECT_TRUE(r.ok) << r.message;
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

struct GradcheckOptions {
  double eps = 1e-6;   // the central-difference step
  double atol = 1e-5;  // an element passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  std::uint64_t seed = 0;  // Philox seed of the random upstream gradient v
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // empty when ok; else one line per failing input
};

// Checks d(sum(v * f(inputs)))/d(input) for every checked input: those with
// requires_grad(), or every floating input when none requires grad. v is a random normal
// tensor shaped like the output (Philox, options.seed), or 1 for a one-element output.
// Floating inputs must be float64 (TypeError otherwise); integer and bool inputs (labels,
// indices) pass through unchecked. Inputs keep their layout (a transposed or strided view
// is checked as such; an expanded one, or one sharing storage with an earlier input, is
// first copied) and are perturbed in place one element at a time under NoGradGuard, then
// restored exactly; the caller's tensors get no .grad(). A failure message names the input, its worst
// element's index, and the analytic and numeric values there.
GradcheckResult gradcheck(std::function<Tensor(const std::vector<Tensor>&)> f, std::vector<Tensor> inputs,
                          GradcheckOptions options = {});

}  // namespace kiln
