// The unary op table shared by unary_test.cpp (float64 references, gradient checks) and
// unary_cuda_test.cpp (cuda against cpu): each op with its float64 reference formula,
// the input range its forward test samples, where its derivative has kinks (gradient
// checks sample away from them), and whether it takes int32/int64.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "kiln/kernels/unary.h"

namespace kiln::test {

struct UnaryCase {
  const char* name;  // a valid test-name suffix
  Tensor (*op)(const Tensor&);
  double (*reference)(double);  // in double with std:: math, stable at large |x|
  double lo, hi;                // forward inputs are drawn from [lo, hi)
  double grad_lo, grad_hi;      // gradient-check inputs, moved off the kinks below
  std::vector<double> kinks;
  bool integers = false;  // also defined on int32/int64 (exactly)
};

namespace unary_reference {
inline constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
inline constexpr double kSeluScale = 1.0507009873554804934193349852946;
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double softplus(double x) { return (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x))); }
// erfc keeps the erf form accurate for large negative x (no 1 + erf cancellation).
inline double gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
inline constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;
inline double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
}
inline double elu(double x, double alpha) { return x > 0 ? x : alpha * std::expm1(x); }
inline double sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : x); }
inline double selu(double x) { return kSeluScale * elu(x, kSeluAlpha); }
inline double hard_sigmoid(double x) { return std::fmin(std::fmax(x / 6 + 0.5, 0.0), 1.0); }
}  // namespace unary_reference

inline const std::vector<UnaryCase>& unary_cases() {
  namespace r = unary_reference;
  // clang-format off: one row per op
  static const std::vector<UnaryCase> cases = {
      {"neg", neg, [](double x) { return -x; }, -10, 10, -3, 3, {}, true},
      {"abs", abs, [](double x) { return std::fabs(x); }, -10, 10, -3, 3, {0}, true},
      {"exp", exp, [](double x) { return std::exp(x); }, -10, 10, -3, 3, {}},
      {"log", log, [](double x) { return std::log(x); }, 0.01, 100, 0.2, 4, {}},
      {"log1p", log1p, [](double x) { return std::log1p(x); }, -0.99, 100, -0.5, 4, {}},
      {"sqrt", sqrt, [](double x) { return std::sqrt(x); }, 0, 100, 0.2, 4, {}},
      {"rsqrt", rsqrt, [](double x) { return 1.0 / std::sqrt(x); }, 0.01, 100, 0.2, 4, {}},
      {"square", square, [](double x) { return x * x; }, -50, 50, -3, 3, {}, true},
      {"sign", sign, r::sign, -10, 10, -3, 3, {0}, true},
      {"relu", relu, [](double x) { return x > 0 ? x : 0.0; }, -10, 10, -3, 3, {0}, true},
      {"relu6", relu6, [](double x) { return std::fmin(std::fmax(x, 0.0), 6.0); }, -10, 10, -2, 8, {0, 6}},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); },
       [](double x) { return x > 0 ? x : 0.2 * x; }, -10, 10, -3, 3, {0}},
      {"leaky_relu_slope_0_01", [](const Tensor& x) { return leaky_relu(x, 0.01); },
       [](double x) { return x > 0 ? x : 0.01 * x; }, -10, 10, -3, 3, {0}},
      {"elu", [](const Tensor& x) { return elu(x); },
       [](double x) { return r::elu(x, 1.0); }, -10, 10, -3, 3, {}},
      {"elu_alpha_0_5", [](const Tensor& x) { return elu(x, 0.5); },
       [](double x) { return r::elu(x, 0.5); }, -10, 10, -3, 3, {0}},
      {"selu", selu, r::selu, -10, 10, -3, 3, {0}},
      {"gelu", [](const Tensor& x) { return gelu(x); }, r::gelu, -8, 8, -3, 3, {}},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, /*approximate=*/true); },
       r::gelu_tanh, -8, 8, -3, 3, {}},
      {"sigmoid", sigmoid, r::sigmoid, -20, 20, -4, 4, {}},
      {"hard_sigmoid", hard_sigmoid, r::hard_sigmoid, -6, 6, -5, 5, {-3, 3}},
      {"tanh", tanh, [](double x) { return std::tanh(x); }, -10, 10, -3, 3, {}},
      {"softplus", softplus, r::softplus, -20, 20, -4, 4, {}},
      {"softsign", softsign, [](double x) { return x / (1 + std::fabs(x)); }, -10, 10, -3, 3, {}},
      {"silu", silu, [](double x) { return x * r::sigmoid(x); }, -20, 20, -4, 4, {}},
      {"swish", swish, [](double x) { return x * r::sigmoid(x); }, -20, 20, -4, 4, {}},
  };
  // clang-format on
  return cases;
}

// Values for a gradient check: uniform in [grad_lo, grad_hi), each moved at least 0.1
// away from the op's kinks (where central differences straddle a corner).
inline std::vector<double> away_from_kinks(std::vector<double> values, const UnaryCase& c) {
  for (double& v : values) {
    for (double k : c.kinks) {
      if (std::fabs(v - k) < 0.1) v = v < k ? k - 0.1 : k + 0.1;
    }
  }
  return values;
}

inline std::string case_name(const UnaryCase& c) { return c.name; }

}  // namespace kiln::test
