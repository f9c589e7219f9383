// float64 references for the image-layer tests, written from the definitions with Keras'
// kernel layouts (so they also check kiln's layout conversion): direct convolution with a
// Keras (kh, kw, in / groups, filters) kernel, transposed convolution with a Keras
// (kh, kw, filters, in) kernel, and Keras/TensorFlow "same" padding. All NHWC, row-major.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/shape.h"

namespace kiln::test {

// One spatial axis of a window: kernel extent, stride, dilation.
struct Axis1 {
  std::int64_t k = 1, s = 1, d = 1;
  std::int64_t dilated() const { return (k - 1) * d + 1; }
};

// Keras' output extent and leading pad along one axis for a convolution of `in`.
inline std::int64_t conv_out_extent(std::int64_t in, Axis1 a, const std::string& padding) {
  return padding == "same" ? (in + a.s - 1) / a.s : (in - a.dilated()) / a.s + 1;
}
inline std::int64_t same_pad_before(std::int64_t in, std::int64_t out, Axis1 a) {
  return std::max<std::int64_t>((out - 1) * a.s + a.dilated() - in, 0) / 2;
}

// y (N, OH, OW, F) = conv(x (N, H, W, C), w Keras (KH, KW, C / groups, F)) + bias (F or empty).
// Output channel f reads input channels of group f / (F / groups).
inline std::vector<double> conv2d_reference(const std::vector<double>& x, const Shape& xs, const std::vector<double>& w,
                                            const Shape& ws, const std::vector<double>& bias, Axis1 ah, Axis1 aw,
                                            const std::string& padding, std::int64_t groups, Shape* out_shape) {
  const std::int64_t n = xs[0], h = xs[1], wd = xs[2], c = xs[3];
  const std::int64_t cg = ws[2], f = ws[3], fg = f / groups;
  const std::int64_t oh = conv_out_extent(h, ah, padding), ow = conv_out_extent(wd, aw, padding);
  const std::int64_t pt = padding == "same" ? same_pad_before(h, oh, ah) : 0;
  const std::int64_t pl = padding == "same" ? same_pad_before(wd, ow, aw) : 0;
  *out_shape = Shape{n, oh, ow, f};
  std::vector<double> y(static_cast<std::size_t>(n * oh * ow * f));
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j)
        for (std::int64_t o = 0; o < f; ++o) {
          double acc = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
          const std::int64_t g = o / fg;
          for (std::int64_t p = 0; p < ah.k; ++p)
            for (std::int64_t q = 0; q < aw.k; ++q) {
              const std::int64_t r = i * ah.s + p * ah.d - pt, s = j * aw.s + q * aw.d - pl;
              if (r < 0 || r >= h || s < 0 || s >= wd) continue;
              for (std::int64_t ci = 0; ci < cg; ++ci) {
                acc += x[static_cast<std::size_t>(((b * h + r) * wd + s) * c + g * cg + ci)] *
                       w[static_cast<std::size_t>(((p * aw.k + q) * cg + ci) * f + o)];
              }
            }
          y[static_cast<std::size_t>(((b * oh + i) * ow + j) * f + o)] = acc;
        }
  return y;
}

// y (N, OH, OW, F) = conv_transpose(x (N, H, W, C), w Keras (KH, KW, F, C)) + bias: each input
// pixel scatters x * w into y at (i * s + p * d - pad_top, j * s + q * d - pad_left). OH, OW
// are given (Keras' arithmetic, tested separately); "same" pads as the forward convolution
// from (OH, OW) to (H, W) would (TensorFlow's conv2d_transpose).
inline std::vector<double> conv2d_transpose_reference(const std::vector<double>& x, const Shape& xs,
                                                      const std::vector<double>& w, const Shape& ws,
                                                      const std::vector<double>& bias, Axis1 ah, Axis1 aw,
                                                      const std::string& padding, std::int64_t oh, std::int64_t ow) {
  const std::int64_t n = xs[0], h = xs[1], wd = xs[2], c = xs[3], f = ws[2];
  const std::int64_t pt = padding == "same" ? same_pad_before(oh, h, ah) : 0;
  const std::int64_t pl = padding == "same" ? same_pad_before(ow, wd, aw) : 0;
  std::vector<double> y(static_cast<std::size_t>(n * oh * ow * f));
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j)
        for (std::int64_t o = 0; o < f; ++o) y[static_cast<std::size_t>(((b * oh + i) * ow + j) * f + o)] =
            bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < wd; ++j)
        for (std::int64_t p = 0; p < ah.k; ++p)
          for (std::int64_t q = 0; q < aw.k; ++q) {
            const std::int64_t r = i * ah.s + p * ah.d - pt, s = j * aw.s + q * aw.d - pl;
            if (r < 0 || r >= oh || s < 0 || s >= ow) continue;
            for (std::int64_t o = 0; o < f; ++o)
              for (std::int64_t ci = 0; ci < c; ++ci) {
                y[static_cast<std::size_t>(((b * oh + r) * ow + s) * f + o)] +=
                    x[static_cast<std::size_t>(((b * h + i) * wd + j) * c + ci)] *
                    w[static_cast<std::size_t>(((p * aw.k + q) * f + o) * c + ci)];
              }
          }
  return y;
}

}  // namespace kiln::test
