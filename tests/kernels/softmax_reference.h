// The softmax test table shared by softmax_test.cpp (cpu against float64 references) and
// reduce_cuda_test.cpp (cuda against cpu): shapes and axes at the kernels' edges (a warp
// per row up to 1024 elements, a block per row past it), references and tolerances.
#pragma once

#include <cmath>
#include <vector>

#include "op_test_util.h"

namespace kiln::test {

struct SoftmaxCase {
  Shape shape;
  std::int64_t axis;
};

inline std::vector<SoftmaxCase> softmax_cases() {
  return {{{1, 1}, -1},  {{3, 1}, 1},    {{5, 7}, -1},     {{4, 33}, 1},   {{2, 1024}, -1},
          {{2, 1025}, -1}, {{3, 4, 5}, 1}, {{3, 4, 5}, 0},  {{0, 5}, -1},   {{6}, 0},
          {{2, 3, 1}, 1}};
}

// float64 softmax (or log_softmax) of x's values along `axis`, row-major like x.
inline std::vector<double> softmax_reference(const Tensor& x, std::int64_t axis, bool log) {
  const std::vector<double> v = host_values(x);
  const Shape& s = x.shape();
  const int a = static_cast<int>(axis < 0 ? axis + s.ndim() : axis);
  std::int64_t inner = 1;
  for (int d = a + 1; d < s.ndim(); ++d) inner *= s[d];
  const std::int64_t K = s[a], outer = K == 0 ? 0 : s.numel() / (K * inner);
  std::vector<double> out(v.size());
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const auto at = [&](std::int64_t k) { return static_cast<std::size_t>((o * K + k) * inner + i); };
      double m = -INFINITY;
      for (std::int64_t k = 0; k < K; ++k) m = std::max(m, v[at(k)]);
      double sum = 0;
      for (std::int64_t k = 0; k < K; ++k) sum += std::exp(v[at(k)] - m);
      for (std::int64_t k = 0; k < K; ++k) {
        out[at(k)] = log ? v[at(k)] - m - std::log(sum) : std::exp(v[at(k)] - m) / sum;
      }
    }
  }
  return out;
}

// Elementwise rounding plus the row sum's accumulation in the compute type.
inline Tolerance softmax_tolerance(DType dt) {
  const Tolerance t = tolerance_for(dt);
  return {t.atol, t.rtol * 4};
}

}  // namespace kiln::test
