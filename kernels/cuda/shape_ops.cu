// cuda implementation of the indexing ops, each one elementwise functor through core's
// launch helper: take, scatter_add (atomicAdd into the accumulator; float for 16-bit
// data, see kernels/shape_ops_impl.h), gather and its backward, one_hot, and the index
// check that reads one device flag back.
#include "kiln/core/cuda/launch.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/math.h"
#include "kiln/kernels/shape_ops_impl.h"

namespace kiln::cuda {
namespace {

template <class F>
decltype(auto) visit_index_dtype(DType dtype, F&& f) {
  if (dtype == DType::int32) return f.template operator()<std::int32_t>();
  KILN_ASSERT(dtype == DType::int64, "indices of dtype ", dtype, " reached the cuda kernel");
  return f.template operator()<std::int64_t>();
}

template <class F>
void visit_accumulate_dtype(DType dtype, F&& f) {
  visit_dtype(dtype, [&]<class T>() {
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::uint8_t>) {
      KILN_THROW(InternalError, "scatter_add: dtype ", dtype, " reached the cuda kernel");
    } else {
      f.template operator()<T>();
    }
  });
}

// CUDA has no atomicAdd for int64; two's complement makes the unsigned one the same.
template <class A>
__device__ __forceinline__ void atomic_add(A* address, A value) {
  if constexpr (std::is_same_v<A, std::int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(address), static_cast<unsigned long long>(value));
  } else {
    atomicAdd(address, value);
  }
}

template <class I>
struct MarkBadIndex {
  const I* indices;
  std::int64_t lo, hi;
  unsigned long long* first;
  __device__ void operator()(std::int64_t i) const {
    const auto v = static_cast<std::int64_t>(indices[i]);
    if (v < lo || v >= hi) atomicMin(first, static_cast<unsigned long long>(i));
  }
};

// Element i of the (outer, count, inner) side and its offset on the (outer, extent, inner) side.
template <class I>
__device__ __forceinline__ std::int64_t take_source(const TakePlan& p, const I* indices, std::int64_t i) {
  const std::int64_t r = i / p.inner, in = i % p.inner;
  const std::int64_t o = r / p.count, k = r % p.count;
  return (o * p.extent + wrap_index(static_cast<std::int64_t>(indices[k]), p.extent)) * p.inner + in;
}

template <class T, class I>
struct Take {
  TakePlan p;
  const T* x;
  const I* indices;
  T* out;
  __device__ void operator()(std::int64_t i) const { out[i] = x[take_source(p, indices, i)]; }
};

template <class T, class I>
struct ScatterAdd {
  TakePlan p;
  const T* src;
  const I* indices;
  math::compute_t<T>* acc;
  __device__ void operator()(std::int64_t i) const {
    atomic_add(acc + take_source(p, indices, i), convert<math::compute_t<T>>(src[i]));
  }
};

template <class T, class I>
struct Gather {
  GatherPlan p;
  const T* x;
  const I* indices;
  T* out;
  __device__ void operator()(std::int64_t i) const {
    out[i] = x[gather_offset(p, i, static_cast<std::int64_t>(indices[i]))];
  }
};

template <class T, class I>
struct GatherBackward {
  GatherPlan p;
  const T* src;
  const I* indices;
  math::compute_t<T>* acc;
  __device__ void operator()(std::int64_t i) const {
    atomic_add(acc + gather_offset(p, i, static_cast<std::int64_t>(indices[i])),
               convert<math::compute_t<T>>(src[i]));
  }
};

template <class T, class I>
struct OneHot {
  const I* indices;
  std::int64_t depth;
  T* out;
  __device__ void operator()(std::int64_t i) const {
    out[i] = convert<T>(static_cast<std::int64_t>(indices[i / depth]) == i % depth ? 1 : 0);
  }
};

}  // namespace

std::int64_t first_bad_index(const void* indices, DType index_dtype, std::int64_t count, std::int64_t lo,
                             std::int64_t hi, int device) {
  if (count == 0) return -1;
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  // All bits set: "none found", which reads back as -1.
  Tensor flag = empty({1}, {.dtype = DType::int64, .device = Device::cuda(device)});
  KILN_CUDA_CHECK(
      cudaMemsetAsync(flag.data_ptr(), 0xFF, sizeof(std::int64_t), static_cast<cudaStream_t>(stream)));
  auto* first = static_cast<unsigned long long*>(flag.data_ptr());
  visit_index_dtype(index_dtype, [&]<class I>() {
    launch_elementwise(count, stream, MarkBadIndex<I>{static_cast<const I*>(indices), lo, hi, first});
  });
  return flag.item<std::int64_t>();
}

void take(const TakePlan& p, const void* x, const void* indices, void* out, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(p.dtype, [&]<class T>() {
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      launch_elementwise(
          p.outer * p.count * p.inner, stream,
          Take<T, I>{p, static_cast<const T*>(x), static_cast<const I*>(indices), static_cast<T*>(out)});
    });
  });
}

void scatter_add(const TakePlan& p, const void* src, const void* indices, void* acc, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_accumulate_dtype(p.dtype, [&]<class T>() {
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      launch_elementwise(p.outer * p.count * p.inner, stream,
                         ScatterAdd<T, I>{p, static_cast<const T*>(src), static_cast<const I*>(indices),
                                          static_cast<math::compute_t<T>*>(acc)});
    });
  });
}

void gather(const GatherPlan& p, const void* x, const void* indices, void* out, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(p.dtype, [&]<class T>() {
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      launch_elementwise(
          p.numel, stream,
          Gather<T, I>{p, static_cast<const T*>(x), static_cast<const I*>(indices), static_cast<T*>(out)});
    });
  });
}

void gather_backward(const GatherPlan& p, const void* src, const void* indices, void* acc, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_accumulate_dtype(p.dtype, [&]<class T>() {
    visit_index_dtype(p.index_dtype, [&]<class I>() {
      launch_elementwise(p.numel, stream,
                         GatherBackward<T, I>{p, static_cast<const T*>(src), static_cast<const I*>(indices),
                                              static_cast<math::compute_t<T>*>(acc)});
    });
  });
}

void one_hot(const void* indices, DType index_dtype, std::int64_t count, std::int64_t depth, void* out,
             DType out_dtype, int device) {
  if (depth == 0) return;
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(out_dtype, [&]<class T>() {
    visit_index_dtype(index_dtype, [&]<class I>() {
      launch_elementwise(count * depth, stream,
                         OneHot<T, I>{static_cast<const I*>(indices), depth, static_cast<T*>(out)});
    });
  });
}

}  // namespace kiln::cuda
