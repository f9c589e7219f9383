// Model: construction, compile, the training and test steps, metrics bookkeeping, the
// *_on_batch entry points and weight snapshots. The epoch loops of fit / evaluate /
// predict are in fit_loop.cpp; saving and loading in saving.cpp.
#include "kiln/training/model.h"

#include <algorithm>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/error.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/training/model_internal.h"
#include "kiln/training/progbar.h"

namespace kiln {

// ---- Verbosity ----

Verbosity::Verbosity(int level) : level_(level) {
  KILN_CHECK(level >= 0 && level <= 2, ValueError, "verbose must be \"auto\", 0, 1 or 2; got ", level);
}

Verbosity::Verbosity(const char* level) {
  KILN_CHECK(level != nullptr && std::string_view(level) == "auto", ValueError,
             "verbose must be \"auto\", 0, 1 or 2; got \"", (level ? level : ""), "\"");
}

int Verbosity::resolve() const { return level_ >= 0 ? level_ : (stdout_is_terminal() ? 1 : 2); }

// ---- construction ----

Model::Model(const layers::KerasTensor& input, const layers::KerasTensor& output, layers::NetworkOptions options)
    : Network(input, output, std::move(options)), cache_(std::make_unique<StepCache>()) {}

Model::Model(std::vector<layers::KerasTensor> inputs, std::vector<layers::KerasTensor> outputs,
             layers::NetworkOptions options)
    : Network(std::move(inputs), std::move(outputs), std::move(options)), cache_(std::make_unique<StepCache>()) {}

Model::Model(std::vector<layers::LayerRef> layers, layers::NetworkOptions options)
    : Network(std::move(layers), std::move(options)), cache_(std::make_unique<StepCache>()) {}

Model::~Model() = default;

Sequential::Sequential(std::vector<layers::LayerRef> layers, layers::NetworkOptions options)
    : Model(std::move(layers), std::move(options)) {}

// ---- compile ----

std::size_t Model::num_inputs() const { return is_sequential() ? 1 : inputs().size(); }
std::size_t Model::num_outputs() const { return is_sequential() ? 1 : outputs().size(); }

void Model::compile(CompileOptions options) {
  KILN_CHECK(!options.loss.empty(), ValueError,
             "compile: a loss is required, e.g. compile({.optimizer = \"adam\", .loss = \"mse\"})");
  const std::size_t n = num_outputs();
  auto c = std::make_unique<Compiled>();
  c->optimizer = options.optimizer.resolve();
  KILN_CHECK(c->optimizer != nullptr, ValueError, "compile: the optimizer is empty");

  const auto& given = options.loss.losses();
  KILN_CHECK(options.loss.shared() || given.size() == n, ValueError, "compile: got ", given.size(),
             " losses for a model with ", n, " output(s); give one loss, or one per output");
  std::vector<std::string> loss_names;
  for (std::size_t i = 0; i < n; ++i) {
    const losses::LossRef& ref = options.loss.shared() ? given[0] : given[i];
    c->losses.push_back(ref.resolve());
    KILN_CHECK(c->losses.back() != nullptr, ValueError, "compile: the loss for output ", i, " is empty");
    c->sparse_targets.push_back(
        dynamic_cast<const losses::SparseCategoricalCrossentropy*>(c->losses.back().get()) != nullptr);
    loss_names.push_back(ref.name());
  }

  c->loss_weights = options.loss_weights.empty() ? std::vector<double>(n, 1.0) : options.loss_weights;
  KILN_CHECK(c->loss_weights.size() == n, ValueError, "compile: got ", c->loss_weights.size(),
             " loss_weights for a model with ", n, " output(s)");

  // One metric object per output and identifier; an object given by the caller can serve
  // one output only (kiln cannot copy its state).
  std::vector<const metrics::Metric*> seen;
  const std::vector<std::string> out_names = n > 1 ? output_names() : std::vector<std::string>{};
  c->metrics.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& ref : options.metrics) {
      auto m = ref.resolve(loss_names[i]);
      KILN_CHECK(m != nullptr, ValueError, "compile: a metric is empty");
      KILN_CHECK(std::find(seen.begin(), seen.end(), m.get()) == seen.end(), ValueError,
                 "compile: the metric object '", m->name(), "' would be shared by ", n,
                 " outputs; pass its name instead, so each output gets its own");
      seen.push_back(m.get());
      c->metric_log_names.push_back(n > 1 ? out_names[i] + "_" + m->name() : m->name());
      c->metrics[i].push_back(std::move(m));
    }
    if (n > 1) {
      c->output_loss_trackers.push_back(std::make_unique<metrics::Mean>(out_names[i] + "_loss"));
    }
  }
  compiled_ = std::move(c);
  cache_->valid = false;
}

Model::Compiled& Model::require_compiled(const char* what) const {
  KILN_CHECK(compiled_ != nullptr, ValueError, what,
             ": you must call compile() before using the model, e.g. compile({.optimizer = \"adam\", "
             ".loss = \"sparse_categorical_crossentropy\", .metrics = {\"accuracy\"}})");
  return *compiled_;
}

optimizers::Optimizer& Model::optimizer() const { return *require_compiled("optimizer").optimizer; }

const std::vector<std::shared_ptr<metrics::Metric>>& Model::metrics(std::size_t output) const {
  const Compiled& c = require_compiled("metrics");
  KILN_CHECK(output < c.metrics.size(), IndexError, "metrics: output ", output, " out of range for a model with ",
             c.metrics.size(), " output(s)");
  return c.metrics[output];
}

// ---- the steps ----

void Model::refresh_step_cache() {
  StepCache& s = *cache_;
  s.params = trainable_parameters();
  s.has_regularizers = false;
  s.has_constraints = false;
  for (const auto& v : weights()) {
    s.has_regularizers = s.has_regularizers || v.regularizer() != nullptr;
    s.has_constraints = s.has_constraints || v.constraint() != nullptr;
  }
  s.valid = built();
}

// Targets in the form the loss takes: class ids as int64 for the sparse loss (Keras accepts
// float labels there), else y_pred's floating dtype.
Tensor Model::prepare_target(std::size_t output, const Tensor& y, const Tensor& y_pred) const {
  const Compiled& c = *compiled_;
  if (c.sparse_targets[output]) return is_floating(y.dtype()) ? y.to(DType::int64) : y;
  if (is_floating(y_pred.dtype()) && y.dtype() != y_pred.dtype()) return y.to(y_pred.dtype());
  return y;
}

void Model::check_targets(const char* what, const std::vector<Tensor>& outputs, const std::vector<Tensor>& ys) const {
  KILN_CHECK(ys.size() == outputs.size(), ValueError, what, ": got ", ys.size(), " target tensor(s) for a model with ",
             outputs.size(), " output(s)");
  for (std::size_t i = 0; i < ys.size(); ++i) {
    KILN_CHECK(ys[i].defined(), ValueError, what, ": the target for output ", i, " is undefined");
    KILN_CHECK(ys[i].ndim() >= 1 && outputs[i].ndim() >= 1 && ys[i].size(0) == outputs[i].size(0), ShapeError,
               what, ": the targets of shape ", ys[i].shape(), " do not have the batch size of the output of shape ",
               outputs[i].shape());
  }
}

Tensor Model::compute_loss(const std::vector<Tensor>& outputs, std::vector<Tensor>& ys, const Tensor& sample_weight,
                           std::vector<Tensor>* per_output) {
  Compiled& c = *compiled_;
  Tensor total;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    ys[i] = prepare_target(i, ys[i], outputs[i]);
    Tensor li = (*c.losses[i])(ys[i], outputs[i], sample_weight);
    if (c.loss_weights[i] != 1.0) li = mul(li, c.loss_weights[i]);
    if (per_output != nullptr) per_output->push_back(li);
    total = total.defined() ? kiln::add(total, li) : li;
  }
  if (cache_->has_regularizers) total = kiln::add(total, regularization_loss());
  return total;
}

// Accumulates the loss trackers and metrics on the device (no autograd, no host sync).
void Model::track(const std::vector<Tensor>& outputs, const std::vector<Tensor>& ys, const Tensor& sample_weight,
                  const Tensor& total, const std::vector<Tensor>& per_output) {
  NoGradGuard no_grad;
  Compiled& c = *compiled_;
  const auto batch = static_cast<double>(outputs[0].size(0));
  c.loss_tracker.update_state(total.detach(), batch);
  for (std::size_t i = 0; i < c.output_loss_trackers.size(); ++i) {
    c.output_loss_trackers[i]->update_state(per_output[i].detach(), batch);
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor pred = outputs[i].detach();
    for (const auto& m : c.metrics[i]) m->update_state(ys[i], pred, sample_weight);
  }
}

void Model::train_step(const std::vector<Tensor>& xs, std::vector<Tensor> ys, const Tensor& sample_weight) {
  Compiled& c = *compiled_;
  std::vector<Tensor> outputs = (*this)(xs, /*training=*/true);
  check_targets("fit", outputs, ys);
  if (!cache_->valid) refresh_step_cache();  // a sequential model builds on its first call
  std::vector<Tensor> per_output;
  const Tensor total = compute_loss(outputs, ys, sample_weight, c.output_loss_trackers.empty() ? nullptr : &per_output);
  zero_grad(cache_->params);  // gradients left by a caller's own backward must not leak in
  backward(total);
  c.optimizer->apply_gradients(cache_->params);
  if (cache_->has_constraints) apply_constraints();
  zero_grad(cache_->params);  // frees the gradients before the next forward
  track(outputs, ys, sample_weight, total, per_output);
}

void Model::test_step(const std::vector<Tensor>& xs, std::vector<Tensor> ys, const Tensor& sample_weight) {
  NoGradGuard no_grad;
  std::vector<Tensor> outputs = (*this)(xs, /*training=*/false);
  check_targets("evaluate", outputs, ys);
  if (!cache_->valid) refresh_step_cache();
  std::vector<Tensor> per_output;
  const Tensor total = compute_loss(outputs, ys, sample_weight,
                                    compiled_->output_loss_trackers.empty() ? nullptr : &per_output);
  track(outputs, ys, sample_weight, total, per_output);
}

// ---- metrics ----

void Model::reset_metrics() {
  Compiled& c = require_compiled("reset_metrics");
  c.loss_tracker.reset_state();
  for (auto& t : c.output_loss_trackers) t->reset_state();
  for (auto& ms : c.metrics) {
    for (auto& m : ms) m->reset_state();
  }
}

Logs Model::metrics_result() const {
  const Compiled& c = require_compiled("metrics_result");
  Logs logs;
  logs["loss"] = c.loss_tracker.result();
  for (const auto& t : c.output_loss_trackers) logs[t->name()] = t->result();
  std::size_t k = 0;
  for (const auto& ms : c.metrics) {
    for (const auto& m : ms) logs[c.metric_log_names[k++]] = m->result();
  }
  return logs;
}

// ---- one batch ----

Logs Model::train_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                           const std::map<std::int64_t, double>& class_weight) {
  require_compiled("train_on_batch");
  Tensor sw = sample_weight;
  if (!class_weight.empty()) {
    KILN_CHECK(!sample_weight.defined(), ValueError,
               "train_on_batch: you cannot use class_weight and sample_weight at the same time");
    sw = class_sample_weight(y.to(device()), class_weight_table(class_weight, device()), "train_on_batch");
  }
  return train_on_batch(std::vector<Tensor>{x}, std::vector<Tensor>{y}, sw);
}

Logs Model::train_on_batch(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& sample_weight) {
  require_compiled("train_on_batch");
  cache_->valid = false;
  const Device d = device();
  std::vector<Tensor> xd, yd;
  for (const auto& x : xs) xd.push_back(x.to(d));
  for (const auto& y : ys) yd.push_back(y.defined() ? y.to(d) : y);
  train_step(xd, std::move(yd), sample_weight.defined() ? sample_weight.to(d) : sample_weight);
  return metrics_result();
}

Logs Model::test_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight) {
  return test_on_batch(std::vector<Tensor>{x}, std::vector<Tensor>{y}, sample_weight);
}

Logs Model::test_on_batch(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& sample_weight) {
  require_compiled("test_on_batch");
  cache_->valid = false;
  const Device d = device();
  std::vector<Tensor> xd, yd;
  for (const auto& x : xs) xd.push_back(x.to(d));
  for (const auto& y : ys) yd.push_back(y.defined() ? y.to(d) : y);
  test_step(xd, std::move(yd), sample_weight.defined() ? sample_weight.to(d) : sample_weight);
  return metrics_result();
}

std::vector<Tensor> Model::predict_on_batch(const std::vector<Tensor>& xs) {
  NoGradGuard no_grad;
  const Device d = device();
  std::vector<Tensor> xd;
  for (const auto& x : xs) xd.push_back(x.to(d));
  return (*this)(xd, /*training=*/false);
}

Tensor Model::predict_on_batch(const Tensor& x) {
  std::vector<Tensor> out = predict_on_batch(std::vector<Tensor>{x});
  KILN_CHECK(out.size() == 1, ValueError, "predict_on_batch: the model has ", out.size(),
             " outputs; use the std::vector form");
  return out[0];
}

// ---- class weights ----

Tensor class_weight_table(const std::map<std::int64_t, double>& class_weight, Device device) {
  KILN_CHECK(!class_weight.empty(), ValueError, "class_weight: empty");
  const std::int64_t max_class = class_weight.rbegin()->first;
  KILN_CHECK(class_weight.begin()->first >= 0, ValueError, "class_weight: class ids must be >= 0, got ",
             class_weight.begin()->first);
  std::vector<float> table(static_cast<std::size_t>(max_class + 1));
  for (std::int64_t k = 0; k <= max_class; ++k) {
    const auto it = class_weight.find(k);
    KILN_CHECK(it != class_weight.end(), ValueError, "class_weight must contain every class id from 0 to ",
               max_class, "; class ", k, " is missing");
    table[static_cast<std::size_t>(k)] = static_cast<float>(it->second);
  }
  return from_vector(table, {.device = device});
}

// Keras: rank >= 2 with a last axis > 1 is one-hot (argmax); otherwise class ids (rounded).
Tensor class_sample_weight(const Tensor& y, const Tensor& table, const char* what) {
  Tensor classes;
  if (y.ndim() >= 2 && y.size(-1) > 1) {
    classes = argmax(y, -1);
  } else {
    Tensor ids = y.ndim() >= 2 ? y.reshape({y.size(0)}) : y;
    // Keras rounds float class ids (ids are >= 0: +0.5 and truncation rounds).
    classes = is_floating(ids.dtype()) ? kiln::add(ids.to(DType::float64), 0.5).to(DType::int64) : ids;
  }
  return take(table, classes.reshape({-1}));
}

// ---- weight snapshots ----

std::vector<Tensor> Model::weight_snapshot() const {
  NoGradGuard no_grad;
  std::vector<Tensor> out;
  for (const auto& v : weights()) out.push_back(v.value().detach().clone());
  return out;
}

void Model::restore_weight_snapshot(const std::vector<Tensor>& snapshot) {
  const auto ws = weights();
  KILN_CHECK(snapshot.size() == ws.size(), ValueError, "restore_weight_snapshot: the snapshot holds ",
             snapshot.size(), " tensors, the model has ", ws.size(), " weights");
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i].assign(snapshot[i]);
}

// Weight keys, save_weights / load_weights / save and load_model: training/saving.cpp.

}  // namespace kiln
