// cpu dropout: one Philox block per 4 elements (Note [Dropout mask] in
// kernels/dropout_impl.h), blocks split over OpenMP threads.
#include "kiln/kernels/cpu/loops.h"
#include "kiln/kernels/dropout_impl.h"

namespace kiln::cpu {

void dropout(const DropoutPlan& plan, const void* in, void* out) {
  visit_dtype(plan.dtype, [&]<class T>() {
    if constexpr (is_floating(dtype_of<T>())) {
      using C = math::compute_t<T>;
      const auto* x = static_cast<const T*>(in);
      auto* y = static_cast<T*>(out);
      const std::int64_t n = plan.numel;
      const std::int64_t blocks = (n + 3) / 4;
      const C scale = static_cast<C>(plan.scale);
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
      for (std::int64_t b = 0; b < blocks; ++b) {
        const PhiloxBlock words = philox_block(plan.seed, plan.offset, static_cast<std::uint64_t>(4 * b));
        for (int lane = 0; lane < 4 && 4 * b + lane < n; ++lane) {
          y[4 * b + lane] = dropout_element(x[4 * b + lane], words.v[lane], plan.threshold, scale);
        }
      }
    } else {
      KILN_THROW(InternalError, "dropout: non-floating dtype ", plan.dtype, " reached the cpu kernel");
    }
  });
}

}  // namespace kiln::cpu
