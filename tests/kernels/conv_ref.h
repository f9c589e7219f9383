// Float64 references for the convolution tests, written independently of kiln's kernels:
// a problem described as the test table states it (ConvSpec), its geometry resolved with
// TensorFlow's "same" rule, and direct loops for the three passes. The backward passes
// scatter (loop over the output positions and add into the input or the weights), where
// the kernels gather, so the two do not share an indexing mistake.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/kernels/conv.h"

namespace kiln::test {

// One conv2d problem: x (n, h, w, c_in), weight (c_out, k_h, k_w, c_in / groups).
struct ConvSpec {
  const char* name;
  std::int64_t n, h, w, c_in, c_out, k_h, k_w;
  std::int64_t stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1, groups = 1;
  const char* padding = "valid";
  std::array<std::int64_t, 4> pads{-1, -1, -1, -1};  // explicit {top, bottom, left, right}
  bool bias = true;

  Conv2dOptions options() const {
    return {.strides = {stride_h, stride_w}, .padding = padding, .pads = pads, .dilation = {dil_h, dil_w},
            .groups = groups};
  }
  Shape x_shape() const { return {n, h, w, c_in}; }
  Shape w_shape() const { return {c_out, k_h, k_w, c_in / groups}; }
};

// The spec with its padding and output size worked out.
struct RefGeometry {
  ConvSpec s;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0, out_h = 0, out_w = 0;
  Shape y_shape() const { return {s.n, out_h, out_w, s.c_out}; }
};

inline RefGeometry resolve(const ConvSpec& s) {
  RefGeometry g{s};
  const std::int64_t keh = (s.k_h - 1) * s.dil_h + 1, kew = (s.k_w - 1) * s.dil_w + 1;
  if (s.pads[0] >= 0) {
    g.pad_top = s.pads[0], g.pad_bottom = s.pads[1], g.pad_left = s.pads[2], g.pad_right = s.pads[3];
  } else if (std::string(s.padding) == "same") {
    // TensorFlow: out = ceil(in / stride), total padding split with the odd one after.
    const std::int64_t oh = (s.h + s.stride_h - 1) / s.stride_h, ow = (s.w + s.stride_w - 1) / s.stride_w;
    const std::int64_t th = std::max<std::int64_t>((oh - 1) * s.stride_h + keh - s.h, 0);
    const std::int64_t tw = std::max<std::int64_t>((ow - 1) * s.stride_w + kew - s.w, 0);
    g.pad_top = th / 2, g.pad_bottom = th - th / 2, g.pad_left = tw / 2, g.pad_right = tw - tw / 2;
  }
  g.out_h = (s.h + g.pad_top + g.pad_bottom - keh) / s.stride_h + 1;
  g.out_w = (s.w + g.pad_left + g.pad_right - kew) / s.stride_w + 1;
  return g;
}

// The values of an optional tensor (a bias): empty when undefined.
inline std::vector<double> values_or_empty(const Tensor& t) {
  return t.defined() ? t.to_vector<double>() : std::vector<double>{};
}

// Visits every (n, oh, ow, co, kh, kw, ci, x index, w index, y index) term of the
// convolution sum whose input position lies inside x (padding contributes zeros).
template <class F>
void for_each_term(const RefGeometry& g, F&& f) {
  const ConvSpec& s = g.s;
  const std::int64_t cg = s.c_in / s.groups, og = s.c_out / s.groups;
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t oh = 0; oh < g.out_h; ++oh)
      for (std::int64_t ow = 0; ow < g.out_w; ++ow)
        for (std::int64_t co = 0; co < s.c_out; ++co)
          for (std::int64_t kh = 0; kh < s.k_h; ++kh)
            for (std::int64_t kw = 0; kw < s.k_w; ++kw) {
              const std::int64_t ih = oh * s.stride_h + kh * s.dil_h - g.pad_top;
              const std::int64_t iw = ow * s.stride_w + kw * s.dil_w - g.pad_left;
              if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
              for (std::int64_t ci = 0; ci < cg; ++ci) {
                const std::int64_t xi = ((n * s.h + ih) * s.w + iw) * s.c_in + (co / og) * cg + ci;
                const std::int64_t wi = ((co * s.k_h + kh) * s.k_w + kw) * cg + ci;
                const std::int64_t yi = ((n * g.out_h + oh) * g.out_w + ow) * s.c_out + co;
                f(xi, wi, yi);
              }
            }
}

// y = conv(x, w) + bias (bias may be empty), row-major NHWC values.
inline std::vector<double> reference_conv2d(const RefGeometry& g, const std::vector<double>& x,
                                            const std::vector<double>& w, const std::vector<double>& bias) {
  std::vector<double> y(static_cast<std::size_t>(g.y_shape().numel()), 0.0);
  for (std::size_t i = 0; i < y.size() && !bias.empty(); ++i) y[i] = bias[i % bias.size()];
  for_each_term(g, [&](std::int64_t xi, std::int64_t wi, std::int64_t yi) {
    y[static_cast<std::size_t>(yi)] += x[static_cast<std::size_t>(xi)] * w[static_cast<std::size_t>(wi)];
  });
  return y;
}

// dx of the convolution: every term's dy · w scattered into the input position it read.
inline std::vector<double> reference_backward_data(const RefGeometry& g, const std::vector<double>& dy,
                                                   const std::vector<double>& w) {
  std::vector<double> dx(static_cast<std::size_t>(g.s.x_shape().numel()), 0.0);
  for_each_term(g, [&](std::int64_t xi, std::int64_t wi, std::int64_t yi) {
    dx[static_cast<std::size_t>(xi)] += dy[static_cast<std::size_t>(yi)] * w[static_cast<std::size_t>(wi)];
  });
  return dx;
}

// dw of the convolution: every term's x · dy scattered into its weight.
inline std::vector<double> reference_backward_filter(const RefGeometry& g, const std::vector<double>& x,
                                                     const std::vector<double>& dy) {
  std::vector<double> dw(static_cast<std::size_t>(g.s.w_shape().numel()), 0.0);
  for_each_term(g, [&](std::int64_t xi, std::int64_t wi, std::int64_t yi) {
    dw[static_cast<std::size_t>(wi)] += x[static_cast<std::size_t>(xi)] * dy[static_cast<std::size_t>(yi)];
  });
  return dw;
}

// db: the sums of dy over (n, oh, ow) per output channel.
inline std::vector<double> reference_bias_grad(const std::vector<double>& dy, std::int64_t c_out) {
  std::vector<double> db(static_cast<std::size_t>(c_out), 0.0);
  for (std::size_t i = 0; i < dy.size(); ++i) db[i % db.size()] += dy[i];
  return db;
}

// The problems every device's tests run: odd sizes, stride 2, "same" with even kernels,
// dilation 2, groups and depthwise, batch 1, channel counts off multiples of 8, 1x1 kernels,
// asymmetric explicit pads, a kernel as large as the padded input.
inline const std::vector<ConvSpec> kConvSpecs = {
    {.name = "odd_3x3_valid", .n = 2, .h = 7, .w = 9, .c_in = 3, .c_out = 5, .k_h = 3, .k_w = 3},
    {.name = "stride2_same", .n = 2, .h = 9, .w = 8, .c_in = 5, .c_out = 6, .k_h = 3, .k_w = 3, .stride_h = 2,
     .stride_w = 2, .padding = "same"},
    {.name = "even_kernel_same", .n = 1, .h = 6, .w = 7, .c_in = 4, .c_out = 3, .k_h = 4, .k_w = 2,
     .padding = "same"},
    {.name = "even_kernel_stride2_same", .n = 2, .h = 7, .w = 6, .c_in = 3, .c_out = 4, .k_h = 2, .k_w = 4,
     .stride_h = 2, .stride_w = 2, .padding = "same"},
    {.name = "dilation2", .n = 2, .h = 9, .w = 8, .c_in = 3, .c_out = 4, .k_h = 3, .k_w = 3, .dil_h = 2,
     .dil_w = 2},
    {.name = "dilation2_same", .n = 1, .h = 7, .w = 7, .c_in = 2, .c_out = 3, .k_h = 3, .k_w = 2, .dil_h = 2,
     .dil_w = 2, .padding = "same"},
    {.name = "groups2", .n = 2, .h = 6, .w = 5, .c_in = 6, .c_out = 4, .k_h = 3, .k_w = 3, .groups = 2,
     .padding = "same"},
    {.name = "groups3_stride2", .n = 1, .h = 7, .w = 7, .c_in = 9, .c_out = 6, .k_h = 3, .k_w = 3,
     .stride_h = 2, .stride_w = 2, .groups = 3},
    {.name = "depthwise", .n = 2, .h = 7, .w = 6, .c_in = 5, .c_out = 5, .k_h = 3, .k_w = 3, .groups = 5,
     .padding = "same"},
    {.name = "depthwise_multiplier2", .n = 1, .h = 6, .w = 6, .c_in = 3, .c_out = 6, .k_h = 3, .k_w = 3,
     .stride_h = 2, .stride_w = 2, .groups = 3, .padding = "same"},
    {.name = "pointwise_1x1", .n = 2, .h = 5, .w = 7, .c_in = 13, .c_out = 11, .k_h = 1, .k_w = 1},
    {.name = "pointwise_1x1_stride2", .n = 1, .h = 7, .w = 5, .c_in = 7, .c_out = 9, .k_h = 1, .k_w = 1,
     .stride_h = 2, .stride_w = 2, .bias = false},
    {.name = "pointwise_1x1_groups2", .n = 2, .h = 3, .w = 5, .c_in = 8, .c_out = 6, .k_h = 1, .k_w = 1,
     .groups = 2},
    {.name = "wide_channels_5x5", .n = 1, .h = 8, .w = 8, .c_in = 17, .c_out = 19, .k_h = 5, .k_w = 5,
     .padding = "same"},
    {.name = "explicit_asymmetric_pads", .n = 2, .h = 5, .w = 6, .c_in = 3, .c_out = 2, .k_h = 3, .k_w = 2,
     .stride_h = 2, .stride_w = 1, .pads = {2, 0, 0, 3}},
    {.name = "kernel_fills_input", .n = 2, .h = 4, .w = 3, .c_in = 2, .c_out = 3, .k_h = 4, .k_w = 3,
     .bias = false},
    {.name = "rect_stride_3x1", .n = 1, .h = 10, .w = 5, .c_in = 1, .c_out = 32, .k_h = 3, .k_w = 3,
     .stride_h = 3, .stride_w = 1},
};

}  // namespace kiln::test
