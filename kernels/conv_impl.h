// Internal: one convolution problem, resolved (padding computed, shapes checked), and the
// per-device entry points that run it. All tensors given to the entry points are contiguous
// NHWC (x, y, dy, dx) and OHWI (w, dw), of `dtype`, on one device; outputs are allocated by
// the caller (kernels/conv.cpp) and may hold garbage on entry (outputs are overwritten, never
// accumulated into).
#pragma once

#include <cstdint>
#include <string>

#include "kiln/core/dtype.h"
#include "kiln/core/tensor.h"
#include "kiln/kernels/conv.h"

namespace kiln {

struct ConvGeometry {
  DType dtype = DType::float32;
  std::int64_t n = 0, h = 0, w = 0, c_in = 0;       // input (N, H, W, C_in)
  std::int64_t c_out = 0, k_h = 0, k_w = 0;         // weight (C_out, KH, KW, C_in / groups)
  std::int64_t groups = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dil_h = 1, dil_w = 1;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  std::int64_t out_h = 0, out_w = 0;                // output (N, OH, OW, C_out)

  std::int64_t c_in_per_group() const { return c_in / groups; }
  std::int64_t c_out_per_group() const { return c_out / groups; }
  // Multiply-adds of one pass (forward, backward-data and backward-filter each do this many).
  std::int64_t macs() const { return n * out_h * out_w * c_out * k_h * k_w * c_in_per_group(); }
  // A printable key for caches and messages: every field above.
  std::string key() const;
};

namespace cpu {
void conv2d_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y);
void conv2d_backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w,
                          const Tensor& dx);
// db may be undefined (no bias).
void conv2d_backward_filter(const ConvGeometry& g, const Tensor& x, const Tensor& dy,
                            const Tensor& dw, const Tensor& db);
}  // namespace cpu

namespace cuda {
// Native path: im2col (or implicit GEMM) + kiln's tiled GEMM; runs under SIM.
void conv2d_forward_native(const ConvGeometry& g, const Tensor& x, const Tensor& w,
                           const Tensor& bias, const Tensor& y);
void conv2d_backward_data_native(const ConvGeometry& g, const Tensor& dy, const Tensor& w,
                                 const Tensor& dx);
void conv2d_backward_filter_native(const ConvGeometry& g, const Tensor& x, const Tensor& dy,
                                   const Tensor& dw, const Tensor& db);
// Vendor path: cuDNN (kernels/cuda/cudnn_conv.cpp); only in KILN_CUDA=ON builds, where
// cudnn_available() is true.
bool cudnn_available();
void conv2d_forward_cudnn(const ConvGeometry& g, const Tensor& x, const Tensor& w,
                          const Tensor& bias, const Tensor& y);
void conv2d_backward_data_cudnn(const ConvGeometry& g, const Tensor& dy, const Tensor& w,
                                const Tensor& dx);
void conv2d_backward_filter_cudnn(const ConvGeometry& g, const Tensor& x, const Tensor& dy,
                                  const Tensor& dw, const Tensor& db);
// The native path works through the batch in chunks whose im2col buffer stays under this
// many bytes (default 256 MiB); returns the previous limit. For tests of the chunked path.
std::int64_t set_native_conv_workspace_limit(std::int64_t bytes);
}  // namespace cuda

namespace detail {
// The geometry of conv2d(x, weight, bias, options), every input checked (kiln errors name
// the op and the shapes). conv2d_transpose's is the conv2d whose backward-data it is:
// input (N, OH_t, OW_t, C_out_t), output (N, H, W, C_in) = x's shape.
ConvGeometry conv2d_geometry(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Conv2dOptions& options);
ConvGeometry conv2d_transpose_geometry(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                       const Conv2dTransposeOptions& options);
// One pass on x's (dy's) device through the backend in force: cpu (oneDNN), cuDNN or
// native. Tensors as for the entry points above; no autograd. For benchmarks and tests.
void conv2d_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y);
void conv2d_backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w,
                          const Tensor& dx);
void conv2d_backward_filter(const ConvGeometry& g, const Tensor& x, const Tensor& dy,
                            const Tensor& dw, const Tensor& db);
}  // namespace detail

}  // namespace kiln
