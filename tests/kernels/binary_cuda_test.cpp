// The binary family on cuda against cpu (under SIM in CI): the op table over dtypes,
// shapes and layouts (the vectorised path, its scalar tail, misaligned views that take
// the scalar path, strided and broadcast operands), poisoned outputs, gradients, scalar
// forms, comparisons, where, clamp, the in-place forms, and mixed-device errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln_test.h"
#include "op_test_util.h"

namespace kiln {
namespace {

using test::kCpu;
using ::testing::AllOf;
using ::testing::HasSubstr;

const Device kGpu = Device::cuda(0);
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// pow's base kept positive (|a| + 0.5) without pulling in the unary family.
Tensor abs_base(const Tensor& a) { return add(maximum(a, mul(a, -1.0)), 0.5); }

using BinaryFnT = std::function<Tensor(const Tensor&, const Tensor&)>;
struct NamedOp {
  const char* name;
  BinaryFnT op;
  double b_lo;  // lower bound of the second operand (positive for div and pow)
  bool integers;
};

const std::vector<NamedOp>& ops() {
  static const std::vector<NamedOp> table = {
      {"add", [](auto& a, auto& b) { return add(a, b); }, -3, true},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }, -3, true},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }, -3, true},
      {"div", [](auto& a, auto& b) { return div(a, b); }, 0.5, true},
      {"pow", [](auto& a, auto& b) { return pow(abs_base(a), b); }, -2, false},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }, -3, true},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }, -3, true},
      {"lt", [](auto& a, auto& b) { return lt(a, b); }, -3, true},
      {"eq", [](auto& a, auto& b) { return eq(a, b); }, -3, true},
  };
  return table;
}

struct ShapePair {
  Shape a, b;
};
// Every tail length of a 4- and 8-wide vector path, a size past one block, broadcasting.
const ShapePair kShapes[] = {
    {{0}, {0}},       {{1}, {1}},          {{5}, {5}},       {{8}, {8}},         {{11}, {11}},
    {{4099}, {4099}}, {{3, 1, 5}, {4, 5}}, {{33, 65}, {65}}, {{17, 9}, {17, 9}}, {{}, {6, 3}},
};

Tensor values_on(Device device, const Shape& shape, DType dt, double lo, double hi, std::uint64_t seed,
                 test::Layout layout) {
  std::vector<double> v = test::uniform_values(shape.numel(), lo, hi, seed);
  if (is_integral(dt)) v = test::map_values(v, [](double x) { return std::round(x); });
  return test::make_input(v, shape, dt, device, layout);
}

TEST(BinaryCuda, MatchesCpuOverTable) {
  KILN_REQUIRE_CUDA();
  std::uint64_t seed = 7;
  for (const NamedOp& o : ops()) {
    for (DType dt : {float32, float16, bfloat16, float64, int32}) {
      if (is_integral(dt) && !o.integers) continue;
      for (const ShapePair& s : kShapes) {
        for (test::Layout layout : test::kAllLayouts) {
          seed += 2;
          const Tensor a = values_on(kGpu, s.a, dt, -3, 3, seed, layout);
          const Tensor b = values_on(kGpu, s.b, dt, o.b_lo, 3, seed + 1, test::Layout::offset);
          const Tensor expected = o.op(a.to(kCpu), b.to(kCpu));
          test::poison_next_allocation(expected.nbytes(), kGpu);
          const Tensor y = o.op(a, b);
          ASSERT_EQ(y.device(), kGpu);
          ASSERT_EQ(y.dtype(), expected.dtype());
          EXPECT_TRUE(test::all_close(y, expected, test::tolerance_for(y.dtype())))
              << o.name << " " << dt << " " << s.a << " with " << s.b << ", a " << test::layout_name(layout);
        }
      }
    }
  }
}

TEST(BinaryCuda, NaNAndInfMatchCpu) {
  KILN_REQUIRE_CUDA();
  const Tensor a = from_vector<double>({kNaN, 1, kInf, -kInf, 0, kNaN, 2, -0.0, 3});
  const Tensor b = from_vector<double>({1, kNaN, -kInf, 2, 0, kNaN, kInf, 0.0, -kInf});
  for (DType dt : {float32, float16, bfloat16, float64}) {
    const Tensor ca = a.to(dt), cb = b.to(dt), ga = ca.to(kGpu), gb = cb.to(kGpu);
    for (const NamedOp& o : ops()) {
      if (std::string(o.name) == "pow") continue;
      EXPECT_TRUE(test::all_close(o.op(ga, gb), o.op(ca, cb), {0, 0})) << o.name << " " << dt;
    }
    EXPECT_TRUE(test::all_close(pow(ga, gb), pow(ca, cb), test::tolerance_for(dt))) << "pow " << dt;
    EXPECT_TRUE(test::all_close(clamp(ga, -1, 1), clamp(ca, -1, 1), {0, 0})) << dt;
  }
}

TEST(BinaryCuda, ScalarFormsWhereAndClampMatchCpu) {
  KILN_REQUIRE_CUDA();
  using Fn = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Fn>> fns = {
      {"add", [](const Tensor& x) { return add(x, 2.5); }},
      {"rsub", [](const Tensor& x) { return sub(2.0, x); }},
      {"mul", [](const Tensor& x) { return mul(x, -3.0); }},
      {"rdiv", [](const Tensor& x) { return div(3.0, x); }},
      {"div", [](const Tensor& x) { return div(x, 3.0); }},
      {"pow", [](const Tensor& x) { return pow(x, 2.0); }},
      {"maximum", [](const Tensor& x) { return maximum(x, 0.0); }},
      {"ge", [](const Tensor& x) { return ge(x, 0.5); }},
      {"clamp", [](const Tensor& x) { return clamp(x, -1, 1.5); }},
      {"where", [](const Tensor& x) { return where(gt(x, 0.0), x, mul(x, 0.1)); }},
  };
  for (DType dt : {float32, bfloat16, int32}) {
    for (test::Layout layout : {test::Layout::contiguous, test::Layout::offset, test::Layout::transposed}) {
      const Tensor x = values_on(kGpu, {13, 7}, dt, -3, 3, 40, layout);
      for (const auto& [name, fn] : fns) {
        const Tensor expected = fn(x.to(kCpu));
        test::poison_next_allocation(expected.nbytes(), kGpu);
        EXPECT_TRUE(test::all_close(fn(x), expected, test::tolerance_for(expected.dtype())))
            << name << " " << dt << " " << test::layout_name(layout);
      }
    }
  }
}

// Gradients of every differentiable op with broadcasting, cuda against cpu.
TEST(BinaryCuda, BackwardMatchesCpu) {
  KILN_REQUIRE_CUDA();
  const std::vector<std::pair<const char*, BinaryFnT>> fns = {
      {"add", [](auto& a, auto& b) { return add(a, b); }},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }},
      {"div", [](auto& a, auto& b) { return div(a, b); }},
      {"pow", [](auto& a, auto& b) { return pow(a, b); }},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }},
      {"where", [](auto& a, auto& b) { return where(gt(a, 1.2), a, b); }},
      {"clamp", [](auto& a, auto& b) { return mul(clamp(a, 0.8, 1.6), b); }},
  };
  for (DType dt : {float32, float64}) {
    for (const auto& [name, fn] : fns) {
      const Tensor a = values_on(kCpu, {3, 1, 5}, dt, 0.5, 2, 50, test::Layout::contiguous);
      const Tensor b = values_on(kCpu, {4, 5}, dt, 0.5, 2, 51, test::Layout::contiguous);
      const Tensor g = values_on(kCpu, {3, 4, 5}, dt, -1, 1, 52, test::Layout::contiguous);
      std::vector<Tensor> grads[2];
      for (Device d : {kCpu, kGpu}) {
        Tensor x = a.to(d).clone(), y = b.to(d).clone();
        x.requires_grad_();
        y.requires_grad_();
        backward(fn(x, y), g.to(d));
        grads[d.is_cuda()] = {x.grad(), y.grad()};
      }
      for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(grads[1][i].defined()) << name << " input " << i;
        EXPECT_EQ(grads[1][i].device(), kGpu);
        EXPECT_TRUE(test::all_close(grads[1][i], grads[0][i], test::tolerance_for(dt)))
            << name << " input " << i;
      }
    }
  }
}

TEST(BinaryCuda, InPlaceFormsMatchCpu) {
  KILN_REQUIRE_CUDA();
  for (DType dt : {float32, float16}) {
    const Tensor start = values_on(kCpu, {9, 6}, dt, 0.5, 2, 60, test::Layout::contiguous);
    const Tensor other = values_on(kCpu, {6}, float64, 0.5, 2, 61, test::Layout::contiguous);
    Tensor results[2];
    for (Device d : {kCpu, kGpu}) {
      Tensor x = start.to(d).clone();
      const Tensor o = other.to(d);
      add_(x, o, -0.5);
      sub_(x, o);
      mul_(x, o);
      div_(x, o);
      add_(x, 1.0);
      mul_(x, 3.0);
      Tensor view = x.slice(1, 1, 6, 2);  // strided writes
      add_(view, o.slice(0, 0, 3));
      results[d.is_cuda()] = x;
    }
    EXPECT_TRUE(test::all_close(results[1], results[0], test::tolerance_for(dt))) << dt;
  }
}

TEST(BinaryCuda, MixedDevicesRaiseDeviceErrorNamingBoth) {
  KILN_REQUIRE_CUDA();
  const Tensor c = zeros({2, 3}, {.device = kCpu});
  const Tensor g = zeros({3}, {.device = kGpu});
  EXPECT_THAT([&] { add(c, g); }, ::testing::ThrowsMessage<DeviceError>(
                                      AllOf(HasSubstr("add"), HasSubstr("cpu"), HasSubstr("cuda:0"),
                                            HasSubstr("(2, 3)"), HasSubstr("(3,)"))));
  EXPECT_THROW(lt(g, c), DeviceError);
  EXPECT_THROW(where(gt(c, 0.0), c, g), DeviceError);
  Tensor self = zeros({2, 3}, {.device = kGpu});
  EXPECT_THROW(add_(self, c), DeviceError);
}

}  // namespace
}  // namespace kiln
