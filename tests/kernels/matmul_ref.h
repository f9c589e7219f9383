// Float64 references for the matmul tests: NumPy's matmul (1-D promotion, broadcast batch
// axes) and linear, computed on the host from any tensor's values, plus the table of
// GEMM shapes at the native kernel's tile edges.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::test {

struct GemmShape {
  std::int64_t m, k, n;
};

// Sizes at the edges of the 64- and 128-wide tiles and the 4-wide vectors, odd ones, and 1.
inline const std::vector<GemmShape> kTileEdgeShapes = {
    {1, 1, 1},     {7, 5, 3},    {1, 129, 7},   {63, 64, 65},  {64, 64, 64},
    {65, 127, 129}, {129, 65, 127}, {127, 1, 63}, {128, 8, 128}, {3, 17, 1},
};

// Integer values in [-3, 3] from a simple recurrence: products and sums of them are exact
// in every dtype's float32 accumulation, and the one rounding of C matches the reference's.
inline std::vector<double> small_integers(std::int64_t n, std::uint64_t seed) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::uint64_t s = seed * 2654435761u + 12345u;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<double>(static_cast<std::int64_t>((s >> 33) % 7) - 3);
  }
  return v;
}

// NumPy matmul of a and b in float64, row-major values of the result.
inline std::vector<double> reference_matmul(const Tensor& a, const Tensor& b) {
  Tensor a2 = a.detach(), b2 = b.detach();
  if (a2.ndim() == 1) a2 = a2.unsqueeze(0);
  if (b2.ndim() == 1) b2 = b2.unsqueeze(1);
  const Shape batch = broadcast_shapes(Shape(a2.shape().span().first(a2.ndim() - 2)),
                                       Shape(b2.shape().span().first(b2.ndim() - 2)));
  Shape a_full = batch, b_full = batch;
  const std::int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  a_full.push_back(m);
  a_full.push_back(k);
  b_full.push_back(k);
  b_full.push_back(n);
  const std::vector<double> av = a2.expand(a_full).to_vector<double>();
  const std::vector<double> bv = b2.expand(b_full).to_vector<double>();
  const std::int64_t batches = batch.numel();
  std::vector<double> out(static_cast<std::size_t>(batches * m * n), 0.0);
  for (std::int64_t bi = 0; bi < batches; ++bi) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::int64_t p = 0; p < k; ++p) {
          acc += av[static_cast<std::size_t>((bi * m + i) * k + p)] *
                 bv[static_cast<std::size_t>((bi * k + p) * n + j)];
        }
        out[static_cast<std::size_t>((bi * m + i) * n + j)] = acc;
      }
    }
  }
  return out;
}

// x · wᵀ + bias in float64 (bias may be undefined).
inline std::vector<double> reference_linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  std::vector<double> y = reference_matmul(x, w.detach().t());
  if (bias.defined()) {
    const std::vector<double> bv = bias.to_vector<double>();
    for (std::size_t i = 0; i < y.size(); ++i) y[i] += bv[i % bv.size()];
  }
  return y;
}

}  // namespace kiln::test
