// Dtype dispatch for kernels that only exist for floating dtypes, shared by the cpu (.cpp)
// and cuda (.cu) backends. The op front ends check the dtype first, so a non-floating dtype
// here is an internal error; it names the op and the device whose kernel it reached.
#pragma once

#include <type_traits>

#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/kernels/math.h"

namespace kiln {

// Calls f.template operator()<T>() with T the C++ type of dtype (float, double, Half,
// BFloat16): device is "cpu" or "cuda".
template <class F>
void visit_floating(DType dtype, const char* op, const char* device, F&& f) {
  visit_dtype(dtype, [&]<class T>() {
    if constexpr (std::is_floating_point_v<math::compute_t<T>>) {
      f.template operator()<T>();
    } else {
      KILN_THROW(InternalError, op, ": non-floating dtype ", dtype, " reached the ", device, " kernel");
    }
  });
}

}  // namespace kiln
