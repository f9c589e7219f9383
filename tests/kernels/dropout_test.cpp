// dropout on cpu (kernels/dropout.h): the mask is exactly Philox's (core/philox.h, the
// convention of core's random fills), kept elements scale by 1 / (1 - rate), the backward
// reuses the mask, generators advance, inference and rate 0 are the identity, bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/core/philox.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/dropout.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using test::Layout;

// The float64 reference of dropout(x) drawn at (seed, offset): Philox word i of the fill,
// kept when its [0, 1) uniform is >= rate.
std::vector<double> dropout_reference(const std::vector<double>& x, double rate, std::uint64_t seed,
                                      std::uint64_t offset) {
  std::vector<double> y(x.size());
  const double scale = 1.0 / (1.0 - rate);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool keep = uniform_from_bits(philox_word(seed, offset, i)) >= rate;
    y[i] = x[i] * (keep ? scale : 0.0);
  }
  return y;
}

TEST(Dropout, MatchesThePhiloxMaskForEveryDtypeSizeAndLayout) {
  for (DType dt : test::kFloatDTypes) {
    for (const Shape& shape : {Shape{1}, Shape{7}, Shape{33, 65}, Shape{3, 4, 5}, Shape{(1 << 15) + 3}}) {
      for (Layout layout : {Layout::contiguous, Layout::strided, Layout::offset, Layout::expanded}) {
        SCOPED_TRACE(std::string(name(dt)) + " " + shape.str() + " " + test::layout_name(layout));
        const Tensor x =
            test::make_input(test::uniform_values(shape.numel(), -3, 3, 5), shape, dt, kCpu, layout);
        Generator gen(1234);
        gen.reserve(10);  // a non-zero offset
        const std::uint64_t offset = gen.offset();
        const Tensor y = dropout(x, 0.3, true, &gen);
        EXPECT_EQ(y.shape(), shape);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_EQ(gen.offset(), offset + philox_blocks(static_cast<std::uint64_t>(shape.numel())));
        // Scaling happens in the compute type: allow the dtype's rounding of x * scale.
        EXPECT_TRUE(test::all_close(y, dropout_reference(test::host_values(x), 0.3, 1234, offset),
                                    test::tolerance_for(dt)));
      }
    }
  }
}

TEST(Dropout, DropsAboutRateOfTheElementsAndScalesTheRest) {
  const Tensor x = ones({100000}, {.device = kCpu});
  for (double rate : {0.1, 0.5, 0.9}) {
    Generator gen(7);
    const std::vector<float> y = dropout(x, rate, true, &gen).to_vector<float>();
    std::int64_t dropped = 0;
    for (float v : y) {
      if (v == 0.0f) {
        ++dropped;
      } else {
        EXPECT_FLOAT_EQ(v, static_cast<float>(1.0 / (1.0 - rate)));
      }
    }
    EXPECT_NEAR(static_cast<double>(dropped) / 100000.0, rate, 0.01) << "rate " << rate;
  }
}

TEST(Dropout, SameSeedGivesTheSameMaskAndTheGeneratorMovesOn) {
  const Tensor x =
      test::make_input(test::uniform_values(1000, 1, 2, 3), {1000}, float32, kCpu, Layout::contiguous);
  Generator a(99), b(99);
  const Tensor first = dropout(x, 0.5, true, &a);
  EXPECT_TRUE(test::all_close(dropout(x, 0.5, true, &b), first, {0, 0}));
  const Tensor second = dropout(x, 0.5, true, &a);
  EXPECT_FALSE(test::all_close(second, first, {0, 0}));
  // The default generator is used when none is given.
  manual_seed(99);
  EXPECT_TRUE(test::all_close(dropout(x, 0.5), first, {0, 0}));
}

TEST(Dropout, InferenceAndRateZeroReturnTheInput) {
  const Tensor x = ones({4, 4}, {.device = kCpu});
  EXPECT_TRUE(dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(dropout(x, 0.0, true).is_same(x));
}

TEST(Dropout, BackwardAppliesTheSameMaskAndScale) {
  const Tensor x =
      test::make_input(test::uniform_values(257, 1, 2, 11), {257}, float32, kCpu, Layout::contiguous)
          .requires_grad_();
  Generator gen(5);
  const Tensor y = dropout(x, 0.25, true, &gen);
  backward(y, ones({257}, {.device = kCpu}));
  const std::vector<double> yv = test::host_values(y), xv = test::host_values(x);
  std::vector<double> expected(yv.size());
  for (std::size_t i = 0; i < yv.size(); ++i) expected[i] = yv[i] == 0.0 ? 0.0 : 1.0 / 0.75;
  EXPECT_TRUE(test::all_close(x.grad(), expected, test::tolerance_for(float32)));
}

TEST(Dropout, GradientMatchesCentralDifferencesInFloat64) {
  const Tensor x =
      test::make_input(test::uniform_values(60, -2, 2, 13), {6, 10}, float64, kCpu, Layout::transposed)
          .requires_grad_();
  // A fresh generator per call: every evaluation draws the same mask.
  const auto result = gradcheck(
      [](const std::vector<Tensor>& in) {
        Generator gen(21);
        return dropout(in[0], 0.4, true, &gen);
      },
      {x}, {.atol = 1e-8, .rtol = 1e-6});
  EXPECT_TRUE(result.ok) << result.message;
}

TEST(Dropout, NaNStaysNaNEvenWhereDropped) {
  const Tensor x = full({64}, NAN, {.device = kCpu});
  Generator gen(1);
  for (double v : dropout(x, 0.5, true, &gen).to_vector<double>()) EXPECT_TRUE(std::isnan(v));
}

TEST(Dropout, BadRateAndDtypeAreRejected) {
  const Tensor x = ones({3}, {.device = kCpu});
  for (double rate : {1.0, -0.1, 1.5, static_cast<double>(NAN)}) {
    EXPECT_THROW(dropout(x, rate), ValueError) << rate;
  }
  try {
    dropout(ones({3}, {.dtype = int32, .device = kCpu}), 0.5);
    FAIL() << "no error for int32";
  } catch (const TypeError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("dropout"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("int32"));
  }
}

}  // namespace
}  // namespace kiln
