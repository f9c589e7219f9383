// Fills on a cuda device: constant, arange and Philox random (core/random_math.h holds
// the element formula the cpu shares, so both devices give the same values).
#include "kiln/core/convert.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/tensor_cuda.h"
#include "kiln/core/random_math.h"

namespace kiln::cuda {
namespace {

template <class T>
struct Fill {
  StridedView dst;
  T value;
  __device__ void operator()(std::int64_t i) const {
    static_cast<T*>(dst.data)[strided_offset(dst, i)] = value;
  }
};

template <class T>
struct Arange {
  StridedView dst;
  double start, step;
  __device__ void operator()(std::int64_t i) const {
    static_cast<T*>(dst.data)[strided_offset(dst, i)] =
        convert<T>(fma(static_cast<double>(i), step, start));
  }
};

// One thread per Philox block of 4 elements, so each block is computed once.
template <class T>
struct Random {
  StridedView dst;
  std::int64_t n;
  kiln::detail::RandomDistribution kind;
  double a, b;
  std::uint64_t seed, offset;
  __device__ void operator()(std::int64_t blk) const {
    const std::int64_t first = blk * 4;
    const PhiloxBlock block = philox_block(seed, offset, static_cast<std::uint64_t>(first));
    for (int lane = 0; lane < 4 && first + lane < n; ++lane) {
      static_cast<T*>(dst.data)[strided_offset(dst, first + lane)] =
          kiln::detail::random_value<T>(kind, a, b, block, lane);
    }
  }
};

template <class T>
constexpr bool is_float_type = std::is_floating_point_v<T> || std::is_same_v<T, Half> ||
                               std::is_same_v<T, BFloat16>;

}  // namespace

void fill(const StridedView& dst, double value, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dst.dtype, [&]<class T>() {
    launch_elementwise(dst.numel(), stream, Fill<T>{dst, convert<T>(value)});
  });
}

void arange(const StridedView& dst, double start, double step, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dst.dtype, [&]<class T>() {
    launch_elementwise(dst.numel(), stream, Arange<T>{dst, start, step});
  });
}

void random(const StridedView& dst, RandomKind kind, double a, double b, std::uint64_t seed,
            std::uint64_t offset, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  const std::int64_t n = dst.numel();
  const auto dist = static_cast<kiln::detail::RandomDistribution>(kind);
  visit_dtype(dst.dtype, [&]<class T>() {
    if constexpr (is_float_type<T>) {
      launch_elementwise((n + 3) / 4, stream, Random<T>{dst, n, dist, a, b, seed, offset});
    } else {
      KILN_THROW(TypeError, "random: needs a floating dtype, got ", dst.dtype);
    }
  });
}

}  // namespace kiln::cuda
