// cpu implementation of the reductions over a contiguous (outer, K, inner) block: rows
// (inner == 1) run kLanes independent accumulators for instruction-level parallelism;
// columns (inner > 1) keep a row of accumulators and walk memory in order, row by row.
// OpenMP splits the outputs across threads, or K itself when there are too few outputs
// (a full reduction); `omp simd` vectorises the lanes and column tiles (the build's -O2
// alone would not). Note [Blocked accumulation]: every kBlock elements the partial
// result folds into the running total, so a float32 sum's error grows with kBlock + K /
// kBlock rather than with K.
#include <omp.h>

#include <algorithm>
#include <memory>

#include "kiln/core/error.h"
#include "kiln/kernels/reduce_impl.h"

namespace kiln::cpu {
namespace {

constexpr std::int64_t kBlock = 1024;
constexpr int kLanes = 8;
constexpr std::int64_t kParallelWork = 1 << 15;

// The accumulator of x[k0, k1) of one unit-stride row (Note [Blocked accumulation]).
template <class R, class T>
typename R::acc_t row_range(const R& r, const T* x, std::int64_t k0, std::int64_t k1, T first) {
  using Acc = typename R::acc_t;
  Acc total = r.init(first);
  for (std::int64_t b = k0; b < k1; b += kBlock) {
    const std::int64_t end = std::min(b + kBlock, k1);
    Acc lanes[kLanes];
    for (auto& a : lanes) a = r.init(first);
    std::int64_t k = b;
    for (; k + kLanes <= end; k += kLanes) {
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) lanes[j] = r.step(lanes[j], x[k + j], k + j);
    }
    for (; k < end; ++k) lanes[0] = r.step(lanes[0], x[k], k);
    for (const auto& a : lanes) total = r.combine(total, a);
  }
  return total;
}

// Columns: acc[0, inner) accumulates rows k in [k0, k1) of block o, walking memory in
// order (whole rows, unit stride), folding a `block` of partials in every kBlock rows.
template <class R, class T>
void column_range(const R& r, const ReduceLayout& l, std::int64_t o, std::int64_t k0, std::int64_t k1,
                  typename R::acc_t* acc, typename R::acc_t* block) {
  const T* x = static_cast<const T*>(l.x) + o * l.K * l.inner;
  const std::int64_t inner = l.inner;
  for (std::int64_t i = 0; i < inner; ++i) acc[i] = r.init(x[i]);
  for (std::int64_t b = k0; b < k1; b += kBlock) {
    const std::int64_t end = std::min(b + kBlock, k1);
    for (std::int64_t i = 0; i < inner; ++i) block[i] = r.init(x[i]);
    for (std::int64_t k = b; k < end; ++k) {
      const T* row = x + k * inner;
#pragma omp simd
      for (std::int64_t i = 0; i < inner; ++i) block[i] = r.step(block[i], row[i], k);
    }
    for (std::int64_t i = 0; i < inner; ++i) acc[i] = r.combine(acc[i], block[i]);
  }
}

template <class R, class T>
void reduce_rows(const R& r, const ReduceLayout& l) {
  using Acc = typename R::acc_t;
  const T* x = static_cast<const T*>(l.x);
  auto* out = static_cast<typename R::out_t*>(l.out);
  const std::int64_t rows = l.outer, K = l.K;
  const int threads = omp_get_max_threads();
  if (rows >= threads || rows * K <= kParallelWork) {
#pragma omp parallel for if (rows * K > kParallelWork) schedule(static)
    for (std::int64_t o = 0; o < rows; ++o) {
      const T* row = x + o * K;
      out[o] = r.finish(row_range(r, row, std::int64_t{0}, K, K > 0 ? row[0] : T{}), K);
    }
    return;
  }
  // Few long rows: each row's K is split across the threads, partials merged in order.
  std::unique_ptr<Acc[]> parts(new Acc[static_cast<std::size_t>(threads)]);
  for (std::int64_t o = 0; o < rows; ++o) {
    const T* row = x + o * K;
    const std::int64_t chunk = (K + threads - 1) / threads;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < threads; ++p) {
      const std::int64_t k0 = std::min(K, p * chunk), k1 = std::min(K, k0 + chunk);
      parts[static_cast<std::size_t>(p)] = row_range(r, row, k0, k1, row[0]);
    }
    Acc total = r.init(row[0]);
    for (int p = 0; p < threads; ++p) total = r.combine(total, parts[p]);
    out[o] = r.finish(total, K);
  }
}

template <class R, class T>
void reduce_columns(const R& r, const ReduceLayout& l) {
  using Acc = typename R::acc_t;
  auto* out = static_cast<typename R::out_t*>(l.out);
  const std::int64_t outputs = l.outer * l.inner;
  if (l.K == 0) {
    for (std::int64_t j = 0; j < outputs; ++j) out[j] = r.finish(r.init(T{}), 0);
    return;
  }
  // Units are (block o, chunk c of K); K is split only when the blocks alone are too few
  // to share among the threads. parts[c * outputs + j] is chunk c's partial of output j.
  const int threads = omp_get_max_threads();
  const bool parallel = outputs * l.K > kParallelWork;
  const std::int64_t chunks = parallel && l.outer < threads ? std::min<std::int64_t>(l.K, threads) : 1;
  const std::int64_t chunk = (l.K + chunks - 1) / chunks;
  // unique_ptr, not std::vector: Acc may be bool.
  std::unique_ptr<Acc[]> parts(new Acc[static_cast<std::size_t>(chunks * outputs)]);
#pragma omp parallel if (parallel)
  {
    std::unique_ptr<Acc[]> block(new Acc[static_cast<std::size_t>(l.inner)]);
#pragma omp for collapse(2) schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) {
      for (std::int64_t o = 0; o < l.outer; ++o) {
        const std::int64_t k0 = std::min(l.K, c * chunk), k1 = std::min(l.K, k0 + chunk);
        column_range<R, T>(r, l, o, k0, k1, &parts[static_cast<std::size_t>(c * outputs + o * l.inner)], block.get());
      }
    }
  }
#pragma omp parallel for if (parallel) schedule(static)
  for (std::int64_t j = 0; j < outputs; ++j) {
    Acc total = parts[static_cast<std::size_t>(j)];
    for (std::int64_t c = 1; c < chunks; ++c) total = r.combine(total, parts[static_cast<std::size_t>(c * outputs + j)]);
    out[j] = r.finish(total, l.K);
  }
}

}  // namespace

void reduce(const ReduceParams& params, const ReduceLayout& layout) {
  if (layout.outer * layout.inner == 0) return;
  visit_dtype(layout.dtype, [&]<class T>() {
    visit_reducer<T>(params, [&](const auto& r) {
      using R = std::decay_t<decltype(r)>;
      if (layout.inner == 1) {
        reduce_rows<R, T>(r, layout);
      } else {
        reduce_columns<R, T>(r, layout);
      }
    });
  });
}

void reduce_backward(const reduce_math::GradParams& params, const ReduceGradLayout& l) {
  visit_dtype(l.dtype, [&]<class T>() {
    if constexpr (std::is_floating_point_v<math::compute_t<T>>) {
      using C = math::compute_t<T>;
      auto* gx = static_cast<T*>(l.gx);
      const auto* x = static_cast<const T*>(l.x);
      const auto* y = static_cast<const T*>(l.y);
      const auto* g = static_cast<const T*>(l.g);
      const auto* mean = static_cast<const T*>(l.mean);
      const std::int64_t K = l.K, inner = l.inner;
#pragma omp parallel for collapse(2) if (l.outer * K * inner > kParallelWork) schedule(static)
      for (std::int64_t o = 0; o < l.outer; ++o) {
        for (std::int64_t k = 0; k < K; ++k) {
          for (std::int64_t i = 0; i < inner; ++i) {
            const std::int64_t row = o * inner + i, at = (o * K + k) * inner + i;
            const C v = reduce_math::grad_of<C>(
                params, x ? convert<C>(x[at]) : C(0), k, y ? convert<C>(y[row]) : C(0),
                convert<C>(g[row]), mean ? convert<C>(mean[row]) : C(0), l.index ? l.index[row] : -1);
            gx[at] = convert<T>(v);
          }
        }
      }
    } else {
      KILN_THROW(InternalError, "reduce_backward: non-floating dtype ", l.dtype);
    }
  });
}

}  // namespace kiln::cpu
