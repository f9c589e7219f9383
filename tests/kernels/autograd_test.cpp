// The autograd engine's semantics (kernels/autograd): backward fills leaf gradients,
// accumulates over several uses and several backward calls, zero_grad, retain_graph,
// NoGradGuard, detach, the requires_grad_ and in-place guards, and gradients through
// every core view and copy (recorded through core's detail::view_hook).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/unary.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Tensor leaf(const std::vector<double>& v, const Shape& shape) {
  Tensor t = from_vector<double>(v, shape, {.dtype = float64, .device = kCpu});
  t.requires_grad_();
  return t;
}

Tensor ones_as(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }

std::vector<double> grad_of(const Tensor& t) {
  EXPECT_TRUE(t.grad().defined());
  return t.grad().defined() ? t.grad().to_vector<double>() : std::vector<double>{};
}

// ---- the engine ----

TEST(Autograd, BackwardOfProductFillsLeafGrad) {
  const Tensor x = leaf({1, 2, 3}, {3});
  const Tensor y = x * x;  // both operands are x: two edges into one accumulator
  backward(y, ones_as(y));
  EXPECT_THAT(grad_of(x), ElementsAre(2, 4, 6));
  EXPECT_FALSE(y.grad().defined()) << "non-leaf gradients are not kept";
}

TEST(Autograd, ScalarRootNeedsNoGradArgument) {
  const Tensor x = leaf({1, -2}, {2});
  backward(sum(square(x)));
  EXPECT_THAT(grad_of(x), ElementsAre(2, -4));
}

TEST(Autograd, AccumulatesWhereTensorFeedsSeveralOps) {
  const Tensor x = leaf({0.5, -1.0}, {2});
  const Tensor y = exp(x) + square(x) + relu(x);
  backward(y, ones_as(y));
  const std::vector<double> g = grad_of(x);
  EXPECT_NEAR(g[0], std::exp(0.5) + 1.0 + 1.0, 1e-12);
  EXPECT_NEAR(g[1], std::exp(-1.0) - 2.0 + 0.0, 1e-12);
}

TEST(Autograd, DiamondGraphRunsEachNodeOnce) {
  // a feeds b and c, which meet again in y: a's node must wait for both.
  const auto f = [](const std::vector<Tensor>& in) {
    const Tensor a = exp(in[0]);
    return square(a) * tanh(a) + sigmoid(a);
  };
  const auto r = gradcheck(f, {leaf({-0.5, 0.25, 0.75}, {3})});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Autograd, AccumulatesAcrossBackwardCalls) {
  const Tensor x = leaf({1, 2}, {2});
  for (int i = 0; i < 2; ++i) {
    const Tensor y = square(x);
    backward(y, ones_as(y));
  }
  EXPECT_THAT(grad_of(x), ElementsAre(4, 8));
}

TEST(Autograd, ZeroGradClearsLeafGrads) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor w = leaf({3}, {1});
  Tensor y = square(x) * w;
  backward(y, ones_as(y));
  zero_grad({x, w});
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  y = square(x);
  backward(y, ones_as(y));
  EXPECT_THAT(grad_of(x), ElementsAre(2, 4)) << "starts from zero again";
}

TEST(Autograd, SecondBackwardWithoutRetainGraphRaises) {
  const Tensor x = leaf({0.5}, {1});
  const Tensor y = exp(x);
  backward(y);
  try {
    backward(y);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.message(), HasSubstr("retain_graph"));
  }
}

TEST(Autograd, RetainGraphAllowsSecondBackward) {
  const Tensor x = leaf({0.5}, {1});
  const Tensor y = exp(x);
  backward(y, Tensor(), {.retain_graph = true});
  backward(y);
  EXPECT_NEAR(grad_of(x)[0], 2 * std::exp(0.5), 1e-12);
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  const Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(GradMode::enabled());
    const Tensor y = exp(x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    const Tensor v = x.t().reshape({4});
    EXPECT_FALSE(v.requires_grad());
    EXPECT_EQ(v.grad_fn(), nullptr);
  }
  EXPECT_TRUE(GradMode::enabled());
  EXPECT_NE(exp(x).grad_fn(), nullptr) << "recording resumes after the guard";
}

TEST(Autograd, NestedNoGradGuardsRestoreOuterMode) {
  {
    NoGradGuard outer;
    { NoGradGuard inner; }
    EXPECT_FALSE(GradMode::enabled());
  }
  EXPECT_TRUE(GradMode::enabled());
}

TEST(Autograd, DetachSharesStorageWithoutHistory) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor y = exp(x);
  const Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_TRUE(d.shares_storage(y));
  EXPECT_FALSE(relu(d).requires_grad());
  // A graph through a detached value sends nothing back past it.
  const Tensor z = d * x;
  backward(z, ones_as(z));
  EXPECT_NEAR(grad_of(x)[0], std::exp(1.0), 1e-12) << "only the direct use of x counts";
}

TEST(Autograd, InputsNotRequiringGradGetNoGrad) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor c = from_vector<double>({5, 7}, {2}, {.dtype = float64, .device = kCpu});
  const Tensor y = x * c;
  backward(y, ones_as(y));
  EXPECT_THAT(grad_of(x), ElementsAre(5, 7));
  EXPECT_FALSE(c.grad().defined());
}

TEST(Autograd, RequiresGradOnNonLeafRaises) {
  const Tensor x = leaf({1}, {1});
  Tensor y = exp(x);
  EXPECT_THROW(y.requires_grad_(), ValueError);
}

TEST(Autograd, RequiresGradOnIntegerTensorRaisesTypeError) {
  Tensor i = from_vector<std::int32_t>({1, 2}, {.device = kCpu});
  EXPECT_THROW(i.requires_grad_(), TypeError);
}

TEST(Autograd, InPlaceWriteIntoRequiresGradLeafRaisesWhileRecording) {
  Tensor x = leaf({1, 2}, {2});
  const Tensor src = zeros({2}, {.dtype = float64, .device = kCpu});
  EXPECT_THROW(x.copy_(src), ValueError);
  EXPECT_THROW(x.fill_(3), ValueError);
  NoGradGuard no_grad;  // as an optimizer step does
  x.fill_(3);
  EXPECT_THAT(x.to_vector<double>(), ElementsAre(3, 3));
}

TEST(Autograd, BackwardOfNonScalarWithoutGradRaises) {
  const Tensor x = leaf({1, 2}, {2});
  EXPECT_THROW(backward(exp(x)), ValueError);
}

TEST(Autograd, BackwardRejectsGradOfWrongShape) {
  const Tensor x = leaf({1, 2}, {2});
  EXPECT_THROW(backward(exp(x), ones({3}, {.dtype = float64, .device = kCpu})), ShapeError);
}

TEST(Autograd, BackwardOfTensorWithoutHistoryRaises) {
  const Tensor c = ones({1}, {.dtype = float64, .device = kCpu});
  EXPECT_THROW(backward(exp(c)), ValueError);
}

TEST(Autograd, IntegerOutputsAreNotRecorded) {
  const Tensor i = from_vector<std::int64_t>({-1, 2}, {.device = kCpu});
  EXPECT_FALSE(relu(i).requires_grad());
}

TEST(Autograd, GradFnNames) {
  const Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(relu(x).grad_fn()->name(), "ReluBackward");
  EXPECT_EQ(exp(x).grad_fn()->name(), "ExpBackward");
  EXPECT_EQ(x.reshape({4}).grad_fn()->name(), "ReshapeBackward");
  EXPECT_EQ(x.t().grad_fn()->name(), "PermuteBackward");
  EXPECT_EQ(x.slice(0, 0, 1).grad_fn()->name(), "SliceBackward");
  EXPECT_EQ(x.select(1, 0).grad_fn()->name(), "SelectBackward");
  EXPECT_EQ(x.expand({3, 2, 2}).grad_fn()->name(), "ExpandBackward");
  EXPECT_EQ(x.clone().grad_fn()->name(), "CopyBackward");
  EXPECT_EQ(x.t().contiguous().grad_fn()->name(), "CopyBackward");
  EXPECT_EQ(x.to(float32).grad_fn()->name(), "CopyBackward");
  EXPECT_TRUE(x.is_leaf());
  EXPECT_EQ(x.grad_fn(), nullptr);
}

TEST(Autograd, GradientAsFloat32FlowsBackAsFloat64) {
  const Tensor x = leaf({1, 2}, {2});
  const Tensor y = square(x.to(float32));  // (2,) float32
  backward(y, ones_as(y));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), float64);
  EXPECT_THAT(x.grad().to_vector<double>(), ElementsAre(2, 4));
}

TEST(Autograd, LeafGradHasLeafShapeAndDtype) {
  const Tensor x = leaf(test::uniform_values(6, -1, 1, 5), {2, 3});
  const Tensor y = tanh(x.t());
  backward(y, ones_as(y));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().shape(), x.shape());
  EXPECT_EQ(x.grad().dtype(), float64);
}

// ---- gradients through every view and copy ----

struct ViewCase {
  const char* name;
  Shape input_shape;
  Tensor (*view)(const Tensor&);
};

const ViewCase kViewCases[] = {
    {"reshape",
     {2, 3, 4},
     [](const Tensor& x) {
       return x.reshape({6, 4});
     }},
    {"reshape_copying", {3, 4}, [](const Tensor& x) { return x.t().reshape({12}); }},
    {"view",
     {2, 3, 4},
     [](const Tensor& x) {
       return x.view({4, -1});
     }},
    {"flatten", {2, 3, 4}, [](const Tensor& x) { return x.flatten(); }},
    {"permute",
     {2, 3, 4},
     [](const Tensor& x) {
       return x.permute({2, 0, 1});
     }},
    {"transpose", {2, 3, 4}, [](const Tensor& x) { return x.transpose(0, 2); }},
    {"t", {3, 5}, [](const Tensor& x) { return x.t(); }},
    {"slice_step", {7, 3}, [](const Tensor& x) { return x.slice(0, 1, 7, 3); }},
    {"slice_negative", {4, 6}, [](const Tensor& x) { return x.slice(1, -4, -1); }},
    {"select", {3, 4}, [](const Tensor& x) { return x.select(1, 2); }},
    {"select_negative", {3, 4}, [](const Tensor& x) { return x[-1]; }},
    {"expand",
     {3, 1},
     [](const Tensor& x) {
       return x.expand({2, 3, 4});
     }},
    {"squeeze", {1, 3, 1, 2}, [](const Tensor& x) { return x.squeeze(); }},
    {"squeeze_axis", {3, 1, 2}, [](const Tensor& x) { return x.squeeze(1); }},
    {"unsqueeze", {3, 2}, [](const Tensor& x) { return x.unsqueeze(1); }},
    {"contiguous", {3, 4}, [](const Tensor& x) { return x.t().contiguous(); }},
    {"clone", {3, 4}, [](const Tensor& x) { return x.clone(); }},
    {"chain",
     {4, 5, 2},
     [](const Tensor& x) {
       return x.permute({1, 0, 2}).slice(0, 0, 5, 2).select(2, 1).t();
     }},
};

class ViewGradient : public ::testing::TestWithParam<ViewCase> {};

TEST_P(ViewGradient, MatchesCentralDifferences) {
  const ViewCase& c = GetParam();
  const std::vector<double> v = test::uniform_values(c.input_shape.numel(), -1.5, 1.5, 11);
  const Tensor x = from_vector<double>(v, c.input_shape, {.dtype = float64, .device = kCpu});
  const auto view = c.view;
  // square after the view: a gradient routed to the wrong element shows.
  const auto r = gradcheck([view](const std::vector<Tensor>& in) { return square(view(in[0])); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
}

INSTANTIATE_TEST_SUITE_P(Autograd, ViewGradient, ::testing::ValuesIn(kViewCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Autograd, ToDtypeRoundTripCarriesGradient) {
  // A float32 detour loses precision, so check the values directly rather than by
  // central differences.
  const Tensor x = leaf({0.5, 1.5, -2.0}, {3});
  const Tensor y = x.to(float32).to(float64);
  EXPECT_EQ(y.grad_fn()->name(), "CopyBackward");
  const Tensor g = from_vector<double>({1, 10, 100}, {3}, {.dtype = float64, .device = kCpu});
  backward(y, g);
  EXPECT_THAT(grad_of(x), ElementsAre(1, 10, 100));
}

TEST(Autograd, SameDtypeToIsIdentityWithoutNode) {
  const Tensor x = leaf({1}, {1});
  EXPECT_TRUE(x.to(float64).is_same(x));
  EXPECT_TRUE(x.contiguous().is_same(x));
}

TEST(Autograd, ExpandGradientSumsOverBroadcastAxes) {
  const Tensor x = leaf({1, 2, 3}, {3, 1});
  const Tensor y = x.expand({2, 3, 4});
  backward(y, ones_as(y));
  EXPECT_THAT(grad_of(x), ElementsAre(8, 8, 8));
}

TEST(Autograd, SliceGradientIsZeroOutsideSlice) {
  const Tensor x = leaf({1, 2, 3, 4, 5, 6, 7}, {7});
  const Tensor y = x.slice(0, 1, 7, 3);  // elements 1 and 4
  backward(y, from_vector<double>({10, 20}, {2}, {.dtype = float64, .device = kCpu}));
  EXPECT_THAT(grad_of(x), ElementsAre(0, 10, 0, 0, 20, 0, 0));
}

}  // namespace
}  // namespace kiln
