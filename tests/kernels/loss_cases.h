// The loss table shared by loss_test.cpp (cpu against float64 references, gradient checks)
// and loss_cuda_test.cpp (cuda against cpu): each case names a loss with its options, the
// kind of targets and predictions it takes, and its per-sample float64 reference written
// from Keras' definitions (keras.losses.*, backend epsilon 1e-7), independently of the
// kernels' formulas.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kernels/loss.h"
#include "op_test_util.h"

namespace kiln::test {

enum class Targets { labels, distribution, unit, regression };
enum class Predictions { logits, distribution, unit, regression };

struct LossCase {
  std::string name;
  Targets targets;
  Predictions predictions;
  // The op with its options; `axis` is the reduced axis (the class axis).
  std::function<Tensor(const Tensor& y_true, const Tensor& y_pred, Reduction, std::int64_t axis)> op;
  // One sample's loss from its row of targets (one-hot for labels) and predictions.
  std::function<double(const std::vector<double>& t, const std::vector<double>& p)> reference;
};

// gtest prints a case by its name.
inline void PrintTo(const LossCase& c, std::ostream* os) { *os << c.name; }

inline constexpr double kKerasEpsilon = 1e-7;

inline double clip(double x, double lo, double hi) { return std::min(std::max(x, lo), hi); }

// -sum t log softmax(x), targets smoothed to t (1 - ls) + ls / C.
inline double ce_logits_ref(const std::vector<double>& t, const std::vector<double>& x, double ls) {
  double m = -INFINITY;
  for (double v : x) m = std::max(m, v);
  double s = 0;
  for (double v : x) s += std::exp(v - m);
  const double lse = m + std::log(s);
  double loss = 0;
  for (std::size_t c = 0; c < x.size(); ++c) {
    const double tc = t[c] * (1 - ls) + ls / static_cast<double>(x.size());
    if (tc != 0) loss -= tc * (x[c] - lse);
  }
  return loss;
}

// Keras: p / sum(p), clipped to [eps, 1 - eps], then -sum t log.
inline double ce_probs_ref(const std::vector<double>& t, const std::vector<double>& p, double ls) {
  double s = 0;
  for (double v : p) s += v;
  double loss = 0;
  for (std::size_t c = 0; c < p.size(); ++c) {
    const double tc = t[c] * (1 - ls) + ls / static_cast<double>(p.size());
    loss -= tc * std::log(clip(p[c] / s, kKerasEpsilon, 1 - kKerasEpsilon));
  }
  return loss;
}

// Mean over the axis of f(t, p).
template <class F>
double mean_ref(const std::vector<double>& t, const std::vector<double>& p, F f) {
  double sum = 0;
  for (std::size_t c = 0; c < p.size(); ++c) sum += f(t[c], p[c]);
  return sum / static_cast<double>(p.size());
}

inline double bce_ref(double t, double q, double ls) {
  const double ts = t * (1 - ls) + 0.5 * ls;
  return -(ts * std::log(q) + (1 - ts) * std::log(1 - q));
}

inline std::vector<LossCase> loss_cases() {
  using R = Reduction;
  auto sparse = [](bool logits, double ls) {
    return [logits, ls](const Tensor& t, const Tensor& p, R r, std::int64_t axis) {
      return sparse_categorical_crossentropy(
          t, p, {.from_logits = logits, .label_smoothing = ls, .axis = axis, .reduction = r});
    };
  };
  auto dense = [](bool logits, double ls) {
    return [logits, ls](const Tensor& t, const Tensor& p, R r, std::int64_t axis) {
      return categorical_crossentropy(
          t, p, {.from_logits = logits, .label_smoothing = ls, .axis = axis, .reduction = r});
    };
  };
  auto binary = [](bool logits, double ls) {
    return [logits, ls](const Tensor& t, const Tensor& p, R r, std::int64_t axis) {
      return binary_crossentropy(
          t, p, {.from_logits = logits, .label_smoothing = ls, .axis = axis, .reduction = r});
    };
  };
  auto ce_logits = [](double ls) {
    return [ls](const auto& t, const auto& p) { return ce_logits_ref(t, p, ls); };
  };
  auto ce_probs = [](double ls) {
    return [ls](const auto& t, const auto& p) { return ce_probs_ref(t, p, ls); };
  };
  auto bce_logits = [](double ls) {
    return [ls](const std::vector<double>& t, const std::vector<double>& x) {
      return mean_ref(t, x, [ls](double tc, double xc) { return bce_ref(tc, 1 / (1 + std::exp(-xc)), ls); });
    };
  };
  auto bce_probs = [](double ls) {
    return [ls](const std::vector<double>& t, const std::vector<double>& p) {
      return mean_ref(t, p, [ls](double tc, double pc) {
        return bce_ref(tc, clip(pc, kKerasEpsilon, 1 - kKerasEpsilon), ls);
      });
    };
  };
  auto huber_ref = [](double delta) {
    return [delta](const std::vector<double>& t, const std::vector<double>& p) {
      return mean_ref(t, p, [delta](double tc, double pc) {
        const double e = std::fabs(pc - tc);
        return e <= delta ? 0.5 * e * e : delta * e - 0.5 * delta * delta;
      });
    };
  };
  auto unaxed = [](Tensor (*f)(const Tensor&, const Tensor&, R)) {
    return [f](const Tensor& t, const Tensor& p, R r, std::int64_t) { return f(t, p, r); };
  };
  return {
      {"sparse_cce_logits", Targets::labels, Predictions::logits, sparse(true, 0), ce_logits(0)},
      {"sparse_cce_logits_ls", Targets::labels, Predictions::logits, sparse(true, 0.1), ce_logits(0.1)},
      {"sparse_cce_probs", Targets::labels, Predictions::distribution, sparse(false, 0), ce_probs(0)},
      {"sparse_cce_probs_ls", Targets::labels, Predictions::distribution, sparse(false, 0.2), ce_probs(0.2)},
      {"cce_logits", Targets::distribution, Predictions::logits, dense(true, 0), ce_logits(0)},
      {"cce_logits_ls", Targets::distribution, Predictions::logits, dense(true, 0.1), ce_logits(0.1)},
      {"cce_probs", Targets::distribution, Predictions::distribution, dense(false, 0), ce_probs(0)},
      {"cce_probs_ls", Targets::distribution, Predictions::distribution, dense(false, 0.3), ce_probs(0.3)},
      {"bce_logits", Targets::unit, Predictions::logits, binary(true, 0), bce_logits(0)},
      {"bce_logits_ls", Targets::unit, Predictions::logits, binary(true, 0.1), bce_logits(0.1)},
      {"bce_probs", Targets::unit, Predictions::unit, binary(false, 0), bce_probs(0)},
      {"bce_probs_ls", Targets::unit, Predictions::unit, binary(false, 0.2), bce_probs(0.2)},
      {"mse", Targets::regression, Predictions::regression, unaxed(mean_squared_error),
       [](const auto& t, const auto& p) {
         return mean_ref(t, p, [](double a, double b) { return (b - a) * (b - a); });
       }},
      {"mae", Targets::regression, Predictions::regression, unaxed(mean_absolute_error),
       [](const auto& t, const auto& p) {
         return mean_ref(t, p, [](double a, double b) { return std::fabs(b - a); });
       }},
      {"huber", Targets::regression, Predictions::regression,
       [](const Tensor& t, const Tensor& p, R r, std::int64_t) { return huber(t, p, 1.0, r); },
       huber_ref(1.0)},
      {"huber_delta_0.3", Targets::regression, Predictions::regression,
       [](const Tensor& t, const Tensor& p, R r, std::int64_t) { return huber(t, p, 0.3, r); },
       huber_ref(0.3)},
      {"kl_divergence", Targets::distribution, Predictions::unit, unaxed(kl_divergence),
       [](const std::vector<double>& t, const std::vector<double>& p) {
         double sum = 0;
         for (std::size_t c = 0; c < p.size(); ++c) {
           const double tc = clip(t[c], kKerasEpsilon, 1), pc = clip(p[c], kKerasEpsilon, 1);
           sum += tc * std::log(tc / pc);
         }
         return sum;
       }},
  };
}

// Whether the case takes an axis option (the cross-entropies; the others reduce over
// Keras' axis -1). Their names are the only ones with "ce_" in them.
inline bool takes_axis(const LossCase& c) { return c.name.find("ce_") != std::string::npos; }

inline std::vector<LossCase> loss_cases_with_axis() {
  std::vector<LossCase> out;
  for (LossCase& c : loss_cases()) {
    if (takes_axis(c)) out.push_back(std::move(c));
  }
  return out;
}

// A gtest parameter name: the case's name with '_' for anything but letters and digits.
template <class Info>
std::string loss_case_name(const Info& info) {
  std::string n = info.param.name;
  for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return n;
}

// Row-major values for `rows` x `classes` (the class axis last) of the given kind.
// labels: one integer per row (rows values).
inline std::vector<double> loss_values(Targets kind, std::int64_t rows, std::int64_t classes,
                                       std::uint64_t seed) {
  if (kind == Targets::labels) {
    std::vector<double> v = uniform_values(rows, 0, static_cast<double>(classes), seed);
    for (double& x : v) x = std::min(std::floor(x), static_cast<double>(classes - 1));
    return v;
  }
  if (kind == Targets::regression) return uniform_values(rows * classes, -2, 2, seed);
  if (kind == Targets::unit) return uniform_values(rows * classes, 0, 1, seed);
  std::vector<double> v = uniform_values(rows * classes, 0, 1, seed);  // distribution
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::int64_t c = 0; c < classes; ++c) s += v[r * classes + c];
    for (std::int64_t c = 0; c < classes; ++c) v[r * classes + c] /= s;
  }
  return v;
}

inline std::vector<double> loss_values(Predictions kind, std::int64_t n, std::uint64_t seed) {
  switch (kind) {
    case Predictions::logits: return uniform_values(n, -4, 4, seed);
    // Unnormalised on purpose: the categorical losses divide by the row's sum (Keras).
    case Predictions::distribution: return uniform_values(n, 0.05, 1, seed);
    case Predictions::unit: return uniform_values(n, 0.02, 0.98, seed);
    case Predictions::regression: return uniform_values(n, -2, 2, seed);
  }
  return {};
}

// Per-sample float64 losses of (y_true, y_pred) with the class axis last (any dtypes,
// devices, layouts), rows in row-major order.
inline std::vector<double> loss_reference(const LossCase& c, const Tensor& y_true, const Tensor& y_pred) {
  const std::vector<double> t = host_values(y_true), p = host_values(y_pred);
  const std::int64_t classes = y_pred.ndim() ? y_pred.shape()[y_pred.ndim() - 1] : 1;
  const std::int64_t rows = classes ? y_pred.numel() / classes : y_pred.numel();
  std::vector<double> out;
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<double> tr(static_cast<std::size_t>(classes)), pr(tr.size());
    for (std::int64_t k = 0; k < classes; ++k) {
      pr[k] = p[r * classes + k];
      tr[k] = c.targets == Targets::labels ? (t[r] == static_cast<double>(k) ? 1 : 0) : t[r * classes + k];
    }
    out.push_back(c.reference(tr, pr));
  }
  return out;
}

inline std::vector<double> reduce_reference(const std::vector<double>& per_sample, Reduction r) {
  if (r == Reduction::none) return per_sample;
  double sum = 0;
  for (double v : per_sample) sum += v;
  return {r == Reduction::sum ? sum : sum / static_cast<double>(per_sample.size())};
}

}  // namespace kiln::test
