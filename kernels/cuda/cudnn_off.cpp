// KILN_CUDA=ON builds made without cuDNN (not found at configure time): the vendor
// convolution path is unavailable, so kernels/conv.cpp runs the native path on cuda. The
// entry points exist so the ON build links; conv.cpp never calls them while
// cudnn_available() is false, and they say why if anything else does.
#include "kiln/core/error.h"
#include "kiln/kernels/conv_impl.h"

namespace kiln::cuda {
namespace {
[[noreturn]] void no_cudnn(const char* what) {
  KILN_THROW(DeviceError, what, ": kiln was built without cuDNN (not found when configuring); "
             "cuda convolutions use the native path");
}
}  // namespace

bool cudnn_available() { return false; }

void conv2d_forward_cudnn(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  no_cudnn("conv2d (cuDNN forward)");
}
void conv2d_backward_data_cudnn(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&) {
  no_cudnn("conv2d (cuDNN backward data)");
}
void conv2d_backward_filter_cudnn(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&) {
  no_cudnn("conv2d (cuDNN backward filter)");
}

}  // namespace kiln::cuda
