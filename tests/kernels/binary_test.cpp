// The binary family on cpu: a table of op × dtype × shapes × layouts against float64
// references, dtype promotion, scalar forms, comparisons, where, clamp, NaN/Inf, the
// in-place forms, float64 gradient checks and bad input.
#include "kiln/kernels/binary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/autograd/gradcheck.h"
#include "kiln/kernels/reduce.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// One row of the op table: the op, its float64 reference, and input ranges that keep it
// well conditioned (pow's base positive, div's divisor away from 0).
struct BinaryCase {
  const char* name;
  double a_lo, a_hi, b_lo, b_hi;
  bool integers;  // also run on int32/int64 with integer inputs
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

const std::vector<BinaryCase>& cases() {
  static const std::vector<BinaryCase> table = {
      {"add", -3, 3, -3, 3, true,  //
       [](auto& a, auto& b) { return add(a, b); }, [](double a, double b) { return a + b; }},
      {"sub", -3, 3, -3, 3, true,  //
       [](auto& a, auto& b) { return sub(a, b); }, [](double a, double b) { return a - b; }},
      {"mul", -3, 3, -3, 3, true,  //
       [](auto& a, auto& b) { return mul(a, b); }, [](double a, double b) { return a * b; }},
      {"div", -3, 3, 0.5, 3, false,  //
       [](auto& a, auto& b) { return div(a, b); }, [](double a, double b) { return a / b; }},
      {"pow", 0.5, 2, -2, 2, false,  //
       [](auto& a, auto& b) { return pow(a, b); }, [](double a, double b) { return std::pow(a, b); }},
      {"maximum", -3, 3, -3, 3, true,  //
       [](auto& a, auto& b) { return maximum(a, b); }, [](double a, double b) { return std::max(a, b); }},
      {"minimum", -3, 3, -3, 3, true,  //
       [](auto& a, auto& b) { return minimum(a, b); }, [](double a, double b) { return std::min(a, b); }},
  };
  return table;
}

struct ShapePair {
  Shape a, b;
};
// Empty, one element, odd sizes, broadcasting both ways, a scalar, and a vector-tail size.
const ShapePair kShapes[] = {
    {{0}, {0}},       {{1}, {1}},       {{7}, {7}},   {{3, 1, 5}, {4, 5}},
    {{33, 65}, {65}}, {{5, 1}, {1, 6}}, {{}, {4, 3}}, {{2, 3, 4}, {2, 3, 4}},
    {{1027}, {1}},
};

std::vector<double> integer_values(std::int64_t n, double lo, double hi, std::uint64_t seed) {
  return test::map_values(test::uniform_values(n, lo, hi, seed), [](double v) { return std::round(v); });
}

// Broadcast reference: out[i] = ref(a[ia], b[ib]) with NumPy index rules.
std::vector<double> broadcast_ref(const Tensor& a, const Tensor& b,
                                  const std::function<double(double, double)>& ref) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  const std::vector<double> av = test::host_values(a.expand(shape)), bv = test::host_values(b.expand(shape));
  std::vector<double> out(av.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = ref(av[i], bv[i]);
  return out;
}

void check_case(const BinaryCase& c, DType dt, const ShapePair& s, test::Layout layout, std::uint64_t seed) {
  const bool ints = is_integral(dt);
  auto values = [&](const Shape& shape, double lo, double hi, std::uint64_t sd) {
    return ints ? integer_values(shape.numel(), lo, hi, sd) : test::uniform_values(shape.numel(), lo, hi, sd);
  };
  const Tensor a = test::make_input(values(s.a, c.a_lo, c.a_hi, seed), s.a, dt, kCpu, layout);
  const Tensor b =
      test::make_input(values(s.b, c.b_lo, c.b_hi, seed + 1), s.b, dt, kCpu, test::Layout::contiguous);
  const Shape out_shape = broadcast_shapes(s.a, s.b);
  test::poison_next_allocation(static_cast<std::size_t>(out_shape.numel()) * itemsize(dt), kCpu);
  const Tensor y = c.op(a, b);
  ASSERT_EQ(y.dtype(), dt);
  ASSERT_EQ(y.shape(), out_shape);
  EXPECT_TRUE(test::all_close(y, broadcast_ref(a, b, c.ref), test::tolerance_for(dt)))
      << c.name << " " << dt << " " << s.a << " with " << s.b << ", a " << test::layout_name(layout);
}

TEST(BinaryCpu, MatchesFloat64ReferenceOverTable) {
  std::uint64_t seed = 1;
  for (const BinaryCase& c : cases()) {
    for (DType dt : {float32, float16, bfloat16, float64, int32, int64}) {
      if (is_integral(dt) && !c.integers) continue;
      for (const ShapePair& s : kShapes) {
        for (test::Layout layout : test::kAllLayouts) check_case(c, dt, s, layout, seed += 2);
      }
    }
  }
}

TEST(BinaryCpu, LargeOddSizeUsesThreadedLoop) {
  const std::int64_t n = (1 << 20) + 3;
  for (const BinaryCase& c : cases()) check_case(c, float32, {{n}, {n}}, test::Layout::contiguous, 99);
}

TEST(BinaryCpu, PromotesDTypes) {
  EXPECT_EQ(promote_types(float32, float64), float64);
  EXPECT_EQ(promote_types(float16, bfloat16), float32);
  EXPECT_EQ(promote_types(int64, float16), float16);
  EXPECT_EQ(promote_types(int32, int64), int64);
  EXPECT_EQ(promote_types(uint8, int32), int32);
  EXPECT_EQ(promote_types(bool_, uint8), uint8);
  EXPECT_EQ(promote_types(bfloat16, bfloat16), bfloat16);
  const Tensor i = from_vector<std::int32_t>({1, 2, 3});
  const Tensor h = from_vector<double>({0.5, 0.5, 0.5}, {.dtype = float16, .device = kCpu});
  const Tensor y = add(i, h);
  EXPECT_EQ(y.dtype(), float16);
  EXPECT_THAT(y.to_vector<double>(), ElementsAre(1.5, 2.5, 3.5));
}

TEST(BinaryCpu, IntegerDivisionIsTrueDivisionInFloat32) {
  const Tensor a = from_vector<std::int32_t>({7, -7, 1, 0});
  const Tensor b = from_vector<std::int32_t>({2, 2, 0, 0});
  const Tensor y = div(a, b);
  EXPECT_EQ(y.dtype(), float32);
  const std::vector<double> v = y.to_vector<double>();
  EXPECT_EQ(v[0], 3.5);
  EXPECT_EQ(v[1], -3.5);
  EXPECT_EQ(v[2], kInf);
  EXPECT_TRUE(std::isnan(v[3]));
  EXPECT_EQ(div(a, 2.0).dtype(), float32);
  EXPECT_THAT(div(2.0, b.slice(0, 0, 2)).to_vector<double>(), ElementsAre(1, 1));
}

TEST(BinaryCpu, IntegerArithmeticWraps) {
  const Tensor big = from_vector<std::int32_t>({std::numeric_limits<std::int32_t>::max()});
  EXPECT_EQ(add(big, 1.0).item<std::int64_t>(), std::numeric_limits<std::int32_t>::min());
  const Tensor u = from_vector<std::uint8_t>({16, 3});
  EXPECT_THAT(mul(u, u).to_vector<int>(), ElementsAre(0, 9));
  EXPECT_THAT(pow(from_vector<std::int64_t>({3, 2, -1, 1}), 3.0).to_vector<std::int64_t>(),
              ElementsAre(27, 8, -1, 1));
  EXPECT_THAT(pow(from_vector<std::int64_t>({2, 1, -1}), -1.0).to_vector<std::int64_t>(),
              ElementsAre(0, 1, -1));
}

TEST(BinaryCpu, ScalarFormsMatchReference) {
  for (DType dt : {float32, float16, float64}) {
    const Tensor x =
        test::make_input(test::uniform_values(37, 0.5, 3, 5), {37}, dt, kCpu, test::Layout::strided);
    const std::vector<double> xv = test::host_values(x);
    const auto tol = test::tolerance_for(dt);
    auto ref = [&](auto f) { return test::map_values(xv, f); };
    EXPECT_TRUE(test::all_close(add(x, 2.5), ref([](double v) { return v + 2.5; }), tol));
    EXPECT_TRUE(test::all_close(sub(x, 2.5), ref([](double v) { return v - 2.5; }), tol));
    EXPECT_TRUE(test::all_close(sub(2.5, x), ref([](double v) { return 2.5 - v; }), tol));
    EXPECT_TRUE(test::all_close(mul(x, -1.5), ref([](double v) { return v * -1.5; }), tol));
    EXPECT_TRUE(test::all_close(div(x, 4.0), ref([](double v) { return v / 4; }), tol));
    EXPECT_TRUE(test::all_close(div(3.0, x), ref([](double v) { return 3 / v; }), tol));
    EXPECT_TRUE(test::all_close(pow(x, 1.5), ref([](double v) { return std::pow(v, 1.5); }), tol));
    EXPECT_TRUE(test::all_close(maximum(x, 1.0), ref([](double v) { return std::max(v, 1.0); }), tol));
    EXPECT_TRUE(test::all_close(minimum(x, 1.0), ref([](double v) { return std::min(v, 1.0); }), tol));
    EXPECT_TRUE(test::all_close(2.0 * x - 1.0, ref([](double v) { return 2 * v - 1; }), tol));
    EXPECT_TRUE(test::all_close(-x, ref([](double v) { return -v; }), tol));
    EXPECT_EQ(add(x, 1.0).dtype(), dt) << "the scalar takes the tensor's dtype";
  }
}

TEST(BinaryCpu, IntegerTensorWithFractionalScalarComputesInFloat32) {
  const Tensor i = from_vector<std::int32_t>({1, 2});
  EXPECT_EQ(add(i, 2.0).dtype(), int32);
  const Tensor y = add(i, 0.5);
  EXPECT_EQ(y.dtype(), float32);
  EXPECT_THAT(y.to_vector<double>(), ElementsAre(1.5, 2.5));
  EXPECT_EQ(add(from_vector<std::uint8_t>({1}), -1.0).dtype(), float32) << "-1 is not a uint8";
}

TEST(BinaryCpu, NaNAndInfPropagate) {
  const Tensor a = from_vector<double>({kNaN, 1, kInf, -kInf, 0, kNaN});
  const Tensor b = from_vector<double>({1, kNaN, -kInf, 2, 0, kNaN});
  for (DType dt : {float32, float16, bfloat16, float64}) {
    const Tensor x = a.to(dt), y = b.to(dt);
    const auto tol = test::tolerance_for(dt);
    EXPECT_TRUE(test::all_close(maximum(x, y), {kNaN, kNaN, kInf, 2, 0, kNaN}, tol)) << dt;
    EXPECT_TRUE(test::all_close(minimum(x, y), {kNaN, kNaN, -kInf, -kInf, 0, kNaN}, tol)) << dt;
    EXPECT_TRUE(test::all_close(add(x, y), {kNaN, kNaN, kNaN, -kInf, 0, kNaN}, tol)) << dt;
    EXPECT_TRUE(test::all_close(div(x, y), {kNaN, kNaN, kNaN, -kInf, kNaN, kNaN}, tol)) << dt;
    EXPECT_TRUE(test::all_close(mul(x, y), {kNaN, kNaN, -kInf, -kInf, 0, kNaN}, tol)) << dt;
    EXPECT_TRUE(test::all_close(maximum(x, 0.0), {kNaN, 1, kInf, 0, 0, kNaN}, tol)) << dt;
    EXPECT_TRUE(test::all_close(clamp(x, -1, 1), {kNaN, 1, 1, -1, 0, kNaN}, tol)) << dt;
  }
  EXPECT_EQ(div(1.0, from_vector<float>({0.0f})).item<double>(), kInf);
  EXPECT_EQ(pow(from_vector<float>({0.0f}), -1.0).item<double>(), kInf);
}

TEST(BinaryCpu, ComparisonsGiveBoolWithIeeeNaN) {
  const Tensor a = from_vector<double>({1, 2, kNaN, 3}).reshape({4, 1});
  const Tensor b = from_vector<float>({2, kNaN});
  const auto as_ints = [](const Tensor& t) {
    EXPECT_EQ(t.dtype(), bool_);
    return t.to_vector<int>();
  };
  EXPECT_THAT(as_ints(lt(a, b)), ElementsAre(1, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_THAT(as_ints(eq(a, b)), ElementsAre(0, 0, 1, 0, 0, 0, 0, 0));
  EXPECT_THAT(as_ints(ne(a, b)), ElementsAre(1, 1, 0, 1, 1, 1, 1, 1));
  EXPECT_THAT(as_ints(ge(a, b)), ElementsAre(0, 0, 1, 0, 0, 0, 1, 0));
  EXPECT_THAT(as_ints(gt(a, 1.5)), ElementsAre(0, 1, 0, 1));
  EXPECT_THAT(as_ints(le(a, 2.0)), ElementsAre(1, 1, 0, 0));
  EXPECT_THAT(as_ints(lt(from_vector<std::int32_t>({0, 1}), 0.5)), ElementsAre(1, 0))
      << "exact, not 0.5 -> 0";
  const Tensor mask = from_vector<bool>({true, false});
  EXPECT_THAT(as_ints(eq(mask, 1.0)), ElementsAre(1, 0));
  EXPECT_THAT(as_ints(ne(mask, from_vector<bool>({true, true}))), ElementsAre(0, 1));
}

TEST(BinaryCpu, WhereSelectsAndBroadcasts) {
  const Tensor cond = from_vector<bool>({true, false, true}).reshape({3, 1});
  const Tensor a = from_vector<float>({1, 2});
  const Tensor b = from_vector<double>({-1});
  const Tensor y = where(cond, a, b);
  EXPECT_EQ(y.dtype(), float64);
  EXPECT_THAT(y.to_vector<double>(), ElementsAre(1, 2, -1, -1, 1, 2));
}

TEST(BinaryCpu, ClampKeepsNaNAndRoundsIntegerBounds) {
  EXPECT_THAT(clamp(from_vector<double>({-2, 0.5, 3}), -1, 1).to_vector<double>(), ElementsAre(-1, 0.5, 1));
  EXPECT_THAT(clamp(from_vector<std::int32_t>({0, 1, 2, 3}), 0.5, 2.5).to_vector<int>(),
              ElementsAre(1, 1, 2, 2));
  EXPECT_THAT(clamp(from_vector<float>({0, 5}), 3, 1).to_vector<double>(), ElementsAre(1, 1))
      << "hi wins when lo > hi";
}

// ---- gradients ----

Tensor f64(const Shape& shape, double lo, double hi, std::uint64_t seed) {
  return from_vector<double>(test::uniform_values(shape.numel(), lo, hi, seed), shape,
                             {.dtype = float64, .device = kCpu});
}

TEST(BinaryCpu, GradcheckTensorOpsWithBroadcasting) {
  for (const BinaryCase& c : cases()) {
    for (const ShapePair& s :
         {ShapePair{{3, 1, 5}, {4, 5}}, ShapePair{{4, 5}, {}}, ShapePair{{2, 3}, {2, 3}}}) {
      const Tensor a = f64(s.a, c.a_lo, c.a_hi, 11), b = f64(s.b, c.b_lo, c.b_hi, 12);
      const auto r = gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b});
      EXPECT_TRUE(r.ok) << c.name << " " << s.a << " with " << s.b << ": " << r.message;
    }
  }
}

TEST(BinaryCpu, GradcheckNonContiguousAndMixedDTypeInputs) {
  const Tensor a = f64({5, 4}, 0.5, 2, 21).t();  // (4, 5), transposed
  const Tensor b = f64({4, 10}, 0.5, 2, 22).slice(1, 0, 10, 2);
  for (const BinaryCase& c : cases()) {
    const auto r = gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b});
    EXPECT_TRUE(r.ok) << c.name << ": " << r.message;
  }
  // A float32 operand promotes to float64; only the float64 one is checked.
  const Tensor f = f64({4, 5}, -1, 1, 23).to(float32);
  const auto r = gradcheck([&](const std::vector<Tensor>& in) { return mul(in[0], f); }, {a});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(BinaryCpu, GradcheckScalarFormsWhereAndClamp) {
  using Fn = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Fn>> fns = {
      {"add", [](const Tensor& x) { return add(x, 2.0); }},
      {"sub", [](const Tensor& x) { return sub(x, 2.0); }},
      {"rsub", [](const Tensor& x) { return sub(2.0, x); }},
      {"mul", [](const Tensor& x) { return mul(x, -3.0); }},
      {"div", [](const Tensor& x) { return div(x, 3.0); }},
      {"rdiv", [](const Tensor& x) { return div(3.0, x); }},
      {"pow", [](const Tensor& x) { return pow(x, 2.5); }},
      {"maximum", [](const Tensor& x) { return maximum(x, 1.1); }},
      {"minimum", [](const Tensor& x) { return minimum(x, 1.1); }},
      {"clamp", [](const Tensor& x) { return clamp(x, 0.9, 1.7); }},
  };
  const Tensor x = f64({3, 7}, 0.5, 2, 31);
  for (const auto& [name, fn] : fns) {
    const auto r = gradcheck([&](const std::vector<Tensor>& in) { return fn(in[0]); }, {x});
    EXPECT_TRUE(r.ok) << name << ": " << r.message;
  }
  const Tensor cond = gt(f64({3, 1}, -1, 1, 32), 0.0);
  const auto r = gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); },
                           {f64({3, 4}, -1, 1, 33), f64({4}, -1, 1, 34)});
  EXPECT_TRUE(r.ok) << "where: " << r.message;
}

Tensor leaf(const std::vector<double>& v) {
  Tensor t = from_vector<double>(v);
  t.requires_grad_();
  return t;
}

TEST(BinaryCpu, MaximumAndMinimumSplitTiesHalfHalf) {
  const Tensor a = leaf({1, 2, 3}), b = leaf({1, 5, 0});
  backward(sum(maximum(a, b) + minimum(a, b)));
  EXPECT_THAT(a.grad().to_vector<double>(), ElementsAre(1, 1, 1));
  EXPECT_THAT(b.grad().to_vector<double>(), ElementsAre(1, 1, 1));
  const Tensor c = leaf({1, 2, 3}), d = leaf({1, 5, 0});
  backward(sum(maximum(c, d)));
  EXPECT_THAT(c.grad().to_vector<double>(), ElementsAre(0.5, 0, 1));
  EXPECT_THAT(d.grad().to_vector<double>(), ElementsAre(0.5, 1, 0));
}

TEST(BinaryCpu, PowExponentGradientIsZeroWhereBaseIsNotPositive) {
  const Tensor a = leaf({-1, 0, 2}), b = leaf({2, 2, 3});
  backward(sum(pow(a, b)));
  EXPECT_THAT(b.grad().to_vector<double>(), ElementsAre(0, 0, 8 * std::log(2.0)));
  EXPECT_THAT(a.grad().to_vector<double>(), ElementsAre(-2, 0, 12));
  const Tensor z = leaf({0, 3}), e = leaf({0, 0});
  backward(sum(pow(z, e)));
  EXPECT_THAT(z.grad().to_vector<double>(), ElementsAre(0, 0)) << "0^0 has gradient 0, not NaN";
}

TEST(BinaryCpu, ClampGradientPassesInsideBoundsInclusive) {
  const Tensor x = leaf({-2, -1, 0, 1, 2});
  backward(sum(clamp(x, -1, 1)));
  EXPECT_THAT(x.grad().to_vector<double>(), ElementsAre(0, 1, 1, 1, 0));
}

TEST(BinaryCpu, GradientReachesOnlyOperandsThatRequireIt) {
  const Tensor a = leaf({1, 2});
  const Tensor b = from_vector<double>({3, 4});
  backward(sum(mul(a, b)));
  EXPECT_THAT(a.grad().to_vector<double>(), ElementsAre(3, 4));
  EXPECT_FALSE(b.grad().defined());
  NoGradGuard no_grad;
  EXPECT_FALSE(add(a, b).requires_grad());
}

// ---- in place ----

TEST(BinaryCpu, InPlaceFormsBroadcastOtherIntoSelf) {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor row = from_vector<double>({1, 2, 3});
  add_(x, row);
  EXPECT_THAT(x.to_vector<double>(), ElementsAre(2, 4, 6, 5, 7, 9));
  add_(x, row, -2.0);
  EXPECT_THAT(x.to_vector<double>(), ElementsAre(0, 0, 0, 3, 3, 3));
  add_(x, 1.0);
  mul_(x, 2.0);
  EXPECT_THAT(x.to_vector<double>(), ElementsAre(2, 2, 2, 8, 8, 8));
  sub_(x, row);
  mul_(x, row);
  div_(x, from_vector<float>({2}));
  EXPECT_THAT(x.to_vector<double>(), ElementsAre(0.5, 0, -1.5, 3.5, 6, 7.5));
  Tensor col = x.slice(1, 1, 2);  // a strided view: writes land in x
  add_(col, 10.0);
  EXPECT_THAT(x.to_vector<double>(), ElementsAre(0.5, 10, -1.5, 3.5, 16, 7.5));
}

TEST(BinaryCpu, InPlaceRaisesOnTensorThatRequiresGradWhileRecording) {
  Tensor w = leaf({1, 2});
  const Tensor g = from_vector<double>({1, 1});
  EXPECT_THAT([&] { add_(w, g, -0.1); }, ::testing::ThrowsMessage<ValueError>(HasSubstr("NoGradGuard")));
  EXPECT_THROW(mul_(w, 2.0), ValueError);
  NoGradGuard no_grad;
  add_(w, g, -0.5);
  EXPECT_THAT(w.to_vector<double>(), ElementsAre(0.5, 1.5));
}

// ---- bad input ----

TEST(BinaryCpu, BadInputRaisesNamedErrors) {
  const Tensor a = zeros({2, 3}), b = zeros({4});
  EXPECT_THAT([&] { add(a, b); }, ::testing::ThrowsMessage<ShapeError>(::testing::AllOf(
                                      HasSubstr("add"), HasSubstr("(2, 3)"), HasSubstr("(4,)"))));
  EXPECT_THROW(maximum(a, b), ShapeError);
  EXPECT_THROW(lt(a, b), ShapeError);
  const Tensor m = from_vector<bool>({true, false});
  EXPECT_THAT([&] { add(m, m); }, ::testing::ThrowsMessage<TypeError>(HasSubstr("add: bool")));
  EXPECT_THROW(where(zeros({2}), a, a), TypeError);
  EXPECT_THROW(where(m, a, a), ShapeError);
  Tensor i = from_vector<std::int32_t>({1, 2});
  EXPECT_THAT([&] { div_(i, i); }, ::testing::ThrowsMessage<TypeError>(HasSubstr("div_")));
  EXPECT_THROW(add_(i, 0.5), ValueError);
  Tensor small = zeros({3});
  EXPECT_THAT([&] { add_(small, a); }, ::testing::ThrowsMessage<ShapeError>(HasSubstr("add_")));
  EXPECT_THROW(add(a, Tensor()), ValueError);
  Tensor expanded = zeros({1, 3}).expand({4, 3});
  EXPECT_THAT([&] { mul_(expanded, 2.0); }, ::testing::ThrowsMessage<ValueError>(HasSubstr("expanded view")));
}

}  // namespace
}  // namespace kiln
