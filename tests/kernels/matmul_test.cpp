// matmul and linear on cpu (oneDNN, the float32 route for 16-bit types oneDNN lacks, the
// float64 loop) against float64 references computed here: tile-edge and odd sizes with
// integer-valued fills (exact), K = 0, batch broadcasting, every input layout (transposed
// views reach oneDNN uncopied), 1-D operands, linear with and without bias, NaN and Inf,
// float64 gradient checks, and the errors for bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/matmul.h"
#include "matmul_ref.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using test::kCpu;
using test::Layout;

constexpr test::Tolerance kExact{0, 0};

Tensor integers(const Shape& shape, DType dt, std::uint64_t seed, Layout layout = Layout::contiguous,
                Device device = kCpu) {
  return test::make_input(test::small_integers(shape.numel(), seed), shape, dt, device, layout);
}

Tensor randoms(const Shape& shape, std::uint64_t seed, DType dt = float64) {
  return test::make_input(test::uniform_values(shape.numel(), -1, 1, seed), shape, dt, kCpu,
                          Layout::contiguous);
}

std::string describe(const Tensor& a, const Tensor& b) {
  std::ostringstream os;
  os << a.dtype() << " " << a.shape() << " strides " << a.strides() << " x " << b.shape()
     << " strides " << b.strides();
  return os.str();
}

// matmul(a, b) with its output allocation poisoned, checked exactly against float64.
void expect_exact_matmul(const Tensor& a, const Tensor& b, const Shape& expected_shape) {
  SCOPED_TRACE(describe(a, b));
  const std::int64_t out_bytes = expected_shape.numel() * static_cast<std::int64_t>(a.itemsize());
  test::poison_next_allocation(static_cast<std::size_t>(out_bytes), a.device());
  const Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), expected_shape);
  EXPECT_EQ(c.dtype(), a.dtype());
  EXPECT_TRUE(test::all_close(c, test::reference_matmul(a, b), kExact));
}

TEST(MatmulCpu, ExactAtTileEdgesAndOddSizesForEveryDtype) {
  std::uint64_t seed = 1;
  auto next = [&seed] { return ++seed; };
  for (DType dt : test::kFloatDTypes) {
    for (const auto& s : test::kTileEdgeShapes) {
      expect_exact_matmul(integers({s.m, s.k}, dt, next()), integers({s.k, s.n}, dt, next()),
                          {s.m, s.n});
    }
  }
}

TEST(MatmulCpu, EveryLayoutOfEitherOperand) {
  // transposed: a BLAS layout used without a copy; strided and expanded (batch stride 0,
  // or a 0 row stride in 2-D): copied or broadcast; offset: storage one element in.
  std::uint64_t seed = 50;
  auto next = [&seed] { return ++seed; };
  for (DType dt : {float32, bfloat16, float64}) {
    for (Layout la : test::kAllLayouts) {
      for (Layout lb : test::kAllLayouts) {
        SCOPED_TRACE(std::string(test::layout_name(la)) + " x " + test::layout_name(lb));
        expect_exact_matmul(integers({3, 33, 17}, dt, next(), la), integers({3, 17, 9}, dt, next(), lb),
                            {3, 33, 9});
        expect_exact_matmul(integers({5, 7}, dt, next(), la), integers({7, 6}, dt, next(), lb), {5, 6});
      }
    }
  }
}

TEST(MatmulCpu, TransposedViewsOfTheLastTwoAxes) {
  const Tensor a_store = integers({4, 9, 13}, float32, 3);  // (batch, k, m)
  const Tensor b_store = integers({4, 11, 9}, float32, 4);  // (batch, n, k)
  expect_exact_matmul(a_store.transpose(-1, -2), b_store.transpose(-1, -2), {4, 13, 11});
  expect_exact_matmul(integers({9, 13}, float32, 5).t(), integers({11, 9}, float32, 6).t(), {13, 11});
  // A permuted batch: the batch axes are strided, the matrices transposed.
  const Tensor a_perm = integers({13, 4, 9}, float32, 7).permute({1, 2, 0});  // (4, 9, 13)
  expect_exact_matmul(a_perm, integers({13, 5}, float32, 8), {4, 9, 5});
}

TEST(MatmulCpu, BroadcastsBatchAxes) {
  std::uint64_t seed = 200;
  auto next = [&seed] { return ++seed; };
  for (DType dt : {float32, float16, float64}) {
    expect_exact_matmul(integers({2, 1, 5, 7}, dt, next()), integers({3, 7, 4}, dt, next()), {2, 3, 5, 4});
    expect_exact_matmul(integers({5, 7}, dt, next()), integers({2, 3, 7, 4}, dt, next()), {2, 3, 5, 4});
    expect_exact_matmul(integers({2, 3, 5, 7}, dt, next()), integers({7, 4}, dt, next()), {2, 3, 5, 4});
    expect_exact_matmul(integers({1, 3, 5, 7}, dt, next()), integers({2, 1, 7, 4}, dt, next()), {2, 3, 5, 4});
    expect_exact_matmul(integers({6, 1, 7}, dt, next()), integers({6, 7, 65}, dt, next()), {6, 1, 65});
  }
}

TEST(MatmulCpu, OneDimensionalOperandsArePromotedAndSqueezed) {
  const Tensor v = integers({7}, float32, 1), w = integers({7}, float32, 2);
  expect_exact_matmul(v, w, Shape{});
  expect_exact_matmul(v, integers({7, 5}, float32, 3), {5});
  expect_exact_matmul(integers({4, 7}, float32, 4), w, {4});
  expect_exact_matmul(v, integers({3, 7, 5}, float32, 5), {3, 5});
  expect_exact_matmul(integers({2, 3, 4, 7}, float64, 6), integers({7}, float64, 7), {2, 3, 4});
}

TEST(MatmulCpu, EmptyInnerDimensionGivesZeros) {
  for (DType dt : test::kFloatDTypes) {
    test::poison_next_allocation(3 * 4 * itemsize(dt), kCpu);
    const TensorOptions opts{.dtype = dt, .device = kCpu};
    const Tensor c = matmul(empty({3, 0}, opts), empty({0, 4}, opts));
    ASSERT_EQ(c.shape(), Shape({3, 4}));
    EXPECT_TRUE(test::all_close(c, std::vector<double>(12, 0.0), kExact));
  }
  const Tensor bias = integers({4}, float32, 9);
  const Tensor y = linear(empty({2, 0}, {.device = kCpu}), empty({4, 0}, {.device = kCpu}), bias);
  EXPECT_TRUE(test::all_close(y, bias.expand({2, 4}), kExact));
}

TEST(MatmulCpu, EmptyBatchOrRowsGiveEmptyResults) {
  EXPECT_EQ(matmul(empty({0, 3}, {.device = kCpu}), empty({3, 4}, {.device = kCpu})).shape(), Shape({0, 4}));
  EXPECT_EQ(matmul(empty({2, 0, 3, 5}, {.device = kCpu}), empty({5, 4}, {.device = kCpu})).shape(),
            Shape({2, 0, 3, 4}));
}

TEST(MatmulCpu, NanAndInfPropagateToTheirRowsAndColumns) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {float32, float64, bfloat16}) {
    std::vector<double> av(4 * 3, 1.0), bv(3 * 2, 1.0);
    av[1 * 3 + 2] = std::nan("");  // row 1 of C is NaN
    bv[0 * 2 + 1] = inf;           // column 1 of C is +Inf (rows without NaN)
    const Tensor a = from_vector(av, {4, 3}, {.dtype = dt, .device = kCpu});
    const Tensor b = from_vector(bv, {3, 2}, {.dtype = dt, .device = kCpu});
    const std::vector<double> c = matmul(a, b).to_vector<double>();
    for (int i = 0; i < 4; ++i) {
      EXPECT_TRUE(i == 1 ? std::isnan(c[i * 2]) : c[i * 2] == 3.0) << dt << " row " << i;
      EXPECT_TRUE(i == 1 ? std::isnan(c[i * 2 + 1]) : c[i * 2 + 1] == inf) << dt << " row " << i;
    }
  }
}

TEST(LinearCpu, MatchesReferenceWithAndWithoutBias) {
  std::uint64_t seed = 300;
  auto next = [&seed] { return ++seed; };
  for (DType dt : test::kFloatDTypes) {
    const Tensor w = integers({9, 17}, dt, next()), bias = integers({9}, dt, next());
    for (const Shape& xs : {Shape{17}, Shape{1, 17}, Shape{65, 17}, Shape{2, 33, 17}}) {
      const Tensor x = integers(xs, dt, next());
      SCOPED_TRACE(describe(x, w));
      Shape ys = xs;
      ys[ys.ndim() - 1] = 9;
      const Tensor y = linear(x, w, bias), y0 = linear(x, w);
      ASSERT_EQ(y.shape(), ys);
      EXPECT_TRUE(test::all_close(y, test::reference_linear(x, w, bias), kExact));
      EXPECT_TRUE(test::all_close(y0, test::reference_linear(x, w, Tensor()), kExact));
    }
  }
}

TEST(LinearCpu, NonContiguousInputsAndWeights) {
  for (Layout lx : test::kAllLayouts) {
    for (Layout lw : test::kAllLayouts) {
      SCOPED_TRACE(std::string(test::layout_name(lx)) + " x " + test::layout_name(lw));
      const Tensor x = integers({6, 11}, float32, 1, lx), w = integers({5, 11}, float32, 2, lw);
      const Tensor bias = integers({11}, float32, 3, Layout::strided).slice(0, 0, 5);
      EXPECT_TRUE(test::all_close(linear(x, w, bias), test::reference_linear(x, w, bias), kExact));
    }
  }
}

// ---- gradients ----

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

void expect_gradcheck(const Fn& f, const std::vector<Tensor>& inputs) {
  const auto r = gradcheck(f, inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(MatmulCpu, GradcheckOverShapesBroadcastsAndOneDimensionalOperands) {
  const Fn mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 5}},       {{2, 1, 3, 4}, {3, 4, 5}}, {{2, 3, 4}, {4, 5}}, {{4, 5}, {2, 5, 3}},
      {{4}, {4}},             {{4}, {4, 3}},             {{3, 4}, {4}},       {{4}, {2, 4, 3}},
      {{2, 3, 4}, {4}},       {{1, 4}, {4, 1}},          {{3, 1}, {1, 2}},
  };
  std::uint64_t seed = 10;
  auto next = [&seed] { return ++seed; };
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(sa.str() + " x " + sb.str());
    expect_gradcheck(mm, {randoms(sa, next()), randoms(sb, next())});
  }
}

TEST(MatmulCpu, GradcheckThroughTransposedInputs) {
  const Fn mm_t = [](const std::vector<Tensor>& in) {
    return matmul(in[0].transpose(-1, -2), in[1].transpose(-1, -2));
  };
  expect_gradcheck(mm_t, {randoms({2, 5, 3}, 1), randoms({2, 4, 5}, 2)});
}

TEST(LinearCpu, GradcheckWithAndWithoutBias) {
  const Fn with_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  const Fn without = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  for (const Shape& xs : {Shape{4}, Shape{3, 4}, Shape{2, 3, 4}}) {
    SCOPED_TRACE(xs.str());
    expect_gradcheck(with_bias, {randoms(xs, 1), randoms({5, 4}, 2), randoms({5}, 3)});
    expect_gradcheck(without, {randoms(xs, 4), randoms({5, 4}, 5)});
  }
}

TEST(MatmulCpu, BackwardFillsOnlyTheGradientsAsked) {
  const Tensor a = integers({3, 4}, float32, 1);
  Tensor b = integers({4, 2}, float32, 2);
  b.requires_grad_();
  const Tensor g = integers({3, 2}, float32, 3);
  backward(matmul(a, b), g);
  EXPECT_FALSE(a.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_TRUE(test::all_close(b.grad(), test::reference_matmul(a.t(), g), kExact));
}

TEST(LinearCpu, SixteenBitAndFloat32GradientsMatchFloat64) {
  for (DType dt : {float32, bfloat16, float16}) {
    SCOPED_TRACE(name(dt));
    std::vector<Tensor> grads[2];
    for (int i = 0; i < 2; ++i) {
      const DType t = i == 0 ? dt : float64;
      Tensor x = integers({2, 5, 6}, t, 1), w = integers({3, 6}, t, 2), bias = integers({3}, t, 3);
      for (Tensor* p : {&x, &w, &bias}) p->requires_grad_();
      backward(linear(x, w, bias), integers({2, 5, 3}, t, 4));
      grads[i] = {x.grad(), w.grad(), bias.grad()};
    }
    for (int j = 0; j < 3; ++j) EXPECT_TRUE(test::all_close(grads[0][j], grads[1][j], kExact)) << j;
  }
}

TEST(MatmulSettings, BackendOverrideAndTf32FlagRoundTrip) {
  const GemmBackend before = gemm_backend();
  set_gemm_backend(GemmBackend::native);
  EXPECT_EQ(gemm_backend(), GemmBackend::native);
  set_gemm_backend(GemmBackend::vendor);
  EXPECT_EQ(gemm_backend(), GemmBackend::vendor);
  set_gemm_backend(before);
  EXPECT_FALSE(allow_tf32()) << "TF32 is off until asked for";
  set_allow_tf32(true);
  EXPECT_TRUE(allow_tf32());
  set_allow_tf32(false);
}

// ---- bad input ----

TEST(MatmulCpu, InnerDimensionMismatchNamesBothShapes) {
  const Tensor a = zeros({2, 3}, {.device = kCpu}), b = zeros({4, 5}, {.device = kCpu});
  EXPECT_THAT([&] { matmul(a, b); },
              ::testing::ThrowsMessage<ShapeError>(
                  AllOf(HasSubstr("matmul"), HasSubstr("(2, 3)"), HasSubstr("(4, 5)"))));
  EXPECT_THAT([&] { matmul(zeros({2, 2, 3}, {.device = kCpu}), zeros({3, 3, 4}, {.device = kCpu})); },
              ::testing::ThrowsMessage<ShapeError>(
                  AllOf(HasSubstr("batch"), HasSubstr("(2, 2, 3)"), HasSubstr("(3, 3, 4)"))));
}

TEST(MatmulCpu, RejectsScalarsMixedDtypesAndIntegers) {
  const Tensor f = zeros({2, 2}, {.device = kCpu});
  EXPECT_THROW(matmul(zeros({}, {.device = kCpu}), f), ShapeError);
  EXPECT_THAT([&] { matmul(f, zeros({2, 2}, {.dtype = float64, .device = kCpu})); },
              ::testing::ThrowsMessage<TypeError>(AllOf(HasSubstr("float32"), HasSubstr("float64"))));
  const Tensor i = zeros({2, 2}, {.dtype = int32, .device = kCpu});
  EXPECT_THROW(matmul(i, i), TypeError);
  EXPECT_THROW(matmul(Tensor(), f), ValueError);
}

TEST(LinearCpu, BadShapesNameTheShapes) {
  const Tensor x = zeros({3, 4}, {.device = kCpu});
  EXPECT_THAT([&] { linear(x, zeros({5, 3}, {.device = kCpu})); },
              ::testing::ThrowsMessage<ShapeError>(
                  AllOf(HasSubstr("linear"), HasSubstr("(3, 4)"), HasSubstr("(5, 3)"))));
  EXPECT_THAT([&] { linear(x, zeros({5, 4}, {.device = kCpu}), zeros({4}, {.device = kCpu})); },
              ::testing::ThrowsMessage<ShapeError>(AllOf(HasSubstr("bias"), HasSubstr("(4,)"))));
  EXPECT_THROW(linear(x, zeros({5, 4}, {.device = kCpu}), zeros({5}, {.dtype = float64, .device = kCpu})),
               TypeError);
}

}  // namespace
}  // namespace kiln
