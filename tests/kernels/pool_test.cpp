// 2-D pooling on cpu (kernels/pool.h) against direct-loop float64 references written here
// (Keras' output sizes and padding, a scatter-form backward, independent of the kernels'
// gather): a table of shapes (odd sizes, overlapping windows, `same` with even pools,
// strides past the pool, channels in 16-channel blocks with a tail) x dtypes x layouts;
// ties and NaN/Inf routing; global pooling; gradient checks in float64; bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/pool.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using test::kCpu;
using test::Layout;

struct PoolCase {
  Shape shape;  // (N, H, W, C)
  Pool2dOptions options;
};

std::string describe(const PoolCase& c) {
  const auto& o = c.options;
  return c.shape.str() + " pool (" + std::to_string(o.pool_size[0]) + ", " + std::to_string(o.pool_size[1]) +
         ") strides (" + std::to_string(o.strides[0]) + ", " + std::to_string(o.strides[1]) + ") " + o.padding;
}

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {{2, 7, 9, 5}, {}},                                   // odd sizes: the last row/column dropped
      {{1, 7, 7, 3}, {{3, 3}, {2, 2}, "valid"}},            // overlapping windows, batch 1
      {{3, 6, 5, 9}, {{2, 2}, {2, 2}, "same"}},             // same, even pool, odd width
      {{2, 5, 6, 4}, {{2, 3}, {1, 2}, "same"}},             // rectangular pool and strides
      {{1, 4, 5, 1}, {{4, 4}, {1, 1}, "same"}},             // pad 1 on top, 2 at the bottom
      {{1, 2, 3, 2}, {{4, 4}, {-1, -1}, "same"}},           // pool larger than the image (same)
      {{1, 8, 8, 3}, {{2, 2}, {3, 3}, "valid"}},            // stride past the pool: unread pixels
      {{2, 9, 7, 70}, {{3, 3}, {2, 2}, "same"}},            // 70 channels: 16-channel blocks and a tail
      {{2, 11, 11, 64}, {}},                                // the MNIST convnet's second pool
      {{1, 1, 1, 3}, {{1, 1}, {1, 1}, "valid"}},            // a 1x1 image
  };
  return cases;
}

// ---- float64 references ----

struct RefGeometry {
  std::int64_t OH, OW, pad_top, pad_left;
};

// Keras/TensorFlow: valid OH = ceil((H - ph + 1) / sh); same OH = ceil(H / sh) with the
// padding total max((OH - 1) sh + ph - H, 0), the smaller half on top.
RefGeometry ref_geometry(const Shape& s, const Pool2dOptions& o) {
  const std::int64_t sh = o.strides[0] < 0 ? o.pool_size[0] : o.strides[0];
  const std::int64_t sw = o.strides[1] < 0 ? o.pool_size[1] : o.strides[1];
  auto ceil_div = [](std::int64_t a, std::int64_t b) { return (a + b - 1) / b; };
  if (o.padding == "valid") {
    return {ceil_div(s[1] - o.pool_size[0] + 1, sh), ceil_div(s[2] - o.pool_size[1] + 1, sw), 0, 0};
  }
  const std::int64_t OH = ceil_div(s[1], sh), OW = ceil_div(s[2], sw);
  return {OH, OW, std::max<std::int64_t>((OH - 1) * sh + o.pool_size[0] - s[1], 0) / 2,
          std::max<std::int64_t>((OW - 1) * sw + o.pool_size[1] - s[2], 0) / 2};
}

struct RefPool {
  Shape out_shape;
  std::vector<double> y;
  std::vector<std::vector<std::int64_t>> window;  // per output: flat input indices, row-major
  std::vector<std::int64_t> argmax;                // per output: flat input index (max)
};

RefPool pool_reference(const std::vector<double>& x, const Shape& s, const Pool2dOptions& o, bool is_max) {
  const RefGeometry g = ref_geometry(s, o);
  const std::int64_t N = s[0], H = s[1], W = s[2], C = s[3];
  const std::int64_t sh = o.strides[0] < 0 ? o.pool_size[0] : o.strides[0];
  const std::int64_t sw = o.strides[1] < 0 ? o.pool_size[1] : o.strides[1];
  RefPool r{{N, g.OH, g.OW, C}, {}, {}, {}};
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t oh = 0; oh < g.OH; ++oh)
      for (std::int64_t ow = 0; ow < g.OW; ++ow)
        for (std::int64_t c = 0; c < C; ++c) {
          std::vector<std::int64_t> win;
          for (std::int64_t kh = 0; kh < o.pool_size[0]; ++kh)
            for (std::int64_t kw = 0; kw < o.pool_size[1]; ++kw) {
              const std::int64_t ih = oh * sh - g.pad_top + kh, iw = ow * sw - g.pad_left + kw;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) win.push_back(((n * H + ih) * W + iw) * C + c);
            }
          std::int64_t best = win[0];
          double sum = 0;
          for (const std::int64_t i : win) {
            const double v = x[static_cast<std::size_t>(i)], b = x[static_cast<std::size_t>(best)];
            if (v > b || (std::isnan(v) && !std::isnan(b))) best = i;
            sum += v;
          }
          r.y.push_back(is_max ? x[static_cast<std::size_t>(best)] : sum / static_cast<double>(win.size()));
          r.argmax.push_back(best);
          r.window.push_back(std::move(win));
        }
  return r;
}

// The input gradient for output gradient gy, scattered window by window.
std::vector<double> pool_grad_reference(const RefPool& r, const std::vector<double>& gy, std::int64_t numel,
                                        bool is_max) {
  std::vector<double> gx(static_cast<std::size_t>(numel), 0.0);
  for (std::size_t o = 0; o < gy.size(); ++o) {
    if (is_max) {
      gx[static_cast<std::size_t>(r.argmax[o])] += gy[o];
    } else {
      for (const std::int64_t i : r.window[o]) gx[static_cast<std::size_t>(i)] += gy[o] / r.window[o].size();
    }
  }
  return gx;
}

Tensor pool(bool is_max, const Tensor& x, const Pool2dOptions& o) {
  return is_max ? max_pool2d(x, o) : avg_pool2d(x, o);
}

// Gradients pass through bf16/fp16 rounding once more than the forward.
test::Tolerance grad_tolerance(DType dt) {
  const test::Tolerance t = test::tolerance_for(dt);
  return {4 * t.atol, 2 * t.rtol};
}

// ---- forward and backward against the references ----

TEST(Pool2d, MatchesFloat64ReferenceAcrossShapesDTypesAndLayouts) {
  for (const PoolCase& c : pool_cases()) {
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : test::kAllLayouts) {
        for (const bool is_max : {true, false}) {
          SCOPED_TRACE(std::string(is_max ? "max " : "avg ") + describe(c) + ", " + std::string(name(dt)) + ", " +
                       test::layout_name(layout));
          Tensor x = test::make_input(test::uniform_values(c.shape.numel(), -4, 4, 11), c.shape, dt, kCpu, layout);
          x.requires_grad_();
          const RefPool ref = pool_reference(test::host_values(x), c.shape, c.options, is_max);
          test::poison_next_allocation(static_cast<std::size_t>(ref.out_shape.numel()) * itemsize(dt), kCpu);
          const Tensor y = pool(is_max, x, c.options);
          ASSERT_EQ(y.shape(), ref.out_shape);
          EXPECT_EQ(y.dtype(), dt);
          EXPECT_TRUE(test::all_close(y, ref.y, test::tolerance_for(dt)));
          const Tensor gy = test::make_input(test::uniform_values(y.numel(), -1, 1, 5), y.shape(), dt, kCpu,
                                             Layout::contiguous);
          backward(y, gy);
          ASSERT_TRUE(x.grad().defined());
          EXPECT_TRUE(test::all_close(
              x.grad(), pool_grad_reference(ref, test::host_values(gy), c.shape.numel(), is_max), grad_tolerance(dt)));
        }
      }
    }
  }
}

TEST(Pool2d, WithoutGradientGivesTheSameOutput) {
  const PoolCase c{{2, 9, 7, 70}, {{3, 3}, {2, 2}, "same"}};
  const Tensor x = test::make_input(test::uniform_values(c.shape.numel(), -4, 4, 3), c.shape, float32, kCpu,
                                    Layout::contiguous);
  Tensor xg = x.clone();
  xg.requires_grad_();
  EXPECT_TRUE(test::all_close(max_pool2d(x, c.options), max_pool2d(xg, c.options), {0, 0}));
}

TEST(Pool2d, TiesRouteToTheFirstMaximumInRowMajorWindowOrder) {
  // Values in {0, 1, 2}: most windows hold several maxima.
  const Shape shape{2, 7, 8, 3};
  std::vector<double> v = test::uniform_values(shape.numel(), 0, 3, 21);
  for (double& e : v) e = std::floor(e);
  for (const DType dt : {float32, float16, float64}) {
    for (const Pool2dOptions& o : {Pool2dOptions{}, Pool2dOptions{{3, 3}, {2, 2}, "same"}}) {
      Tensor x = test::make_input(v, shape, dt, kCpu, Layout::contiguous);
      x.requires_grad_();
      const Tensor y = max_pool2d(x, o);
      const Tensor gy = test::make_input(test::uniform_values(y.numel(), 1, 2, 9), y.shape(), dt, kCpu,
                                         Layout::contiguous);
      backward(y, gy);
      const RefPool ref = pool_reference(v, shape, o, true);
      EXPECT_TRUE(test::all_close(x.grad(), pool_grad_reference(ref, test::host_values(gy), shape.numel(), true),
                                  grad_tolerance(dt)))
          << name(dt) << " " << o.padding;
    }
  }
}

TEST(Pool2d, NanWinsAndInfinitiesPropagate) {
  // One image (1, 4, 4, 1) in 2x2 windows: NaN twice (the first wins); 7 beside -inf; all
  // -inf (the first element wins); inf twice.
  const double nan = std::nan(""), inf = INFINITY;
  const std::vector<double> v = {nan, 1,    5,   -inf,  //
                                 2,   nan,  3,   7,     //
                                 -inf, -inf, inf, 0,    //
                                 -inf, -inf, 1,   inf};
  for (const DType dt : test::kFloatDTypes) {
    Tensor x = test::make_input(v, {1, 4, 4, 1}, dt, kCpu, Layout::contiguous);
    x.requires_grad_();
    const Tensor y = max_pool2d(x);
    EXPECT_TRUE(test::all_close(y, {nan, 7, -inf, inf}, {0, 0})) << name(dt);
    backward(y, full(y.shape(), 1.0, {.dtype = dt, .device = kCpu}));
    // The first NaN (0, 0), the 7 at (1, 3), the first -inf (2, 0), the first inf (2, 2).
    const std::vector<double> expected = {1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0};
    EXPECT_TRUE(test::all_close(x.grad(), expected, {0, 0})) << name(dt);
    const Tensor a = avg_pool2d(x.detach());
    EXPECT_TRUE(test::all_close(a, {nan, -inf, -inf, inf}, {0, 0})) << name(dt);
  }
}

TEST(Pool2d, EmptyBatchOrChannelsGiveEmptyOutputs) {
  EXPECT_EQ(max_pool2d(zeros({0, 6, 6, 3}), {}).shape(), Shape({0, 3, 3, 3}));
  EXPECT_EQ(avg_pool2d(zeros({2, 6, 5, 0}), {{2, 2}, {-1, -1}, "same"}).shape(), Shape({2, 3, 3, 0}));
}

TEST(Pool2d, GradientsMatchCentralDifferences) {
  const PoolCase cases[] = {{{2, 5, 6, 3}, {}},
                            {{1, 7, 7, 2}, {{3, 3}, {2, 2}, "valid"}},
                            {{2, 5, 5, 3}, {{2, 2}, {2, 2}, "same"}},
                            {{1, 4, 5, 2}, {{4, 4}, {1, 1}, "same"}},
                            {{1, 6, 7, 2}, {{2, 2}, {3, 3}, "valid"}}};
  for (const PoolCase& c : cases) {
    // Distinct values at least 0.1 apart: no central difference crosses a tie.
    std::vector<double> v(static_cast<std::size_t>(c.shape.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * static_cast<double>((i * 37) % v.size());
    for (const Layout layout : {Layout::contiguous, Layout::transposed}) {
      const Tensor x = test::make_input(v, c.shape, float64, kCpu, layout);
      for (const bool is_max : {true, false}) {
        const auto r = gradcheck([&](const std::vector<Tensor>& in) { return pool(is_max, in[0], c.options); }, {x});
        EXPECT_TRUE(r.ok) << (is_max ? "max " : "avg ") << describe(c) << " " << test::layout_name(layout) << ": "
                          << r.message;
      }
    }
  }
}

// ---- global pooling ----

TEST(GlobalPool2d, MatchesReferenceWithKeepdimsAndRoutesToFirstMaximum) {
  const Shape shape{3, 5, 7, 6};
  for (const DType dt : test::kFloatDTypes) {
    for (const Layout layout : {Layout::contiguous, Layout::transposed, Layout::strided}) {
      std::vector<double> v = test::uniform_values(shape.numel(), 0, 4, 13);
      for (double& e : v) e = std::floor(e);  // ties
      Tensor x = test::make_input(v, shape, dt, kCpu, layout);
      x.requires_grad_();
      std::vector<double> mean_ref, max_ref, max_grad(v.size(), 0.0);
      for (std::int64_t n = 0; n < 3; ++n)
        for (std::int64_t c = 0; c < 6; ++c) {
          double s = 0;
          std::int64_t best = -1;
          for (std::int64_t p = 0; p < 35; ++p) {
            const std::int64_t i = (n * 35 + p) * 6 + c;
            s += v[static_cast<std::size_t>(i)];
            if (best < 0 || v[static_cast<std::size_t>(i)] > v[static_cast<std::size_t>(best)]) best = i;
          }
          mean_ref.push_back(s / 35);
          max_ref.push_back(v[static_cast<std::size_t>(best)]);
          max_grad[static_cast<std::size_t>(best)] = 1;
        }
      SCOPED_TRACE(std::string(name(dt)) + " " + test::layout_name(layout));
      const Tensor avg = global_avg_pool2d(x), avg_keep = global_avg_pool2d(x, true);
      EXPECT_EQ(avg.shape(), Shape({3, 6}));
      EXPECT_EQ(avg_keep.shape(), Shape({3, 1, 1, 6}));
      EXPECT_TRUE(test::all_close(avg, mean_ref, test::tolerance_for(dt)));
      EXPECT_TRUE(test::all_close(avg_keep, mean_ref, test::tolerance_for(dt)));
      const Tensor mx = global_max_pool2d(x, true);
      EXPECT_EQ(mx.shape(), Shape({3, 1, 1, 6}));
      EXPECT_TRUE(test::all_close(mx, max_ref, {0, 0}));
      backward(mx, full(mx.shape(), 1.0, {.dtype = dt, .device = kCpu}));
      EXPECT_TRUE(test::all_close(x.grad(), max_grad, {0, 0}));
    }
  }
  const Tensor nan_image = from_vector<double>({1, NAN, 3, NAN}, {1, 2, 2, 1});
  EXPECT_TRUE(std::isnan(global_max_pool2d(nan_image).item<double>()));
}

TEST(GlobalPool2d, GradientsMatchCentralDifferences) {
  const Shape shape{2, 3, 5, 4};
  std::vector<double> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * static_cast<double>((i * 37) % v.size());
  const Tensor x = test::make_input(v, shape, float64, kCpu, Layout::transposed);
  for (const bool keep : {false, true}) {
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0], keep); }, {x});
    EXPECT_TRUE(r.ok) << r.message;
    r = gradcheck([&](const std::vector<Tensor>& in) { return global_max_pool2d(in[0], keep); }, {x});
    EXPECT_TRUE(r.ok) << r.message;
  }
}

// ---- bad input ----

// Runs f, expecting kiln error E whose message contains every one of `parts`.
template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts[0];
  } catch (const E& e) {
    for (const std::string& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(Pool2d, BadInputRaisesNamingTheOpAndShapes) {
  const Tensor x = zeros({2, 5, 5, 3});
  expect_error<ShapeError>([&] { max_pool2d(zeros({5, 5, 3})); }, {"max_pool2d", "rank 4", "(5, 5, 3)"});
  expect_error<ShapeError>([&] { avg_pool2d(x, {{6, 2}}); }, {"avg_pool2d", "(6, 2)", "(2, 5, 5, 3)", "valid"});
  expect_error<ShapeError>([&] { max_pool2d(zeros({2, 0, 5, 3})); }, {"max_pool2d", "(2, 0, 5, 3)"});
  expect_error<ValueError>([&] { max_pool2d(x, {{0, 2}}); }, {"max_pool2d", "pool_size", "(0, 2)"});
  expect_error<ValueError>([&] { max_pool2d(x, {{2, 2}, {2, 0}}); }, {"max_pool2d", "strides", "(2, 0)"});
  expect_error<ValueError>([&] { max_pool2d(x, {{2, 2}, {-1, 2}}); }, {"strides", "(-1, 2)"});
  expect_error<ValueError>([&] { avg_pool2d(x, {{2, 2}, {-1, -1}, "full"}); }, {"avg_pool2d", "full"});
  expect_error<TypeError>([&] { max_pool2d(zeros({1, 4, 4, 1}, {.dtype = int32})); }, {"max_pool2d", "int32"});
  expect_error<ShapeError>([&] { global_avg_pool2d(zeros({2, 3})); }, {"global_avg_pool2d", "(2, 3)"});
  expect_error<ShapeError>([&] { global_max_pool2d(zeros({2, 3, 0, 1})); }, {"global_max_pool2d", "(2, 3, 0, 1)"});
  expect_error<TypeError>([&] { global_max_pool2d(zeros({1, 2, 2, 1}, {.dtype = int64})); }, {"global_max_pool2d"});
  EXPECT_THROW(max_pool2d(Tensor()), ValueError);
}

}  // namespace
}  // namespace kiln
