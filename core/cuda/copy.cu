// Strided copy with dtype conversion on a cuda device: dst[i] = convert(src[i]).
// One kernel per (dst, src) dtype pair, instantiated from visit_dtype.
#include "kiln/core/convert.h"
#include "kiln/core/cuda/launch.h"
#include "kiln/core/cuda/tensor_cuda.h"

namespace kiln::cuda {
namespace {

template <class D, class S>
struct CopyStrided {
  StridedView dst, src;  // same shape; src strides may be 0 (broadcast)
  __device__ void operator()(std::int64_t i) const {
    static_cast<D*>(dst.data)[strided_offset(dst, i)] =
        convert<D>(static_cast<const S*>(src.data)[strided_offset(src, i)]);
  }
};

}  // namespace

void copy_strided(const StridedView& dst, const StridedView& src, int device) {
  DeviceGuard guard(device);
  void* stream = current_stream(device).native();
  visit_dtype(dst.dtype, [&]<class D>() {
    visit_dtype(src.dtype, [&]<class S>() {
      launch_elementwise(dst.numel(), stream, CopyStrided<D, S>{dst, src});
    });
  });
}

}  // namespace kiln::cuda
