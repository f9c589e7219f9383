// cpu softmax/log_softmax over contiguous rows: one row per OpenMP iteration, three
// passes (max, sum of exponentials, write) in the compute type (float for 16-bit floats).
#include <limits>
#include <type_traits>

#include "kiln/core/convert.h"
#include "kiln/core/error.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/softmax_impl.h"
#include "kiln/kernels/visit_floating.h"

namespace kiln::cpu {
namespace {

constexpr std::int64_t kParallelWork = 1 << 15;

template <class T>
void forward_rows(const SoftmaxLayout& l) {
  using C = math::compute_t<T>;
  const auto* x = static_cast<const T*>(l.x);
  auto* y = static_cast<T*>(l.y);
  const std::int64_t K = l.K;
#pragma omp parallel for if (l.rows * K > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const T* xr = x + r * K;
    T* yr = y + r * K;
    C m = -std::numeric_limits<C>::infinity();
    for (std::int64_t k = 0; k < K; ++k) {
      const C v = convert<C>(xr[k]);
      m = (math::isnan(v) || v > m) ? v : m;  // a NaN makes the whole row NaN
    }
    C s = 0;
    if constexpr (std::is_same_v<T, C>) {
      if (!l.log) {  // keep exp(x - m) in y: one exp per element
        for (std::int64_t k = 0; k < K; ++k) s += (yr[k] = math::exp(xr[k] - m));
        const C inv = C(1) / s;
        for (std::int64_t k = 0; k < K; ++k) yr[k] *= inv;
        continue;
      }
    }
    for (std::int64_t k = 0; k < K; ++k) s += math::exp(convert<C>(xr[k]) - m);
    if (l.log) {
      // (x - m) - log(s), not x - (m + log(s)): m + log(s) would round at |m| ~ 1e4.
      const C log_s = math::log(s);
      for (std::int64_t k = 0; k < K; ++k) yr[k] = convert<T>((convert<C>(xr[k]) - m) - log_s);
    } else {
      const C inv = C(1) / s;
      for (std::int64_t k = 0; k < K; ++k) yr[k] = convert<T>(math::exp(convert<C>(xr[k]) - m) * inv);
    }
  }
}

template <class T>
void backward_rows(const SoftmaxGradLayout& l) {
  using C = math::compute_t<T>;
  const auto* y = static_cast<const T*>(l.y);
  const auto* g = static_cast<const T*>(l.g);
  auto* gx = static_cast<T*>(l.gx);
  const std::int64_t K = l.K;
#pragma omp parallel for if (l.rows * K > kParallelWork) schedule(static)
  for (std::int64_t r = 0; r < l.rows; ++r) {
    const T* yr = y + r * K;
    const T* gr = g + r * K;
    T* out = gx + r * K;
    C dot = 0;
    for (std::int64_t k = 0; k < K; ++k) dot += l.log ? convert<C>(gr[k]) : convert<C>(gr[k]) * convert<C>(yr[k]);
    for (std::int64_t k = 0; k < K; ++k) {
      const C yv = convert<C>(yr[k]), gv = convert<C>(gr[k]);
      out[k] = convert<T>(l.log ? gv - math::exp(yv) * dot : yv * (gv - dot));
    }
  }
}

}  // namespace

void softmax_forward(const SoftmaxLayout& layout) {
  visit_floating(layout.dtype, "softmax", "cpu", [&]<class T>() { forward_rows<T>(layout); });
}

void softmax_backward(const SoftmaxGradLayout& layout) {
  visit_floating(layout.dtype, "softmax backward", "cpu", [&]<class T>() { backward_rows<T>(layout); });
}

}  // namespace kiln::cpu
