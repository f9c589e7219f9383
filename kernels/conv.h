// 2-D convolution in NHWC (Keras' channels_last), with its backward. cpu: oneDNN primitives
// (cached per problem). cuda: cuDNN v9 (heuristic or benchmarked algorithm, cached in memory
// and on disk), or kiln's native im2col + tiled GEMM (always under SIM; on a GPU with
// KILN_CONV=native).
//
// Layouts:
//   x      (N, H, W, C_in)
//   weight (C_out, KH, KW, C_in / groups)     "OHWI", cuDNN's NHWC filter layout
//   bias   (C_out)                            optional
//   y      (N, OH, OW, C_out)
// conv2d_transpose takes the weight of the conv2d it transposes: (C_in, KH, KW, C_out / groups)
// for x (N, H, W, C_in) and y (N, OH, OW, C_out).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kiln/core/tensor.h"

namespace kiln {

struct Conv2dOptions {
  std::array<std::int64_t, 2> strides{1, 1};
  // "valid" (no padding) or "same" (Keras: output = ceil(input / stride); the padding total
  // is split with the extra row/column at the bottom/right). Ignored when `pads` is set.
  std::string padding = "valid";
  // Explicit zero padding {top, bottom, left, right}; all -1 means "use `padding`".
  std::array<std::int64_t, 4> pads{-1, -1, -1, -1};
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;  // C_in and C_out divisible by groups; groups == C_in: depthwise
};

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dOptions& options = {});

struct Conv2dTransposeOptions {
  std::array<std::int64_t, 2> strides{1, 1};
  std::string padding = "valid";  // Keras Conv2DTranspose semantics
  std::array<std::int64_t, 2> dilation{1, 1};
  // Extra rows/columns added to one side of the output (Keras' output_padding); -1: none
  // (Keras' default None).
  std::array<std::int64_t, 2> output_padding{-1, -1};
  std::int64_t groups = 1;
};

Tensor conv2d_transpose(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        const Conv2dTransposeOptions& options = {});

enum class ConvBackend { vendor, native };
// Which cuda convolution runs: vendor (cuDNN) on a real GPU by default, native under SIM or
// with KILN_CONV=native; set_conv_backend overrides both for the process.
ConvBackend conv_backend();
void set_conv_backend(ConvBackend backend);
// cuDNN algorithm choice: heuristics (default) or, with benchmark mode on, timing every
// candidate once per problem (like torch.backends.cudnn.benchmark). KILN_CUDNN_BENCHMARK=1
// turns it on. Choices persist in KILN_CUDNN_CACHE (default ~/.cache/kiln/cudnn_algos.txt).
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

}  // namespace kiln
