// upsample2d (nearest, bilinear) and zero_pad2d on cpu (kernels/resize.h) against
// direct-loop float64 references written here (bilinear in TensorFlow's own formulation:
// floor/ceil of the half-pixel source coordinate, backward by scattering), a literal
// tf.image.resize result, NaN/Inf, gradient checks in float64 and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/resize.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using test::kCpu;
using test::Layout;

struct ResizeCase {
  Shape shape;  // (N, H, W, C)
  std::array<std::int64_t, 2> size;
};

const ResizeCase kCases[] = {
    {{2, 3, 5, 4}, {2, 2}},   // Keras' default factor, odd sizes
    {{1, 4, 3, 70}, {3, 2}},  // odd factor (exact source hits), 70 channels: blocks and a tail
    {{1, 1, 1, 3}, {2, 3}},   // one pixel: every tap clamped
    {{2, 5, 4, 1}, {1, 3}},   // factor 1 on one axis
};

// ---- float64 references ----

// TensorFlow's half-pixel bilinear taps of output o (factor s, `in` inputs) as
// {input index: weight}, weights of 0 dropped.
std::map<std::int64_t, double> tf_taps(std::int64_t o, std::int64_t s, std::int64_t in) {
  const double src = (static_cast<double>(o) + 0.5) / static_cast<double>(s) - 0.5;
  const double f = std::floor(src), lerp = src - f;
  const auto lo = std::max<std::int64_t>(static_cast<std::int64_t>(f), 0);
  const auto hi = std::min<std::int64_t>(static_cast<std::int64_t>(std::ceil(src)), in - 1);
  std::map<std::int64_t, double> w;
  w[lo] += 1 - lerp;
  w[hi] += lerp;
  std::erase_if(w, [](const auto& e) { return e.second == 0; });
  return w;
}

// (output index, input index, weight) of every tap of the upsampling of `shape`.
struct Tap {
  std::int64_t out, in;
  double w;
};
std::vector<Tap> resize_taps(const Shape& s, std::array<std::int64_t, 2> size, bool bilinear) {
  const std::int64_t N = s[0], H = s[1], W = s[2], C = s[3], OH = H * size[0], OW = W * size[1];
  std::vector<Tap> taps;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const auto th = bilinear ? tf_taps(oh, size[0], H) : std::map<std::int64_t, double>{{oh / size[0], 1.0}};
        const auto tw = bilinear ? tf_taps(ow, size[1], W) : std::map<std::int64_t, double>{{ow / size[1], 1.0}};
        for (std::int64_t c = 0; c < C; ++c)
          for (const auto& [ih, wh] : th)
            for (const auto& [iw, ww] : tw)
              taps.push_back({((n * OH + oh) * OW + ow) * C + c, ((n * H + ih) * W + iw) * C + c, wh * ww});
      }
  return taps;
}

std::vector<double> resize_reference(const std::vector<double>& x, const Shape& s, std::array<std::int64_t, 2> size,
                                     bool bilinear) {
  std::vector<double> y(static_cast<std::size_t>(s.numel() * size[0] * size[1]), 0.0);
  for (const Tap& t : resize_taps(s, size, bilinear)) {
    y[static_cast<std::size_t>(t.out)] += t.w * x[static_cast<std::size_t>(t.in)];
  }
  return y;
}

std::vector<double> resize_grad_reference(const std::vector<double>& gy, const Shape& s,
                                          std::array<std::int64_t, 2> size, bool bilinear) {
  std::vector<double> gx(static_cast<std::size_t>(s.numel()), 0.0);
  for (const Tap& t : resize_taps(s, size, bilinear)) {
    gx[static_cast<std::size_t>(t.in)] += t.w * gy[static_cast<std::size_t>(t.out)];
  }
  return gx;
}

test::Tolerance grad_tolerance(DType dt) {
  const test::Tolerance t = test::tolerance_for(dt);
  return {4 * t.atol, 2 * t.rtol};
}

// ---- upsample2d ----

TEST(Upsample2d, MatchesFloat64ReferenceAcrossShapesDTypesAndLayouts) {
  for (const ResizeCase& c : kCases) {
    for (const bool bilinear : {false, true}) {
      for (const DType dt : test::kFloatDTypes) {
        for (const Layout layout : test::kAllLayouts) {
          SCOPED_TRACE(std::string(bilinear ? "bilinear " : "nearest ") + c.shape.str() + " size (" +
                       std::to_string(c.size[0]) + ", " + std::to_string(c.size[1]) + "), " + std::string(name(dt)) +
                       ", " + test::layout_name(layout));
          Tensor x = test::make_input(test::uniform_values(c.shape.numel(), -4, 4, 17), c.shape, dt, kCpu, layout);
          x.requires_grad_();
          const Shape out_shape{c.shape[0], c.shape[1] * c.size[0], c.shape[2] * c.size[1], c.shape[3]};
          test::poison_next_allocation(static_cast<std::size_t>(out_shape.numel()) * itemsize(dt), kCpu);
          const Tensor y = upsample2d(x, c.size, bilinear ? "bilinear" : "nearest");
          ASSERT_EQ(y.shape(), out_shape);
          EXPECT_EQ(y.dtype(), dt);
          EXPECT_TRUE(test::all_close(y, resize_reference(test::host_values(x), c.shape, c.size, bilinear),
                                      test::tolerance_for(dt)));
          const Tensor gy = test::make_input(test::uniform_values(y.numel(), -1, 1, 3), out_shape, dt, kCpu,
                                             Layout::contiguous);
          backward(y, gy);
          ASSERT_TRUE(x.grad().defined());
          EXPECT_TRUE(test::all_close(x.grad(), resize_grad_reference(test::host_values(gy), c.shape, c.size, bilinear),
                                      grad_tolerance(dt)));
        }
      }
    }
  }
}

TEST(Upsample2d, BilinearMatchesTensorFlowResize) {
  // tf.image.resize([[1, 2], [3, 4]], [4, 4]) (bilinear, half-pixel centres).
  const Tensor x = from_vector<double>({1, 2, 3, 4}, {1, 2, 2, 1});
  const std::vector<double> tf = {1,   1.25, 1.75, 2,    1.5, 1.75, 2.25, 2.5,
                                  2.5, 2.75, 3.25, 3.5, 3,   3.25, 3.75, 4};
  for (const DType dt : test::kFloatDTypes) {
    EXPECT_TRUE(test::all_close(upsample2d(x.to(dt), {2, 2}, "bilinear"), tf, {0, 0})) << name(dt);
  }
}

TEST(Upsample2d, InfinitiesStayWhereTheyHaveWeightAndNanPropagates) {
  // Factor 3 along W: outputs 1 and 7 hit inputs 0 and 2 exactly and must not read the inf.
  const Tensor x = from_vector<double>({1, INFINITY, 2}, {1, 1, 3, 1});
  const double inf = INFINITY;
  for (const DType dt : test::kFloatDTypes) {
    EXPECT_TRUE(test::all_close(upsample2d(x.to(dt), {1, 3}, "bilinear"), {1, 1, inf, inf, inf, inf, inf, 2, 2},
                                {0, 0}))
        << name(dt);
  }
  const Tensor n = from_vector<double>({NAN, 1}, {1, 1, 2, 1});
  const std::vector<double> bilinear = upsample2d(n, {1, 2}, "bilinear").to_vector<double>();
  EXPECT_TRUE(std::isnan(bilinear[0]) && std::isnan(bilinear[1]) && std::isnan(bilinear[2]));
  EXPECT_EQ(bilinear[3], 1.0);
  const std::vector<double> nearest = upsample2d(n, {1, 2}).to_vector<double>();
  EXPECT_TRUE(std::isnan(nearest[0]) && std::isnan(nearest[1]));
  EXPECT_EQ(nearest[2], 1.0);
}

TEST(Upsample2d, EmptyInputsGiveEmptyOutputs) {
  EXPECT_EQ(upsample2d(zeros({0, 3, 3, 2})).shape(), Shape({0, 6, 6, 2}));
  EXPECT_EQ(upsample2d(zeros({1, 0, 3, 2}), {2, 3}, "bilinear").shape(), Shape({1, 0, 9, 2}));
}

TEST(Upsample2d, GradientsMatchCentralDifferences) {
  for (const ResizeCase& c : {ResizeCase{{2, 3, 4, 2}, {2, 2}}, ResizeCase{{1, 2, 3, 3}, {3, 2}}}) {
    for (const Layout layout : {Layout::contiguous, Layout::transposed}) {
      const Tensor x =
          test::make_input(test::uniform_values(c.shape.numel(), -2, 2, 8), c.shape, float64, kCpu, layout);
      for (const char* mode : {"nearest", "bilinear"}) {
        const auto r = gradcheck([&](const std::vector<Tensor>& in) { return upsample2d(in[0], c.size, mode); }, {x});
        EXPECT_TRUE(r.ok) << mode << " " << c.shape << " " << test::layout_name(layout) << ": " << r.message;
      }
    }
  }
}

// ---- zero_pad2d ----

std::vector<double> pad_reference(const std::vector<double>& x, const Shape& s, std::array<std::int64_t, 4> p) {
  const std::int64_t N = s[0], H = s[1], W = s[2], C = s[3], PH = H + p[0] + p[1], PW = W + p[2] + p[3];
  std::vector<double> y(static_cast<std::size_t>(N * PH * PW * C), 0.0);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w)
        for (std::int64_t c = 0; c < C; ++c)
          y[static_cast<std::size_t>(((n * PH + h + p[0]) * PW + w + p[2]) * C + c)] =
              x[static_cast<std::size_t>(((n * H + h) * W + w) * C + c)];
  return y;
}

TEST(ZeroPad2d, PadsTheImageAxesWithZerosForEveryDtypeAndLayout) {
  const Shape shape{2, 3, 5, 3};
  const std::array<std::int64_t, 4> pads{1, 2, 0, 3};
  for (const DType dt : {float32, float16, bfloat16, float64, int32}) {
    for (const Layout layout : test::kAllLayouts) {
      std::vector<double> v = test::uniform_values(shape.numel(), -4, 4, 2);
      if (dt == int32) for (double& e : v) e = std::round(e);
      v[4] = NAN;
      v[7] = -INFINITY;
      if (dt == int32) v[4] = v[7] = 5;
      const Tensor x = test::make_input(v, shape, dt, kCpu, layout);
      const Tensor y = zero_pad2d(x, pads);
      ASSERT_EQ(y.shape(), Shape({2, 6, 8, 3}));
      EXPECT_EQ(y.dtype(), dt);
      EXPECT_TRUE(test::all_close(y, pad_reference(test::host_values(x), shape, pads), {0, 0}))
          << name(dt) << " " << test::layout_name(layout);
    }
  }
}

TEST(ZeroPad2d, BackwardSlicesTheGradient) {
  const Shape shape{1, 2, 3, 2};
  Tensor x = test::make_input(test::uniform_values(shape.numel(), -1, 1, 4), shape, float32, kCpu,
                              Layout::contiguous);
  x.requires_grad_();
  const Tensor y = zero_pad2d(x, {2, 0, 1, 1});
  ASSERT_EQ(y.shape(), Shape({1, 4, 5, 2}));
  std::vector<double> g(static_cast<std::size_t>(y.numel()));
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<double>(i);
  backward(y, from_vector<double>(g, y.shape()).to(float32));
  // gx[0, h, w, c] = g[0, h + 2, w + 1, c]
  std::vector<double> expected;
  for (std::int64_t h = 0; h < 2; ++h)
    for (std::int64_t w = 0; w < 3; ++w)
      for (std::int64_t c = 0; c < 2; ++c) expected.push_back(static_cast<double>(((h + 2) * 5 + w + 1) * 2 + c));
  EXPECT_TRUE(test::all_close(x.grad(), expected, {0, 0}));
  const auto r = gradcheck([](const std::vector<Tensor>& in) { return zero_pad2d(in[0], {1, 2, 3, 0}); },
                           {test::make_input(test::uniform_values(12, -1, 1, 6), {2, 2, 3, 1}, float64, kCpu,
                                             Layout::strided)});
  EXPECT_TRUE(r.ok) << r.message;
}

// ---- bad input ----

template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts[0];
  } catch (const E& e) {
    for (const std::string& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(Upsample2d, BadInputRaisesNamingTheOpAndShapes) {
  const Tensor x = zeros({2, 3, 3, 4});
  expect_error<ShapeError>([&] { upsample2d(zeros({3, 3, 4})); }, {"upsample2d", "rank 4", "(3, 3, 4)"});
  expect_error<ValueError>([&] { upsample2d(x, {0, 2}); }, {"upsample2d", "size", "(0, 2)", "(2, 3, 3, 4)"});
  expect_error<ValueError>([&] { upsample2d(x, {2, -1}); }, {"upsample2d", "(2, -1)"});
  expect_error<ValueError>([&] { upsample2d(x, {2, 2}, "bicubic"); }, {"upsample2d", "bicubic"});
  expect_error<TypeError>([&] { upsample2d(zeros({1, 2, 2, 1}, {.dtype = int64})); }, {"upsample2d", "int64"});
  expect_error<ShapeError>([&] { zero_pad2d(zeros({2, 3}), {1, 1, 1, 1}); }, {"zero_pad2d", "rank 4", "(2, 3)"});
  expect_error<ValueError>([&] { zero_pad2d(x, {1, -1, 0, 0}); }, {"zero_pad2d", "(1, -1, 0, 0)", "(2, 3, 3, 4)"});
}

}  // namespace
}  // namespace kiln
