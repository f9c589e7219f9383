// cpu batch and layer normalization over contiguous (rows, C) data (Note [Normalization
// formulas] in kernels/normalization_impl.h). Sums accumulate in double on every dtype
// (cheap on a host, and it keeps the cpu results a reference for the cuda ones); the
// batch statistics are two-pass: the mean, then the sum of squared deviations from it.
// Per-column sums give each OpenMP thread a slice of the rows and its own accumulators.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kiln/core/convert.h"
#include "kiln/core/error.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/normalization_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cpu {
namespace {

constexpr std::int64_t kParallelWork = 1 << 15;

int threads_for(std::int64_t work) { return work > kParallelWork ? omp_get_max_threads() : 1; }

// out[j * C + c] = sum over rows r of what body(r, acc) adds into acc[j * C + c], for
// j < width: each thread adds its contiguous slice of rows into its own accumulators
// (zeroed), then the slices are added in thread order.
template <class Body>
std::vector<double> column_sums(std::int64_t rows, std::int64_t C, int width, Body body) {
  const int threads = threads_for(rows * C);
  const auto n = static_cast<std::size_t>(width * C);
  std::vector<std::vector<double>> parts(static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    std::vector<double>& acc = parts[static_cast<std::size_t>(t)];
    acc.assign(n, 0.0);
    const std::int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    for (std::int64_t r = r0; r < r1; ++r) body(r, acc.data());
  }
  std::vector<double> out(n, 0.0);
  for (const std::vector<double>& acc : parts) {
    for (std::size_t i = 0; i < acc.size(); ++i) out[i] += acc[i];
  }
  return out;
}

template <class S>
S invstd_of(double var, double epsilon) {
  return static_cast<S>(1.0 / std::sqrt(var + epsilon));
}

template <class T>
void stats(const BatchNormStatsLayout& l) {
  using S = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  auto* mean = static_cast<S*>(l.mean);
  auto* invstd = static_cast<S*>(l.invstd);
  auto* rm = static_cast<S*>(l.running_mean);
  auto* rv = static_cast<S*>(l.running_var);
  const std::int64_t rows = l.rows, C = l.C;
  if (!l.training || rows == 0) {
    // Inference, or a training batch with no rows: nothing to learn, running stats stay.
    for (std::int64_t c = 0; c < C; ++c) {
      mean[c] = l.training ? S(0) : rm[c];
      invstd[c] = invstd_of<S>(l.training ? 0.0 : static_cast<double>(rv[c]), l.epsilon);
    }
    return;
  }
  const std::vector<double> sums = column_sums(rows, C, 1, [&](std::int64_t r, double* acc) {
    const T* xr = x + r * C;
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) acc[c] += convert<double>(xr[c]);
  });
  std::vector<double> mu(static_cast<std::size_t>(C));
  for (std::int64_t c = 0; c < C; ++c) mu[c] = sums[c] / static_cast<double>(rows);
  const std::vector<double> squares = column_sums(rows, C, 1, [&](std::int64_t r, double* acc) {
    const T* xr = x + r * C;
    const double* m = mu.data();
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) {
      const double d = convert<double>(xr[c]) - m[c];
      acc[c] += d * d;
    }
  });
  const double n = static_cast<double>(rows), keep = l.momentum, take = 1.0 - l.momentum;
  for (std::int64_t c = 0; c < C; ++c) {
    const double var = squares[c] / n;
    mean[c] = static_cast<S>(mu[c]);
    invstd[c] = invstd_of<S>(var, l.epsilon);
    rm[c] = static_cast<S>(static_cast<double>(rm[c]) * keep + mu[c] * take);
    rv[c] = static_cast<S>(static_cast<double>(rv[c]) * keep + var * take);  // biased, as Keras 3 (PyTorch: unbiased)
  }
}

template <class T>
void apply(const BatchNormApplyLayout& l) {
  using S = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  auto* y = static_cast<T*>(l.y);
  const auto* mean = static_cast<const S*>(l.mean);
  const auto* gamma = static_cast<const S*>(l.gamma);
  const auto* beta = static_cast<const S*>(l.beta);
  const std::int64_t C = l.C;
  std::vector<S> scale(static_cast<std::size_t>(C)), shift(static_cast<std::size_t>(C));
  for (std::int64_t c = 0; c < C; ++c) {
    scale[c] = static_cast<const S*>(l.invstd)[c] * (gamma ? gamma[c] : S(1));
    shift[c] = beta ? beta[c] : S(0);
  }
#pragma omp parallel for num_threads(threads_for(l.rows * C)) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    for (std::int64_t c = 0; c < C; ++c) yr[c] = convert<T>((convert<S>(xr[c]) - mean[c]) * scale[c] + shift[c]);
  }
}

template <class T>
void grad_sums(const NormGradSumsLayout& l) {
  using S = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  const auto* dy = static_cast<const T*>(l.dy);
  const auto* mean = static_cast<const S*>(l.mean);
  const auto* invstd = static_cast<const S*>(l.invstd);
  const std::int64_t C = l.C;
  // Per column: sum(dy * (x - mean)), times invstd at the end. Per row: sum(dy * xhat).
  const std::vector<double> sums = column_sums(l.rows, C, 2, [&](std::int64_t r, double* acc) {
    const T* xr = x + r * C;
    const T* gr = dy + r * C;
    if (l.per_row) {
      const double m = mean[r], s = invstd[r];
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) {
        const double g = convert<double>(gr[c]);
        acc[c] += g;
        acc[C + c] += g * (convert<double>(xr[c]) - m) * s;
      }
    } else {
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) {
        const double g = convert<double>(gr[c]);
        acc[c] += g;
        acc[C + c] += g * (convert<double>(xr[c]) - static_cast<double>(mean[c]));
      }
    }
  });
  auto* sum_dy = static_cast<S*>(l.sum_dy);
  auto* sum_dy_xhat = static_cast<S*>(l.sum_dy_xhat);
  for (std::int64_t c = 0; c < C; ++c) {
    sum_dy[c] = static_cast<S>(sums[c]);
    sum_dy_xhat[c] = static_cast<S>(sums[C + c] * (l.per_row ? 1.0 : static_cast<double>(invstd[c])));
  }
}

template <class T>
void bn_backward(const BatchNormGradLayout& l) {
  using S = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  const auto* dy = static_cast<const T*>(l.dy);
  auto* dx = static_cast<T*>(l.dx);
  const auto* mean = static_cast<const S*>(l.mean);
  const auto* invstd = static_cast<const S*>(l.invstd);
  const auto* gamma = static_cast<const S*>(l.gamma);
  const std::int64_t C = l.C;
  // dx = k * (dy - a - (x - mean) * b) with k = gamma * invstd, a = sum(dy) / M and
  // b = invstd * sum(dy * xhat) / M (a = b = 0 in inference).
  std::vector<S> k(static_cast<std::size_t>(C)), a(k.size()), b(k.size());
  const double M = static_cast<double>(l.rows);
  for (std::int64_t c = 0; c < C; ++c) {
    k[c] = invstd[c] * (gamma ? gamma[c] : S(1));
    a[c] = l.training ? static_cast<S>(static_cast<const S*>(l.sum_dy)[c] / M) : S(0);
    b[c] = l.training ? static_cast<S>(static_cast<const S*>(l.sum_dy_xhat)[c] * invstd[c] / M) : S(0);
  }
#pragma omp parallel for num_threads(threads_for(l.rows * C)) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const T* xr = x + r * C;
    const T* gr = dy + r * C;
    T* out = dx + r * C;
    for (std::int64_t c = 0; c < C; ++c) {
      out[c] = convert<T>(k[c] * (convert<S>(gr[c]) - a[c] - (convert<S>(xr[c]) - mean[c]) * b[c]));
    }
  }
}

template <class T>
void ln_forward(const LayerNormLayout& l) {
  using S = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  auto* y = static_cast<T*>(l.y);
  const auto* gamma = static_cast<const S*>(l.gamma);
  const auto* beta = static_cast<const S*>(l.beta);
  auto* mean_out = static_cast<S*>(l.mean);
  auto* invstd_out = static_cast<S*>(l.invstd);
  const std::int64_t K = l.K;
#pragma omp parallel for num_threads(threads_for(l.rows * K)) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const T* xr = x + r * K;
    T* yr = y + r * K;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t k = 0; k < K; ++k) s += convert<double>(xr[k]);
    const double mean = s / static_cast<double>(K);
    double q = 0;
#pragma omp simd reduction(+ : q)
    for (std::int64_t k = 0; k < K; ++k) {
      const double d = convert<double>(xr[k]) - mean;
      q += d * d;
    }
    const double invstd = 1.0 / std::sqrt(q / static_cast<double>(K) + l.epsilon);
    for (std::int64_t k = 0; k < K; ++k) {
      const double g = gamma ? static_cast<double>(gamma[k]) : 1.0;
      const double b = beta ? static_cast<double>(beta[k]) : 0.0;
      yr[k] = convert<T>((convert<double>(xr[k]) - mean) * invstd * g + b);
    }
    mean_out[r] = static_cast<S>(mean);
    invstd_out[r] = static_cast<S>(invstd);
  }
}

template <class T>
void ln_backward(const LayerNormGradLayout& l) {
  using S = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  const auto* dy = static_cast<const T*>(l.dy);
  auto* dx = static_cast<T*>(l.dx);
  const auto* gamma = static_cast<const S*>(l.gamma);
  const auto* means = static_cast<const S*>(l.mean);
  const auto* invstds = static_cast<const S*>(l.invstd);
  const std::int64_t K = l.K;
#pragma omp parallel for num_threads(threads_for(l.rows * K)) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const T* xr = x + r * K;
    const T* gr = dy + r * K;
    T* out = dx + r * K;
    const double mean = means[r], invstd = invstds[r];
    double sg = 0, sgx = 0;  // sum(g), sum(g * xhat), g = dy * gamma
#pragma omp simd reduction(+ : sg, sgx)
    for (std::int64_t k = 0; k < K; ++k) {
      const double g = convert<double>(gr[k]) * (gamma ? static_cast<double>(gamma[k]) : 1.0);
      sg += g;
      sgx += g * (convert<double>(xr[k]) - mean) * invstd;
    }
    const double mg = sg / static_cast<double>(K), mgx = sgx / static_cast<double>(K);
    for (std::int64_t k = 0; k < K; ++k) {
      const double g = convert<double>(gr[k]) * (gamma ? static_cast<double>(gamma[k]) : 1.0);
      const double xhat = (convert<double>(xr[k]) - mean) * invstd;
      out[k] = convert<T>(invstd * (g - mg - xhat * mgx));
    }
  }
}

}  // namespace

void batch_norm_stats(const BatchNormStatsLayout& layout) {
  visit_floating(layout.dtype, "batch_norm", "cpu", [&]<class T>() { stats<T>(layout); });
}

void batch_norm_apply(const BatchNormApplyLayout& layout) {
  visit_floating(layout.dtype, "batch_norm", "cpu", [&]<class T>() { apply<T>(layout); });
}

void norm_grad_sums(const NormGradSumsLayout& layout) {
  visit_floating(layout.dtype, "normalization backward", "cpu", [&]<class T>() { grad_sums<T>(layout); });
}

void batch_norm_backward(const BatchNormGradLayout& layout) {
  visit_floating(layout.dtype, "batch_norm backward", "cpu", [&]<class T>() { bn_backward<T>(layout); });
}

void layer_norm_forward(const LayerNormLayout& layout) {
  visit_floating(layout.dtype, "layer_norm", "cpu", [&]<class T>() { ln_forward<T>(layout); });
}

void layer_norm_backward(const LayerNormGradLayout& layout) {
  visit_floating(layout.dtype, "layer_norm backward", "cpu", [&]<class T>() { ln_backward<T>(layout); });
}

}  // namespace kiln::cpu
