// cuda dropout: one thread per Philox block of 4 elements (Note [Dropout mask] in
// kernels/dropout_impl.h), with one vector load and store per block where both buffers
// are aligned to 4 elements, through core's launch helper.
#include <cstdint>

#include "kiln/core/cuda/launch.h"
#include "kiln/kernels/dropout_impl.h"

namespace kiln::cuda {
namespace {

template <class T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

template <class T, bool kVector>
struct DropoutBlock {
  const T* x;
  T* y;
  std::int64_t n;
  std::uint64_t seed, offset;
  std::uint32_t threshold;
  math::compute_t<T> scale;

  __device__ void operator()(std::int64_t b) const {
    const std::int64_t first = 4 * b;
    const PhiloxBlock words = philox_block(seed, offset, static_cast<std::uint64_t>(first));
    if (kVector && first + 4 <= n) {
      const Vec4<T> in = load_vector<Vec4<T>>(x + first);
      Vec4<T> out;
      for (int lane = 0; lane < 4; ++lane)
        out.v[lane] = dropout_element(in.v[lane], words.v[lane], threshold, scale);
      store_vector(y + first, out);
      return;
    }
    for (int lane = 0; lane < 4 && first + lane < n; ++lane) {
      y[first + lane] = dropout_element(x[first + lane], words.v[lane], threshold, scale);
    }
  }
};

bool aligned(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

}  // namespace

void dropout(const DropoutPlan& plan, const void* in, void* out, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(plan.dtype, [&]<class T>() {
    if constexpr (is_floating(dtype_of<T>())) {
      using C = math::compute_t<T>;
      const auto* x = static_cast<const T*>(in);
      auto* y = static_cast<T*>(out);
      const std::int64_t blocks = (plan.numel + 3) / 4;
      const auto scale = static_cast<C>(plan.scale);
      if (aligned(x, sizeof(Vec4<T>)) && aligned(y, sizeof(Vec4<T>))) {
        launch_elementwise(
            blocks, stream,
            DropoutBlock<T, true>{x, y, plan.numel, plan.seed, plan.offset, plan.threshold, scale});
      } else {
        launch_elementwise(
            blocks, stream,
            DropoutBlock<T, false>{x, y, plan.numel, plan.seed, plan.offset, plan.threshold, scale});
      }
    } else {
      KILN_THROW(InternalError, "dropout: non-floating dtype ", plan.dtype, " reached the cuda kernel");
    }
  });
}

}  // namespace kiln::cuda
