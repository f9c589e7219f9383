// Confusion-count metrics: Precision, Recall (one threshold) and AUC (Keras 3's
// evenly-distributed thresholds: per-bucket weighted counts on the device, suffix sums and
// the Riemann / PR-interpolation integral on the host in result()).
#include <algorithm>
#include <cmath>

#include "kiln/core/autograd_meta.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/kernels/unary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/training/loss_weights.h"
#include "kiln/training/metrics.h"

namespace kiln::metrics {
namespace {

using losses::detail::squeeze_or_expand_to_same_rank;

double divide_no_nan(double a, double b) { return b == 0.0 ? 0.0 : a / b; }

// y_true, y_pred (and the sample weight) as float64 tensors of one shape, Keras-aligned;
// class_id picks one column of the last axis.
struct Aligned {
  Tensor t, p, w;  // w undefined: weight 1
};

Aligned align(const std::string& op, const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
              std::optional<std::int64_t> class_id) {
  KILN_CHECK(y_true.defined() && y_pred.defined(), ValueError, op, ": y_true and y_pred must be defined");
  KILN_CHECK(y_true.device() == y_pred.device(), DeviceError, op, ": y_true is on ", y_true.device(),
             " but y_pred is on ", y_pred.device());
  auto [p, t] = squeeze_or_expand_to_same_rank(y_pred.detach().to(DType::float64), y_true.detach().to(DType::float64));
  KILN_CHECK(t.shape() == p.shape(), ShapeError, op, ": y_true of shape ", y_true.shape(),
             " does not match y_pred of shape ", y_pred.shape());
  Tensor w;
  if (sample_weight.defined()) {
    w = losses::detail::align_weight(p, sample_weight, op).second.expand(p.shape());
  }
  if (class_id) {
    KILN_CHECK(p.ndim() >= 1 && *class_id >= 0 && *class_id < p.shape()[p.ndim() - 1], IndexError, op,
               ": class_id ", *class_id, " is out of range for y_pred of shape ", y_pred.shape());
    t = t.select(-1, *class_id);
    p = p.select(-1, *class_id);
    if (w.defined()) w = w.select(-1, *class_id);
  }
  return {t, p, w};
}

Tensor weighted_sum(const Tensor& x, const Tensor& w) { return sum(w.defined() ? mul(x, w) : x); }

// counts += (tp, second), second = fp (precision) or fn (recall).
void update_pair(Tensor& counts, const Aligned& a, double threshold, bool precision) {
  const Tensor predicted = gt(a.p, threshold).to(DType::float64);
  const Tensor positive = ne(a.t, 0.0).to(DType::float64);
  const Tensor tp = weighted_sum(mul(predicted, positive), a.w);
  const Tensor other = precision ? weighted_sum(mul(predicted, sub(1.0, positive)), a.w)
                                 : weighted_sum(mul(sub(1.0, predicted), positive), a.w);
  if (!counts.defined()) counts = zeros({2}, {.dtype = DType::float64, .device = a.p.device()});
  KILN_CHECK(counts.device() == a.p.device(), DeviceError, "precision/recall: update on ", a.p.device(),
             " but the metric accumulates on ", counts.device(), " since its last reset_state");
  add_(counts, stack({tp, other}));
}

double ratio(const Tensor& counts) {
  if (!counts.defined()) return 0.0;
  const std::vector<double> c = counts.to_vector<double>();
  return divide_no_nan(c[0], c[0] + c[1]);
}

}  // namespace

// ---- Precision, Recall ----

Precision::Precision(PrecisionRecallOptions o)
    : Metric(o.name.empty() ? "precision" : o.name), options_(std::move(o)) {}
void Precision::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  NoGradGuard no_grad;
  update_pair(counts_, align(name(), y_true, y_pred, sample_weight, options_.class_id), options_.thresholds, true);
}
double Precision::result() const { return ratio(counts_); }
void Precision::reset_state() {
  counts_ = Tensor();
}

Recall::Recall(PrecisionRecallOptions o) : Metric(o.name.empty() ? "recall" : o.name), options_(std::move(o)) {}
void Recall::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  NoGradGuard no_grad;
  update_pair(counts_, align(name(), y_true, y_pred, sample_weight, options_.class_id), options_.thresholds, false);
}
double Recall::result() const { return ratio(counts_); }
void Recall::reset_state() {
  counts_ = Tensor();
}

// ---- AUC ----

AUC::AUC(AUCOptions o) : Metric(o.name), options_(std::move(o)) {
  KILN_CHECK(options_.num_thresholds > 1, ValueError, name(), ": num_thresholds must be > 1, got ",
             options_.num_thresholds);
}

// Keras' _update_confusion_matrix_variables_optimized: bucket = ceil(p (n - 1)) - 1, at
// least 0 (kept at most n - 1 here, so no prediction is dropped), and per bucket the
// weighted positives y * w and negatives (1 - y) * w.
void AUC::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  NoGradGuard no_grad;
  Aligned a = align(name(), y_true, y_pred, sample_weight, std::nullopt);
  const std::int64_t n = options_.num_thresholds;
  Tensor p = a.p.reshape({-1});
  if (options_.from_logits) p = sigmoid(p);
  Tensor x = mul(p, static_cast<double>(n - 1));
  x = where(ne(x, x), zeros({}, {.dtype = DType::float64, .device = x.device()}), x);  // NaN: bucket 0
  x = clamp(x, -1.0, static_cast<double>(n));  // keeps the integer cast in range
  // ceil(x) - 1 from the truncating cast: trunc(x) - 1 where x is whole, trunc(x) for x > 0.
  const Tensor whole = x.to(DType::int64);
  const Tensor exact = eq(whole.to(DType::float64), x).to(DType::int64);
  const Tensor bucket = minimum(maximum(sub(whole, exact), 0.0), static_cast<double>(n - 1));
  const Tensor t = a.t.reshape({-1});
  const Tensor w = a.w.defined() ? a.w.reshape({-1}) : ones({t.numel()}, {.dtype = DType::float64, .device = t.device()});
  const Tensor src = stack({mul(t, w), mul(sub(1.0, t), w)});  // (2, M)
  if (!buckets_.defined()) buckets_ = zeros({2, n}, {.dtype = DType::float64, .device = p.device()});
  KILN_CHECK(buckets_.device() == p.device(), DeviceError, name(), ": update on ", p.device(),
             " but the metric accumulates on ", buckets_.device(), " since its last reset_state");
  add_(buckets_, scatter_add({2, n}, bucket, src, 1));
}

AUC::Confusion AUC::confusion() const {
  const auto n = static_cast<std::size_t>(options_.num_thresholds);
  Confusion c;
  c.true_positives.assign(n, 0.0);
  c.false_positives.assign(n, 0.0);
  if (buckets_.defined()) {
    const std::vector<double> b = buckets_.to_vector<double>();  // the one host sync
    double tp = 0.0, fp = 0.0;
    for (std::size_t k = n; k-- > 0;) {  // suffix sums: predictions above threshold k
      tp += b[k];
      fp += b[n + k];
      c.true_positives[k] = tp;
      c.false_positives[k] = fp;
    }
  }
  c.true_negatives.resize(n);
  c.false_negatives.resize(n);
  for (std::size_t k = 0; k < n; ++k) {
    c.true_negatives[k] = c.false_positives[0] - c.false_positives[k];
    c.false_negatives[k] = c.true_positives[0] - c.true_positives[k];
  }
  return c;
}

double AUC::result() const {
  const Confusion c = confusion();
  const std::size_t n = c.true_positives.size();
  const auto& tp = c.true_positives;
  const auto& fp = c.false_positives;
  const auto& tn = c.true_negatives;
  const auto& fn = c.false_negatives;
  double auc = 0.0;
  if (options_.curve == AucCurve::PR && options_.summation_method == AucSummation::interpolation) {
    // Keras' interpolate_pr_auc (Davis & Goadrich 2006).
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const double dtp = tp[i] - tp[i + 1];
      const double p0 = tp[i] + fp[i], p1 = tp[i + 1] + fp[i + 1];
      const double prec_slope = divide_no_nan(dtp, std::max(p0 - p1, 0.0));
      const double intercept = tp[i + 1] - prec_slope * p1;
      const double safe_p_ratio = (p0 > 0 && p1 > 0) ? divide_no_nan(p0, std::max(p1, 0.0)) : 1.0;
      auc += divide_no_nan(prec_slope * (dtp + intercept * std::log(safe_p_ratio)),
                           std::max(tp[i + 1] + fn[i + 1], 0.0));
    }
    return auc;
  }
  std::vector<double> x(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double recall = divide_no_nan(tp[i], tp[i] + fn[i]);
    if (options_.curve == AucCurve::ROC) {
      x[i] = divide_no_nan(fp[i], fp[i] + tn[i]);
      y[i] = recall;
    } else {
      x[i] = recall;
      y[i] = divide_no_nan(tp[i], tp[i] + fp[i]);
    }
  }
  for (std::size_t i = 0; i + 1 < n; ++i) {
    double height = 0.0;
    switch (options_.summation_method) {
      case AucSummation::interpolation: height = (y[i] + y[i + 1]) / 2.0; break;
      case AucSummation::minoring: height = std::min(y[i], y[i + 1]); break;
      case AucSummation::majoring: height = std::max(y[i], y[i + 1]); break;
    }
    auc += (x[i] - x[i + 1]) * height;
  }
  return auc;
}

void AUC::reset_state() {
  buckets_ = Tensor();
}

}  // namespace kiln::metrics
