// Row-major walks over one or two StridedViews of the same shape on the host, without a
// division per element: the innermost axis is a tight loop, outer axes are a counter.
// Internal to core/ (the kernels/ library has its own vectorised CPU loops).
#pragma once

#include <cstdint>

#include "kiln/core/strided.h"

namespace kiln::detail {

// Calls f(offset_a, offset_b, linear_index) for every element, row-major. Offsets are in
// elements from a.data / b.data; b may be the same view as a.
template <class F>
void for_each_pair(const StridedView& a, const StridedView& b, F&& f) {
  const std::int64_t n = a.numel();
  if (n == 0) return;
  if (a.ndim == 0) {
    f(std::int64_t{0}, std::int64_t{0}, std::int64_t{0});
    return;
  }
  const int inner = a.ndim - 1;
  const std::int64_t len = a.shape[inner];
  const std::int64_t sa = a.strides[inner], sb = b.strides[inner];
  std::int64_t index[8] = {};
  std::int64_t base_a = 0, base_b = 0;
  for (std::int64_t done = 0; done < n; done += len) {
    for (std::int64_t i = 0; i < len; ++i) f(base_a + i * sa, base_b + i * sb, done + i);
    // Advance the outer counter (axes inner-1 .. 0), carrying like an odometer.
    for (int d = inner - 1; d >= 0; --d) {
      base_a += a.strides[d];
      base_b += b.strides[d];
      if (++index[d] < a.shape[d]) break;
      base_a -= a.strides[d] * a.shape[d];
      base_b -= b.strides[d] * b.shape[d];
      index[d] = 0;
    }
  }
}

template <class F>
void for_each_offset(const StridedView& v, F&& f) {
  for_each_pair(v, v, [&](std::int64_t off, std::int64_t, std::int64_t i) { f(off, i); });
}

}  // namespace kiln::detail
