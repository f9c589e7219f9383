// batch_norm and layer_norm on cpu: float64 references over a table of shapes (NHWC 4-D,
// 2-D (N, C), odd channel counts, one row), dtypes and layouts; running statistics against
// hand values; a large-mean input that E[x^2] - E[x]^2 gets wrong; NaN; an empty batch;
// gradient checks in float64 (training through the batch statistics, inference, layer
// norm); mixed precision parameters; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/error.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/normalization.h"
#include "kiln/kernels/reduce.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

// ---- float64 references ----

struct Moments {
  std::vector<double> mean, var;  // biased
};

// Per-column mean and biased variance of (rows, C) row-major values (two-pass, float64).
Moments column_moments(const std::vector<double>& x, std::int64_t rows, std::int64_t C) {
  Moments m{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < C; ++c) m.mean[c] += x[r * C + c] / static_cast<double>(rows);
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < C; ++c) {
      const double d = x[r * C + c] - m.mean[c];
      m.var[c] += d * d / static_cast<double>(rows);
    }
  }
  return m;
}

// y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c] over (rows, C) values.
std::vector<double> normalize(const std::vector<double>& x, std::int64_t C, const Moments& m,
                              const std::vector<double>& gamma, const std::vector<double>& beta, double eps) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto c = static_cast<std::size_t>(static_cast<std::int64_t>(i) % C);
    y[i] = (x[i] - m.mean[c]) / std::sqrt(m.var[c] + eps) * (gamma.empty() ? 1.0 : gamma[c]) +
           (beta.empty() ? 0.0 : beta[c]);
  }
  return y;
}

std::vector<double> values_or_empty(const Tensor& t) { return t.defined() ? test::host_values(t) : std::vector<double>{}; }

// Layer norm of each row of K (moments of the row, transposed view of the same helpers).
std::vector<double> layer_norm_reference(const std::vector<double>& x, std::int64_t K,
                                         const std::vector<double>& gamma, const std::vector<double>& beta,
                                         double eps) {
  std::vector<double> y(x.size());
  for (std::size_t r0 = 0; r0 < x.size(); r0 += static_cast<std::size_t>(K)) {
    const std::vector<double> row(x.begin() + static_cast<std::ptrdiff_t>(r0),
                                  x.begin() + static_cast<std::ptrdiff_t>(r0) + K);
    const Moments m = column_moments(row, K, 1);
    const Moments per_k{std::vector<double>(K, m.mean[0]), std::vector<double>(K, m.var[0])};
    const std::vector<double> yr = normalize(row, K, per_k, gamma, beta, eps);
    std::copy(yr.begin(), yr.end(), y.begin() + static_cast<std::ptrdiff_t>(r0));
  }
  return y;
}

// Statistics in float32 (float64) plus the output's rounding.
test::Tolerance norm_tolerance(DType dt) {
  switch (dt) {
    case DType::float64: return {1e-10, 1e-10};
    case DType::float32: return {2e-5, 2e-5};
    case DType::float16: return {4e-3, 4e-3};
    default: return {3e-2, 3e-2};
  }
}

// Values in [-3, 3) plus 0.7 * channel, so every channel has its own mean.
std::vector<double> channel_values(const Shape& shape, std::uint64_t seed) {
  std::vector<double> v = test::uniform_values(shape.numel(), -3, 3, seed);
  const std::int64_t C = shape[shape.ndim() - 1];
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += 0.7 * static_cast<double>(static_cast<std::int64_t>(i) % C);
  return v;
}

const Shape kBatchNormShapes[] = {{5, 3}, {2, 3, 4, 7}, {1, 1, 1, 5}, {37, 33}, {4, 1}, {3, 2, 65}};

TEST(BatchNorm, TrainingMatchesFloat64ReferenceAcrossShapesDTypesAndLayouts) {
  for (const Shape& shape : kBatchNormShapes) {
    const std::int64_t C = shape[shape.ndim() - 1], rows = shape.numel() / C;
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : test::kAllLayouts) {
        for (const bool affine : {true, false}) {
          SCOPED_TRACE(shape.str() + " " + std::string(name(dt)) + " " + test::layout_name(layout) +
                       (affine ? " with gamma, beta" : " without gamma, beta"));
          const Tensor x = test::make_input(channel_values(shape, 3), shape, dt, kCpu, layout);
          const Tensor gamma = affine ? uniform({C}, 0.5, 2, {.dtype = dt, .device = kCpu}) : Tensor();
          const Tensor beta = affine ? uniform({C}, -1, 1, {.dtype = dt, .device = kCpu}) : Tensor();
          Tensor rm = uniform({C}, -1, 1, {.dtype = dt, .device = kCpu});
          Tensor rv = uniform({C}, 0.5, 2, {.dtype = dt, .device = kCpu});
          const std::vector<double> rm0 = test::host_values(rm), rv0 = test::host_values(rv);
          const std::vector<double> xv = test::host_values(x);
          const Tensor y = batch_norm(x, gamma, beta, rm, rv, {.training = true, .momentum = 0.9});
          EXPECT_EQ(y.shape(), shape);
          EXPECT_EQ(y.dtype(), dt);
          const Moments m = column_moments(xv, rows, C);
          const test::Tolerance tol = norm_tolerance(dt);
          EXPECT_TRUE(test::all_close(y, normalize(xv, C, m, values_or_empty(gamma), values_or_empty(beta), 1e-3), tol));
          std::vector<double> rm1(C), rv1(C);
          for (std::int64_t c = 0; c < C; ++c) {
            rm1[c] = rm0[c] * 0.9 + m.mean[c] * 0.1;
            rv1[c] = rv0[c] * 0.9 + m.var[c] * 0.1;
          }
          EXPECT_TRUE(test::all_close(rm, rm1, tol)) << "running_mean";
          EXPECT_TRUE(test::all_close(rv, rv1, tol)) << "running_var";
        }
      }
    }
  }
}

TEST(BatchNorm, InferenceUsesRunningStatisticsAndLeavesThemAlone) {
  for (const Shape& shape : kBatchNormShapes) {
    const std::int64_t C = shape[shape.ndim() - 1];
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : {Layout::contiguous, Layout::transposed, Layout::offset}) {
        SCOPED_TRACE(shape.str() + " " + std::string(name(dt)) + " " + test::layout_name(layout));
        const Tensor x = test::make_input(channel_values(shape, 5), shape, dt, kCpu, layout);
        const Tensor gamma = uniform({C}, 0.5, 2, {.dtype = dt, .device = kCpu});
        const Tensor beta = uniform({C}, -1, 1, {.dtype = dt, .device = kCpu});
        const Tensor rm = uniform({C}, -1, 1, {.dtype = dt, .device = kCpu});
        const Tensor rv = uniform({C}, 0.5, 2, {.dtype = dt, .device = kCpu});
        const std::vector<double> rm0 = test::host_values(rm), rv0 = test::host_values(rv);
        const Tensor y = batch_norm(x, gamma, beta, rm, rv, {.training = false});
        EXPECT_TRUE(test::all_close(
            y, normalize(test::host_values(x), C, {rm0, rv0}, test::host_values(gamma), test::host_values(beta), 1e-3),
            norm_tolerance(dt)));
        EXPECT_EQ(test::host_values(rm), rm0);
        EXPECT_EQ(test::host_values(rv), rv0);
      }
    }
  }
}

TEST(BatchNorm, RunningStatisticsMatchHandValues) {
  // Channel 0 holds {1, 3}: mean 2, biased variance 1. Channel 1 holds {2, 6}: mean 4,
  // variance 4. Keras 3's update (biased variance): running * 0.99 + batch * 0.01.
  const Tensor x = from_vector<double>({1, 2, 3, 6}, {2, 2}, {.device = kCpu});
  Tensor rm = from_vector<double>({0, 10}, {.device = kCpu});
  Tensor rv = from_vector<double>({1, 1}, {.device = kCpu});
  const Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv);
  EXPECT_NEAR(rm.at<double>({0}), 0.02, 1e-15);
  EXPECT_NEAR(rm.at<double>({1}), 9.94, 1e-13);
  EXPECT_NEAR(rv.at<double>({0}), 1.0, 1e-15);
  EXPECT_NEAR(rv.at<double>({1}), 1.03, 1e-15);
  EXPECT_NEAR(y.at<double>({0, 0}), -1 / std::sqrt(1.001), 1e-15);
  EXPECT_NEAR(y.at<double>({1, 1}), 2 / std::sqrt(4.001), 1e-15);
  // A second step moves them again; inference then normalizes with them.
  batch_norm(x, Tensor(), Tensor(), rm, rv, {.momentum = 0.5});
  EXPECT_NEAR(rm.at<double>({0}), 1.01, 1e-14);
  EXPECT_NEAR(rv.at<double>({1}), 2.515, 1e-14);
  const Tensor yi = batch_norm(x, Tensor(), Tensor(), rm, rv, {.training = false, .epsilon = 0});
  EXPECT_NEAR(yi.at<double>({0, 0}), (1 - 1.01) / std::sqrt(1.0), 1e-14);
}

TEST(BatchNorm, LargeMeanKeepsSmallVarianceWhereTheNaiveFormulaFails) {
  // float32 x = 1e4 + N(0, 1): E[x^2] = 1e8 has an ulp of 8, so E[x^2] - E[x]^2 in float32
  // loses the whole variance of 1. The result must still match float64 on the same
  // float32 inputs, to the rounding of the mean (ulp(1e4) / 2 ~ 5e-4, over std 1).
  const std::int64_t rows = 4096, C = 3;
  Generator gen(11);
  const Tensor x = normal({rows, C}, 1e4, 1, {.device = kCpu}, &gen);
  const std::vector<double> xv = test::host_values(x);
  float s = 0, sq = 0;  // the naive float32 formula, for channel 0
  for (std::int64_t r = 0; r < rows; ++r) {
    s += static_cast<float>(xv[r * C]);
    sq += static_cast<float>(xv[r * C]) * static_cast<float>(xv[r * C]);
  }
  const float naive = sq / rows - (s / rows) * (s / rows);
  const Moments m = column_moments(xv, rows, C);
  EXPECT_GT(std::fabs(naive - m.var[0]), 0.5 * m.var[0]) << "the naive formula should fail here";
  Tensor rm = zeros({C}, {.device = kCpu}), rv = ones({C}, {.device = kCpu});
  const Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv);
  EXPECT_TRUE(test::all_close(y, normalize(xv, C, m, {}, {}, 1e-3), {2e-3, 2e-3}));
  for (std::int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(rv.at<double>({c}), 0.99 + 0.01 * m.var[c], 1e-5) << "channel " << c;
  }
  // Layer norm over rows of 1e4 + noise.
  const Tensor xt = x.t().contiguous();  // (3, 4096)
  const Tensor yl = layer_norm(xt, Tensor(), Tensor());
  EXPECT_TRUE(test::all_close(yl, layer_norm_reference(test::host_values(xt), rows, {}, {}, 1e-3), {2e-3, 2e-3}));
}

TEST(BatchNorm, OneRowGivesBetaAndDecaysTheRunningVariance) {
  // N * H * W == 1: the batch variance is 0, xhat is 0 and y is beta exactly (as Keras).
  // The running variance takes the batch variance, 0.
  const Tensor x = from_vector<float>({3, -1, 7, 0.5f, 2}, {1, 1, 1, 5}, {.device = kCpu});
  const Tensor gamma = full({5}, 2.0, {.device = kCpu});
  const Tensor beta = from_vector<float>({0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, {.device = kCpu});
  Tensor rm = zeros({5}, {.device = kCpu}), rv = ones({5}, {.device = kCpu});
  const Tensor y = batch_norm(x, gamma, beta, rm, rv);
  EXPECT_EQ(y.flatten().to_vector<float>(), beta.to_vector<float>());
  EXPECT_NEAR(rm.at<float>({2}), 0.07f, 1e-7);
  EXPECT_NEAR(rv.at<float>({2}), 0.99f, 1e-7);
}

TEST(BatchNorm, EmptyBatchLeavesRunningStatisticsAndGivesZeroGradients) {
  Tensor x = zeros({0, 4}, {.device = kCpu});
  Tensor gamma = ones({4}, {.device = kCpu}), beta = zeros({4}, {.device = kCpu});
  x.requires_grad_();
  gamma.requires_grad_();
  beta.requires_grad_();
  Tensor rm = full({4}, 0.5, {.device = kCpu}), rv = full({4}, 2.0, {.device = kCpu});
  const Tensor y = batch_norm(x, gamma, beta, rm, rv);
  EXPECT_EQ(y.shape(), Shape({0, 4}));
  EXPECT_EQ(rm.to_vector<float>(), std::vector<float>(4, 0.5f));
  EXPECT_EQ(rv.to_vector<float>(), std::vector<float>(4, 2.0f));
  backward(sum(y));
  EXPECT_EQ(gamma.grad().to_vector<float>(), std::vector<float>(4, 0.0f));
  EXPECT_EQ(beta.grad().to_vector<float>(), std::vector<float>(4, 0.0f));
  EXPECT_EQ(x.grad().shape(), Shape({0, 4}));
}

TEST(BatchNorm, NaNStaysInItsChannelAndLayerNormRow) {
  std::vector<double> v = channel_values({6, 3}, 8);
  v[4] = NAN;  // row 1, channel 1
  const Tensor x = from_vector<double>(v, {6, 3}, {.device = kCpu});
  for (const DType dt : {float32, float64}) {
    Tensor rm = zeros({3}, {.dtype = dt, .device = kCpu}), rv = ones({3}, {.dtype = dt, .device = kCpu});
    // Training: channel 1's statistics are NaN, so is all of it; the others are untouched.
    const std::vector<double> y = batch_norm(x.to(dt), Tensor(), Tensor(), rm, rv).to_vector<double>();
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_EQ(std::isnan(y[i]), i % 3 == 1) << dt << " element " << i;
    EXPECT_TRUE(std::isnan(rm.at<double>({1})) && std::isnan(rv.at<double>({1})));
    EXPECT_TRUE(std::isfinite(rm.at<double>({0})) && std::isfinite(rv.at<double>({2})));
    // Inference: only the NaN element.
    const std::vector<double> yi =
        batch_norm(x.to(dt), Tensor(), Tensor(), zeros({3}, {.dtype = dt, .device = kCpu}),
                   ones({3}, {.dtype = dt, .device = kCpu}), {.training = false})
            .to_vector<double>();
    for (std::size_t i = 0; i < yi.size(); ++i) EXPECT_EQ(std::isnan(yi[i]), i == 4) << dt << " element " << i;
    // Layer norm: the NaN's row only.
    const std::vector<double> yl = layer_norm(x.to(dt), Tensor(), Tensor()).to_vector<double>();
    for (std::size_t i = 0; i < yl.size(); ++i) EXPECT_EQ(std::isnan(yl[i]), i / 3 == 1) << dt << " element " << i;
  }
}

// ---- gradients ----

struct GradCase {
  Shape shape;
  bool affine, training;
  Layout layout;
};

TEST(BatchNorm, GradientsMatchCentralDifferences) {
  const GradCase cases[] = {{{4, 3}, true, true, Layout::contiguous},     {{2, 3, 3, 5}, true, true, Layout::contiguous},
                            {{3, 5}, false, true, Layout::contiguous},    {{5, 4}, true, true, Layout::transposed},
                            {{1, 3}, true, true, Layout::contiguous},     {{2, 2, 2, 3}, true, false, Layout::contiguous},
                            {{4, 3}, false, false, Layout::strided}};
  for (const GradCase& c : cases) {
    SCOPED_TRACE(c.shape.str() + (c.affine ? " affine" : "") + (c.training ? " training " : " inference ") +
                 test::layout_name(c.layout));
    const std::int64_t C = c.shape[c.shape.ndim() - 1];
    Tensor x = test::make_input(channel_values(c.shape, 2), c.shape, float64, kCpu, c.layout);
    x.requires_grad_();
    std::vector<Tensor> inputs{x};
    if (c.affine) {
      inputs.push_back(uniform({C}, 0.5, 2, {.dtype = float64, .device = kCpu}).requires_grad_());
      inputs.push_back(uniform({C}, -1, 1, {.dtype = float64, .device = kCpu}).requires_grad_());
    }
    const Tensor rm = uniform({C}, -1, 1, {.dtype = float64, .device = kCpu});
    const Tensor rv = uniform({C}, 0.5, 2, {.dtype = float64, .device = kCpu});
    const BatchNormOptions options{.training = c.training};
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return batch_norm(in[0], c.affine ? in[1] : Tensor(), c.affine ? in[2] : Tensor(), rm, rv, options);
        },
        inputs);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

TEST(LayerNorm, GradientsMatchCentralDifferences) {
  const GradCase cases[] = {{{3, 7}, true, true, Layout::contiguous}, {{2, 3, 5}, false, true, Layout::contiguous},
                            {{4, 6}, true, true, Layout::transposed}, {{5}, true, true, Layout::contiguous},
                            {{3, 1}, true, true, Layout::contiguous}};
  for (const GradCase& c : cases) {
    SCOPED_TRACE(c.shape.str() + (c.affine ? " affine " : " ") + test::layout_name(c.layout));
    const std::int64_t K = c.shape[c.shape.ndim() - 1];
    Tensor x = test::make_input(test::uniform_values(c.shape.numel(), -2, 2, 6), c.shape, float64, kCpu, c.layout);
    x.requires_grad_();
    std::vector<Tensor> inputs{x};
    if (c.affine) {
      inputs.push_back(uniform({K}, 0.5, 2, {.dtype = float64, .device = kCpu}).requires_grad_());
      inputs.push_back(uniform({K}, -1, 1, {.dtype = float64, .device = kCpu}).requires_grad_());
    }
    const auto r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return layer_norm(in[0], c.affine ? in[1] : Tensor(), c.affine ? in[2] : Tensor());
        },
        inputs);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

// ---- layer norm forward ----

TEST(LayerNorm, MatchesFloat64ReferenceAcrossShapesDTypesAndLayouts) {
  const Shape shapes[] = {{7}, {3, 5}, {2, 3, 33}, {4, 1}, {2, 1100}, {0, 3}};
  for (const Shape& shape : shapes) {
    const std::int64_t K = shape[shape.ndim() - 1];
    for (const DType dt : test::kFloatDTypes) {
      for (const Layout layout : test::kAllLayouts) {
        if (layout == Layout::expanded && shape.numel() == 0) continue;
        for (const bool affine : {true, false}) {
          SCOPED_TRACE(shape.str() + " " + std::string(name(dt)) + " " + test::layout_name(layout) +
                       (affine ? " affine" : ""));
          const Tensor x = test::make_input(channel_values(shape, 4), shape, dt, kCpu, layout);
          const Tensor gamma = affine ? uniform({K}, 0.5, 2, {.dtype = dt, .device = kCpu}) : Tensor();
          const Tensor beta = affine ? uniform({K}, -1, 1, {.dtype = dt, .device = kCpu}) : Tensor();
          const Tensor y = layer_norm(x, gamma, beta, 1e-5);
          EXPECT_EQ(y.shape(), shape);
          EXPECT_EQ(y.dtype(), dt);
          EXPECT_TRUE(test::all_close(y,
                                      layer_norm_reference(test::host_values(x), K, values_or_empty(gamma),
                                                           values_or_empty(beta), 1e-5),
                                      norm_tolerance(dt)));
        }
      }
    }
  }
}

// ---- dtypes, autograd wiring, bad input ----

TEST(BatchNorm, HalfInputTakesFloat32ParametersAndGivesGradientsInTheirDTypes) {
  for (const DType dt : {float16, bfloat16}) {
    Tensor x = uniform({6, 4}, -2, 2, {.dtype = dt, .device = kCpu}).requires_grad_();
    Tensor gamma = ones({4}, {.device = kCpu}).requires_grad_();
    Tensor beta = zeros({4}, {.device = kCpu}).requires_grad_();
    Tensor rm = zeros({4}, {.device = kCpu}), rv = ones({4}, {.device = kCpu});
    const Tensor y = batch_norm(x, gamma, beta, rm, rv);
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_NE(rm.at<float>({0}), 0.0f);
    backward(sum(mul(y, y)));
    EXPECT_EQ(x.grad().dtype(), dt);
    EXPECT_EQ(gamma.grad().dtype(), float32);
    EXPECT_EQ(beta.grad().dtype(), float32);
    Tensor xl = uniform({3, 5}, -2, 2, {.dtype = dt, .device = kCpu}).requires_grad_();
    Tensor gl = ones({5}, {.device = kCpu}).requires_grad_();
    backward(sum(layer_norm(xl, gl, Tensor())));
    EXPECT_EQ(gl.grad().dtype(), float32);
    EXPECT_EQ(xl.grad().dtype(), dt);
  }
}

TEST(BatchNorm, RecordsNothingUnderNoGradAndOnlyWhatIsNeeded) {
  Tensor x = uniform({5, 3}, -1, 1, {.device = kCpu}).requires_grad_();
  const Tensor gamma = ones({3}, {.device = kCpu});  // no grad
  Tensor beta = zeros({3}, {.device = kCpu}).requires_grad_();
  Tensor rm = zeros({3}, {.device = kCpu}), rv = ones({3}, {.device = kCpu});
  {
    NoGradGuard no_grad;
    EXPECT_EQ(batch_norm(x, gamma, beta, rm, rv).grad_fn(), nullptr);
  }
  const Tensor y = batch_norm(x, gamma, beta, rm, rv);
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_EQ(y.grad_fn()->name(), "BatchNormBackward");
  backward(sum(y));
  EXPECT_FALSE(gamma.grad().defined());
  // sum(y) does not depend on x (the batch mean removes it) and grows with beta by rows.
  for (const float g : x.grad().to_vector<float>()) EXPECT_NEAR(g, 0.0f, 1e-6f);
  EXPECT_EQ(beta.grad().to_vector<float>(), std::vector<float>(3, 5.0f));
}

template <class E, class F>
void expect_error(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const E& e) {
    for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(BatchNorm, BadInputRaisesNamingTheOpAndShapes) {
  const Tensor x = zeros({2, 3, 3, 4}, {.device = kCpu});
  const Tensor p4 = ones({4}, {.device = kCpu}), p5 = ones({5}, {.device = kCpu});
  expect_error<ShapeError>([&] { batch_norm(x, p5, p4, p4, p4); }, {"batch_norm", "gamma", "(4,)", "(2, 3, 3, 4)", "(5,)"});
  expect_error<ShapeError>([&] { batch_norm(x, p4, p4, p4, ones({2, 2}, {.device = kCpu})); },
                           {"batch_norm", "running_var", "(2, 2)"});
  expect_error<TypeError>([&] { batch_norm(x, p4.to(float64), p4, p4, p4); }, {"batch_norm", "gamma", "float64", "float32"});
  expect_error<TypeError>([&] { batch_norm(x.to(float64), p4, Tensor(), p4, p4); }, {"batch_norm", "float64"});
  expect_error<TypeError>([&] { batch_norm(x.to(int32), p4, p4, p4, p4); }, {"batch_norm", "int32"});
  expect_error<ValueError>([&] { batch_norm(x, p4, p4, Tensor(), p4); }, {"batch_norm", "running_mean"});
  expect_error<ShapeError>([&] { batch_norm(zeros({}, {.device = kCpu}), p4, p4, p4, p4); }, {"batch_norm", "()"});
  expect_error<ValueError>([&] { batch_norm(x, p4, p4, p4, p4, {.momentum = 1.5}); }, {"batch_norm", "momentum"});
  expect_error<ValueError>([&] { batch_norm(x, p4, p4, p4, p4, {.epsilon = -1}); }, {"batch_norm", "epsilon"});
  expect_error<ShapeError>([&] { layer_norm(x, p4, p5); }, {"layer_norm", "beta", "(5,)"});
  expect_error<TypeError>([&] { layer_norm(x.to(float16), p4.to(float64), Tensor()); },
                          {"layer_norm", "gamma", "float16", "float32"});
  expect_error<ValueError>([&] { layer_norm(x, p4, p4, std::nan("")); }, {"layer_norm", "epsilon"});
}

}  // namespace
}  // namespace kiln
