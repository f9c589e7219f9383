// The reduction test table shared by reduce_test.cpp (cpu against float64 references) and
// reduce_cuda_test.cpp (cuda against cpu): the cases (shape, axes, keepdims), the ops with
// their dtype rules and tolerances, float64 references, and inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "kiln/kernels/reduce.h"
#include "op_test_util.h"

namespace kiln::test {

struct ReduceCase {
  Shape shape;
  Axes axes;  // empty: all
  bool keepdims = false;
};

// Shapes at the kernels' edges: 0-size, 1, odd, rows past a warp and past a block (1100),
// long columns, middle and split axes, duplicate and negative axes.
inline std::vector<ReduceCase> reduce_cases() {
  return {
      {{}, {}, false},         {{1}, {}, false},          {{7}, {0}, false},         {{0}, {}, false},
      {{3, 0}, {1}, false},    {{0, 3}, {1}, true},       {{5, 33}, {1}, false},     {{5, 33}, {0}, true},
      {{5, 33}, {}, true},     {{5, 33}, {-1, 1}, false}, {{4, 6, 5}, {1}, false},   {{4, 6, 5}, {0, 2}, false},
      {{4, 6, 5}, {2, 0}, true}, {{2, 3, 4, 5}, {1, 2}, false}, {{2, 3, 4, 5}, {0, 3}, false},
      {{3, 1100}, {1}, false}, {{1300, 3}, {0}, false},   {{2, 1, 3}, {1}, false},
      {{3, 4, 5}, {0}, true},  // transposed input: outputs stored (5, 4), permuted back
  };
}

enum class RefOp { sum, mean, max, min, argmax, argmin, var, std, norm };

struct ReduceOpSpec {
  const char* name;
  RefOp op;
  std::function<Tensor(const Tensor&, const Axes&, bool)> run;
  bool differentiable = true;
  int ddof = 0;
  double p = 2.0;

  bool is_arg() const { return op == RefOp::argmax || op == RefOp::argmin; }
  bool needs_identity() const { return is_arg() || op == RefOp::max || op == RefOp::min; }

  // arg ops take exactly one axis; max/min/arg skip cases with an empty reduced group.
  bool applies(const ReduceCase& c) const {
    if (is_arg() && c.axes.size() != 1) return false;
    if (!needs_identity()) return true;
    std::int64_t k = 1, out = 1;
    for (int d = 0; d < c.shape.ndim(); ++d) {
      const bool reduced = c.axes.empty() || std::find_if(c.axes.begin(), c.axes.end(), [&](std::int64_t a) {
                                               return (a < 0 ? a + c.shape.ndim() : a) == d;
                                             }) != c.axes.end();
      (reduced ? k : out) *= c.shape[d];
    }
    return k > 0 || out == 0;
  }

  DType out_dtype(DType in) const {
    if (is_arg()) return int64;
    if (is_floating(in)) return in;
    if (op == RefOp::sum) return int64;
    if (op == RefOp::max || op == RefOp::min) return in;
    return float32;
  }

  // The output dtype's elementwise tolerance, widened for accumulation over K elements.
  Tolerance tolerance(DType in, std::int64_t K) const {
    const DType out = out_dtype(in);
    if (!is_floating(out)) return {0, 0};
    Tolerance t = tolerance_for(out);
    const double k = static_cast<double>(std::max<std::int64_t>(K, 1));
    return {t.atol * 2 * k, t.rtol * 4};
  }
};

inline std::vector<ReduceOpSpec> reduce_ops() {
  return {
      {"sum", RefOp::sum, [](const Tensor& x, const Axes& a, bool k) { return sum(x, a, k); }},
      {"mean", RefOp::mean, [](const Tensor& x, const Axes& a, bool k) { return mean(x, a, k); }},
      {"max", RefOp::max, [](const Tensor& x, const Axes& a, bool k) { return max(x, a, k); }},
      {"min", RefOp::min, [](const Tensor& x, const Axes& a, bool k) { return min(x, a, k); }},
      {"argmax", RefOp::argmax, [](const Tensor& x, const Axes& a, bool k) { return argmax(x, a[0], k); }, false},
      {"argmin", RefOp::argmin, [](const Tensor& x, const Axes& a, bool k) { return argmin(x, a[0], k); }, false},
      {"var", RefOp::var, [](const Tensor& x, const Axes& a, bool k) { return var(x, a, k); }},
      {"var(ddof=1)", RefOp::var, [](const Tensor& x, const Axes& a, bool k) { return var(x, a, k, 1); }, true, 1},
      {"std", RefOp::std, [](const Tensor& x, const Axes& a, bool k) { return std(x, a, k); }},
      {"std(ddof=1)", RefOp::std, [](const Tensor& x, const Axes& a, bool k) { return std(x, a, k, 1); }, true, 1},
      {"norm(1)", RefOp::norm, [](const Tensor& x, const Axes& a, bool k) { return norm(x, 1.0, a, k); }, true, 0, 1.0},
      {"norm(2)", RefOp::norm, [](const Tensor& x, const Axes& a, bool k) { return norm(x, 2.0, a, k); }, true, 0, 2.0},
      {"norm(3)", RefOp::norm, [](const Tensor& x, const Axes& a, bool k) { return norm(x, 3.0, a, k); }, true, 0, 3.0},
      {"norm(inf)", RefOp::norm, [](const Tensor& x, const Axes& a, bool k) { return norm(x, INFINITY, a, k); },
       true, 0, INFINITY},
  };
}

inline std::string axes_str(const Axes& axes) {
  std::string s = "[";
  for (std::size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
  return s + "]";
}

inline std::vector<bool> reduced_mask(const Shape& shape, const Axes& axes) {
  std::vector<bool> mask(static_cast<std::size_t>(shape.ndim()), axes.empty());
  for (const std::int64_t a : axes) mask[static_cast<std::size_t>(a < 0 ? a + shape.ndim() : a)] = true;
  return mask;
}

inline Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdims) {
  const std::vector<bool> mask = reduced_mask(shape, axes);
  Shape out;
  for (int d = 0; d < shape.ndim(); ++d) {
    if (!mask[static_cast<std::size_t>(d)]) out.push_back(shape[d]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

// The values of each output's group, in row-major order of the reduced axes.
inline std::vector<std::vector<double>> reduce_groups(const Tensor& x, const Axes& axes) {
  const std::vector<double> v = host_values(x);
  const Shape& shape = x.shape();
  const std::vector<bool> mask = reduced_mask(shape, axes);
  std::int64_t outputs = 1;
  for (int d = 0; d < shape.ndim(); ++d) if (!mask[static_cast<std::size_t>(d)]) outputs *= shape[d];
  std::vector<std::vector<double>> groups(static_cast<std::size_t>(outputs));
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::int64_t rest = static_cast<std::int64_t>(i), out = 0, scale = 1;
    for (int d = shape.ndim() - 1; d >= 0; --d) {
      const std::int64_t idx = rest % shape[d];
      rest /= shape[d];
      if (!mask[static_cast<std::size_t>(d)]) {
        out += idx * scale;
        scale *= shape[d];
      }
    }
    groups[static_cast<std::size_t>(out)].push_back(v[i]);
  }
  return groups;
}

inline double reference_of(const ReduceOpSpec& op, const std::vector<double>& g) {
  const double n = static_cast<double>(g.size());
  const auto has_nan = std::any_of(g.begin(), g.end(), [](double e) { return std::isnan(e); });
  double s = 0;
  switch (op.op) {
    case RefOp::sum:
    case RefOp::mean:
      for (const double e : g) s += e;
      return op.op == RefOp::sum ? s : s / n;
    case RefOp::max:
      return has_nan ? NAN : *std::max_element(g.begin(), g.end());
    case RefOp::min:
      return has_nan ? NAN : *std::min_element(g.begin(), g.end());
    case RefOp::argmax:
    case RefOp::argmin: {
      std::size_t best = 0;
      for (std::size_t i = 0; i < g.size(); ++i) {
        if (std::isnan(g[i])) return static_cast<double>(i);
        if (op.op == RefOp::argmax ? g[i] > g[best] : g[i] < g[best]) best = i;
      }
      return static_cast<double>(best);
    }
    case RefOp::var:
    case RefOp::std: {
      for (const double e : g) s += e;
      const double m = s / n;
      double q = 0;
      for (const double e : g) q += (e - m) * (e - m);
      const double v = q / std::max(n - op.ddof, 0.0);
      return op.op == RefOp::var ? v : std::sqrt(v);
    }
    case RefOp::norm:
      if (std::isinf(op.p)) {
        double m = 0;
        for (const double e : g) m = std::isnan(e) || std::isnan(m) ? NAN : std::max(m, std::fabs(e));
        return m;
      }
      for (const double e : g) s += std::pow(std::fabs(e), op.p);
      return std::pow(s, 1.0 / op.p);
  }
  return NAN;
}

inline std::vector<double> reference(const ReduceOpSpec& op, const Tensor& x, const Axes& axes) {
  std::vector<double> out;
  for (const auto& g : reduce_groups(x, axes)) out.push_back(reference_of(op, g));
  return out;
}

// The number of elements reduced into each output.
inline std::int64_t group_size(const Shape& shape, const Axes& axes) {
  const std::vector<bool> mask = reduced_mask(shape, axes);
  std::int64_t k = 1;
  for (int d = 0; d < shape.ndim(); ++d) if (mask[static_cast<std::size_t>(d)]) k *= shape[d];
  return k;
}

// Values in [-1, 2) (integers in [-50, 50] for integer dtypes), laid out as `layout`.
inline Tensor reduce_input(const Shape& shape, DType dt, Device device, Layout layout, std::uint64_t seed) {
  std::vector<double> v = is_floating(dt) ? uniform_values(shape.numel(), -1.0, 2.0, seed)
                                          : uniform_values(shape.numel(), -50.0, 50.0, seed);
  if (!is_floating(dt)) for (double& e : v) e = std::round(e);
  return make_input(v, shape, dt, device, layout);
}

// float64 values far apart (gaps of 0.37, both signs, no zero) in a shuffled order, so
// central differences never cross a tie of max/min or a kink of |x|.
inline Tensor distinct_input(const Shape& shape, std::uint64_t seed, Device device = kCpu) {
  const std::int64_t n = shape.numel();
  const std::vector<double> u = uniform_values(n, 0.0, 1.0, seed);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return u[static_cast<std::size_t>(a)] < u[static_cast<std::size_t>(b)];
  });
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double mag = 0.37 * static_cast<double>(i + 1);
    v[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = i % 3 == 1 ? -mag : mag;
  }
  return from_vector<double>(v, shape, {.dtype = float64, .device = device});
}

}  // namespace kiln::test
