// Gradient checking by central differences in float64 (see gradcheck.h). The analytic
// side runs kiln::backward(f(x), v), which yields d(sum(v * f))/dx directly; the numeric
// side evaluates sum(v * f) on the host at x +- eps for each element of each checked input.
#include "kiln/kernels/autograd/gradcheck.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/random.h"
#include "kiln/kernels/autograd/engine.h"

namespace kiln {
namespace {

// Turns grad mode on for its scope (the caller may sit inside a NoGradGuard).
class GradModeOn {
 public:
  GradModeOn() : previous_(GradMode::enabled()) { GradMode::set_enabled(true); }
  ~GradModeOn() { GradMode::set_enabled(previous_); }
  GradModeOn(const GradModeOn&) = delete;
  GradModeOn& operator=(const GradModeOn&) = delete;

 private:
  bool previous_;
};

// The row-major multi-index of element `flat` of `shape`, as "(i, j, ...)".
std::string index_string(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(static_cast<std::size_t>(shape.ndim()));
  for (int d = shape.ndim() - 1; d >= 0; --d) {
    index[static_cast<std::size_t>(d)] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream os;
  os << '(';
  for (std::size_t d = 0; d < index.size(); ++d) os << (d ? ", " : "") << index[d];
  os << ')';
  return os.str();
}

// Element `flat` (row-major) of t as a 0-d view sharing t's storage.
Tensor element_view(const Tensor& t, std::int64_t flat) {
  std::vector<std::int64_t> index(static_cast<std::size_t>(t.ndim()));
  for (int d = t.ndim() - 1; d >= 0; --d) {
    index[static_cast<std::size_t>(d)] = flat % t.shape()[d];
    flat /= t.shape()[d];
  }
  Tensor e = t;
  for (std::int64_t i : index) e = e.select(0, i);
  return e;
}

// Whether writing one element of t would change several (a broadcast/expanded view).
bool has_overlap(const Tensor& t) {
  for (int d = 0; d < t.ndim(); ++d) {
    if (t.strides()[d] == 0 && t.shape()[d] > 1) return true;
  }
  return false;
}

// Whether input i must be checked on a copy: perturbing one of its elements in place
// would also move others (an expanded view), or another input sharing its storage.
bool needs_own_copy(const std::vector<Tensor>& inputs, std::size_t i) {
  if (has_overlap(inputs[i])) return true;
  for (std::size_t j = 0; j < i; ++j) {
    if (inputs[j].numel() > 0 && inputs[i].numel() > 0 && inputs[j].shares_storage(inputs[i])) return true;
  }
  return false;
}

// Writes `value` into one element for its scope and restores the original on exit, even
// when f throws, so the caller's tensor is left as it was.
class Perturbation {
 public:
  Perturbation(Tensor element, double original) : element_(std::move(element)), original_(original) {}
  ~Perturbation() {
    try {
      element_.fill_(original_);
    } catch (...) {  // a destructor must not throw; the fill itself was checked on entry
    }
  }
  void set(double value) { element_.fill_(value); }
  Perturbation(const Perturbation&) = delete;
  Perturbation& operator=(const Perturbation&) = delete;

 private:
  Tensor element_;
  double original_;
};

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor checked_output(const Tensor& out, std::int64_t expected_numel) {
  KILN_CHECK(out.defined(), ValueError, "gradcheck: the function returned an undefined tensor");
  KILN_CHECK(is_floating(out.dtype()), TypeError,
             "gradcheck: the function must return a floating tensor, got ", out.dtype(), " of shape ",
             out.shape());
  KILN_CHECK(expected_numel < 0 || out.numel() == expected_numel, ValueError,
             "gradcheck: the function's output changed size between calls (", expected_numel, " then ",
             out.numel(), " elements)");
  return out;
}

// sum(v * f(inputs)) on the host, in double.
double weighted_sum(const Fn& f, const std::vector<Tensor>& inputs, const std::vector<double>& v) {
  const Tensor out = checked_output(f(inputs), static_cast<std::int64_t>(v.size()));
  const std::vector<double> y = out.to_vector<double>();
  double s = 0;
  for (std::size_t i = 0; i < y.size(); ++i) s += v[i] * y[i];
  return s;
}

// Which inputs to check: those requiring grad, else every floating one.
std::vector<std::size_t> select_checked(const std::vector<Tensor>& inputs) {
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    KILN_CHECK(inputs[i].defined(), ValueError, "gradcheck: input ", i, " is undefined");
    KILN_CHECK(!is_floating(inputs[i].dtype()) || inputs[i].dtype() == DType::float64, TypeError,
               "gradcheck: input ", i, " has dtype ", inputs[i].dtype(), " (shape ", inputs[i].shape(),
               "); gradient checks run in float64, convert it with .to(kiln::float64)");
    if (inputs[i].requires_grad()) checked.push_back(i);
  }
  if (checked.empty()) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (is_floating(inputs[i].dtype())) checked.push_back(i);
    }
  }
  KILN_CHECK(!checked.empty(), ValueError, "gradcheck: none of the ", inputs.size(),
             " inputs is floating, so there is nothing to check");
  return checked;
}

// Compares one input's gradients; returns an empty string when every element passes.
std::string compare(std::size_t input, const Shape& shape, const std::vector<double>& analytic,
                    const std::vector<double>& numeric, const GradcheckOptions& o) {
  std::int64_t failures = 0, worst = -1;
  double worst_excess = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < analytic.size(); ++j) {
    const double a = analytic[j], n = numeric[j];
    const double err = std::fabs(a - n), tol = o.atol + o.rtol * std::fabs(n);
    // NaN on either side fails (err is NaN then, and every comparison with it is false).
    const double excess = std::isnan(err) ? std::numeric_limits<double>::infinity() : err - tol;
    if (!(err <= tol)) ++failures;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = static_cast<std::int64_t>(j);
    }
  }
  if (failures == 0) return {};
  const auto w = static_cast<std::size_t>(worst);
  std::ostringstream os;
  os << "gradcheck: input " << input << " of shape " << shape << ": " << failures << " of " << analytic.size()
     << " elements differ; worst at index " << index_string(worst, shape) << ": analytic " << analytic[w]
     << ", numeric " << numeric[w] << " (|diff| " << std::fabs(analytic[w] - numeric[w]) << " > atol "
     << o.atol << " + rtol " << o.rtol << " * |numeric|)\n";
  return os.str();
}

}  // namespace

GradcheckResult gradcheck(Fn f, std::vector<Tensor> inputs, GradcheckOptions options) {
  KILN_CHECK(static_cast<bool>(f), ValueError, "gradcheck: no function given");
  KILN_CHECK(options.eps > 0, ValueError, "gradcheck: eps must be positive, got ", options.eps);
  const std::vector<std::size_t> checked = select_checked(inputs);

  // work: the values, detached (no history, no effect on the caller's .grad()), sharing
  // the caller's storage so layout is kept (see needs_own_copy). leaves: the same storage,
  // requiring grad.
  std::vector<Tensor> work(inputs.size()), leaves(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    work[i] = needs_own_copy(inputs, i) ? inputs[i].detach().clone() : inputs[i].detach();
    leaves[i] = work[i].detach();
  }
  for (std::size_t i : checked) leaves[i].requires_grad_(true);

  // Analytic: backward(f(x), v) accumulates d(sum(v * f))/dx into each leaf's grad.
  std::vector<double> v;
  {
    GradModeOn grad_on;
    const Tensor out = checked_output(f(leaves), -1);
    Generator gen(options.seed);
    const Tensor vt =
        out.numel() == 1
            ? ones(out.shape(), {.dtype = out.dtype(), .device = out.device()})
            : randn(out.shape(), {.dtype = DType::float64, .device = out.device()}, &gen).to(out.dtype());
    v = vt.to_vector<double>();
    if (out.requires_grad()) backward(out, vt);
  }

  NoGradGuard no_grad;
  GradcheckResult result;
  for (std::size_t i : checked) {
    const Tensor g = leaves[i].grad();
    KILN_CHECK(!g.defined() || g.shape() == work[i].shape(), ValueError, "gradcheck: input ", i, " of shape ",
               work[i].shape(), " received a gradient of shape ", g.shape());
    const std::vector<double> analytic =
        g.defined() ? g.to_vector<double>()
                    : std::vector<double>(static_cast<std::size_t>(work[i].numel()), 0.0);
    const std::vector<double> original = work[i].to_vector<double>();
    std::vector<double> numeric(original.size());
    for (std::size_t j = 0; j < original.size(); ++j) {
      Perturbation p(element_view(work[i], static_cast<std::int64_t>(j)), original[j]);
      p.set(original[j] + options.eps);
      const double plus = weighted_sum(f, work, v);
      p.set(original[j] - options.eps);
      const double minus = weighted_sum(f, work, v);
      numeric[j] = (plus - minus) / (2 * options.eps);
    }
    result.message += compare(i, work[i].shape(), analytic, numeric, options);
  }
  result.ok = result.message.empty();
  return result;
}

}  // namespace kiln
