// cpu implementation of the indexing ops: take (row copies), scatter_add (split over
// threads by column ranges of the inner axis, so no two threads add into one element),
// gather and its backward, one_hot. See kernels/shape_ops_impl.h for the layouts.
#include <algorithm>
#include <cstring>

#include "kiln/core/convert.h"
#include "kiln/kernels/cpu/loops.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/shape_ops_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln::cpu {
namespace {

template <class F>
decltype(auto) visit_index_dtype(DType dtype, F&& f) {
  if (dtype == DType::int32) return f.template operator()<std::int32_t>();
  KILN_ASSERT(dtype == DType::int64, "indices of dtype ", dtype, " reached the cpu kernel");
  return f.template operator()<std::int64_t>();
}

// The dtypes accumulating kernels accept (the op checks before dispatch).
template <class F>
void visit_accumulate_dtype(DType dtype, F&& f) {
  visit_dtype(dtype, [&]<class T>() {
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::uint8_t>) {
      KILN_THROW(InternalError, "scatter_add: dtype ", dtype, " reached the cpu kernel");
    } else {
      f.template operator()<T>();
    }
  });
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

std::int64_t first_bad_index(const void* indices, DType index_dtype, std::int64_t count, std::int64_t lo,
                             std::int64_t hi) {
  return visit_index_dtype(index_dtype, [&]<class I>() -> std::int64_t {
    const auto* idx = static_cast<const I*>(indices);
    for (std::int64_t i = 0; i < count; ++i) {
      if (idx[i] < lo || idx[i] >= hi) return i;
    }
    return -1;
  });
}

void take(const TakePlan& p, const void* x, const void* indices, void* out) {
  const std::size_t row_bytes = static_cast<std::size_t>(p.inner) * itemsize(p.dtype);
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(out);
  visit_index_dtype(p.index_dtype, [&]<class I>() {
    const auto* idx = static_cast<const I*>(indices);
    const std::int64_t rows = p.outer * p.count;
#pragma omp parallel for if (rows * p.inner > kParallelGrain) schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t o = r / p.count, k = r % p.count;
      const std::int64_t from = o * p.extent + wrap_index(static_cast<std::int64_t>(idx[k]), p.extent);
      std::memcpy(dst + r * row_bytes, src + from * row_bytes, row_bytes);
    }
  });
}

void scatter_add(const TakePlan& p, const void* src, const void* indices, void* acc) {
  visit_accumulate_dtype(p.dtype, [&]<class T>() {
    using A = math::compute_t<T>;
    const auto* s = static_cast<const T*>(src);
    auto* a = static_cast<A*>(acc);
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      const auto* idx = static_cast<const I*>(indices);
      // Each thread owns columns [begin, end) of the inner axis for every (o, k).
      const std::int64_t work = p.outer * p.count * p.inner;
      const int chunks =
          work > kParallelGrain ? static_cast<int>(std::min<std::int64_t>(thread_count(), p.inner)) : 1;
#pragma omp parallel for if (chunks > 1) schedule(static)
      for (int chunk = 0; chunk < chunks; ++chunk) {
        const std::int64_t begin = p.inner * chunk / chunks, end = p.inner * (chunk + 1) / chunks;
        for (std::int64_t o = 0; o < p.outer; ++o) {
          for (std::int64_t k = 0; k < p.count; ++k) {
            const std::int64_t to =
                (o * p.extent + wrap_index(static_cast<std::int64_t>(idx[k]), p.extent)) * p.inner;
            const std::int64_t from = (o * p.count + k) * p.inner;
            for (std::int64_t i = begin; i < end; ++i) a[to + i] += convert<A>(s[from + i]);
          }
        }
      }
    });
  });
}

void gather(const GatherPlan& p, const void* x, const void* indices, void* out) {
  visit_dtype(p.dtype, [&]<class T>() {
    const auto* xs = static_cast<const T*>(x);
    auto* o = static_cast<T*>(out);
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      const auto* idx = static_cast<const I*>(indices);
#pragma omp parallel for if (p.numel > kParallelGrain) schedule(static)
      for (std::int64_t i = 0; i < p.numel; ++i)
        o[i] = xs[gather_offset(p, i, static_cast<std::int64_t>(idx[i]))];
    });
  });
}

void gather_backward(const GatherPlan& p, const void* src, const void* indices, void* acc) {
  visit_accumulate_dtype(p.dtype, [&]<class T>() {
    using A = math::compute_t<T>;
    const auto* s = static_cast<const T*>(src);
    auto* a = static_cast<A*>(acc);
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      const auto* idx = static_cast<const I*>(indices);
      for (std::int64_t i = 0; i < p.numel; ++i) {
        a[gather_offset(p, i, static_cast<std::int64_t>(idx[i]))] += convert<A>(s[i]);
      }
    });
  });
}

void one_hot(const void* indices, DType index_dtype, std::int64_t count, std::int64_t depth, void* out,
             DType out_dtype) {
  visit_dtype(out_dtype, [&]<class T>() {
    auto* o = static_cast<T*>(out);
    const T one = convert<T>(1), zero = convert<T>(0);
    visit_index_dtype(index_dtype, [&]<class I>() {
      const auto* idx = static_cast<const I*>(indices);
#pragma omp parallel for if (count * depth > kParallelGrain) schedule(static)
      for (std::int64_t r = 0; r < count; ++r) {
        for (std::int64_t c = 0; c < depth; ++c)
          o[r * depth + c] = static_cast<std::int64_t>(idx[r]) == c ? one : zero;
      }
    });
  });
}

}  // namespace kiln::cpu
