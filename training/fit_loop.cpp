// The loops of Model::fit / evaluate / predict: data (validation_split, loaders, class
// weights), callbacks and the progress bar around Model's train and test steps. See
// Note [The training step stays on the device] in model.h.
#include <cmath>

#include "kiln/core/autograd_meta.h"
#include "kiln/core/error.h"
#include "kiln/core/philox.h"
#include "kiln/core/random.h"
#include "kiln/kernels/shape_ops.h"
#include "kiln/layers/layer.h"
#include "kiln/training/model.h"
#include "kiln/training/model_internal.h"
#include "kiln/training/progbar.h"

namespace kiln {
namespace {

// A loader transform that fills each batch's sample weights from class_weight on the host,
// before the copy to the device (Keras applies class_weight in its data pipeline too), so
// the step itself does no lookup and no device-side bounds check.
class ClassWeightTransform final : public data::Transform {
 public:
  explicit ClassWeightTransform(const std::map<std::int64_t, double>& class_weight)
      : table_(class_weight_table(class_weight, Device::cpu())) {}
  void apply(data::Batch& batch, std::uint64_t) const override {
    batch.sample_weight = class_sample_weight(batch.y, table_, "fit");
  }
  std::string name() const override { return "class_weight"; }

 private:
  Tensor table_;
};

// The shuffle seed: the caller's, else one drawn from the default generator so that
// kiln::manual_seed fixes it.
std::uint64_t fit_seed(const FitOptions& o) {
  if (o.seed) return *o.seed;
  const Generator::Draw d = default_generator().reserve(2);
  return (static_cast<std::uint64_t>(philox_word(d.seed, d.offset, 0)) << 32) | philox_word(d.seed, d.offset, 1);
}

int default_prefetch(Device d) { return d.is_cuda() ? 2 : 0; }

// "x" for a model's only input, "x[i]" among several (and likewise "y").
std::string arg_name(const char* base, std::size_t i, std::size_t count) {
  return count == 1 ? std::string(base) : std::string(base) + "[" + std::to_string(i) + "]";
}

// xs (one per input) and ys (one per output, or none for predict) with the same number of
// samples, and sample_weight (N,) when given.
void check_xy(const char* what, const std::vector<Tensor>& xs, const std::vector<Tensor>& ys,
              const Tensor& sample_weight) {
  KILN_CHECK(!xs.empty(), ValueError, what, ": no input tensors (x is empty)");
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const std::string name = arg_name("x", i, xs.size());
    KILN_CHECK(xs[i].defined(), ValueError, what, ": ", name, " is undefined");
    KILN_CHECK(xs[i].ndim() >= 1, ShapeError, what, ": ", name, " needs a leading batch axis, got shape ",
               xs[i].shape());
    KILN_CHECK(xs[i].size(0) == xs[0].size(0), ShapeError, what,
               ": every input must have the same number of samples; got x[0] of shape ", xs[0].shape(), " and ",
               name, " of shape ", xs[i].shape());
  }
  const Tensor& x = xs[0];
  const std::string x_name = arg_name("x", 0, xs.size());
  for (std::size_t i = 0; i < ys.size(); ++i) {
    const std::string name = arg_name("y", i, ys.size());
    KILN_CHECK(ys[i].defined(), ValueError, what, ": ", name, " is undefined (", what, " needs targets)");
    KILN_CHECK(ys[i].ndim() >= 1 && ys[i].size(0) == x.size(0), ShapeError, what, ": ", x_name, " and ", name,
               " must have the same number of samples; got ", x_name, " of shape ", x.shape(), " and ", name,
               " of shape ", ys[i].shape());
  }
  if (sample_weight.defined()) {
    KILN_CHECK(sample_weight.ndim() == 1 && sample_weight.size(0) == x.size(0), ShapeError, what,
               ": sample_weight must have shape (", x.size(0), ",) to match ", x_name, " of shape ", x.shape(),
               "; got ", sample_weight.shape());
  }
}

// The validation tensors of fit as a dataset (checked as fit's own x and y are).
data::Dataset validation_dataset(const ValidationData& v) {
  check_xy("fit: validation_data", v.xs, v.ys, v.sample_weight);
  return data::Dataset(v.xs, v.ys, v.sample_weight);
}

// Batches of an epoch: a new loader epoch per fit epoch, except with steps_per_epoch, where
// an epoch takes the next `steps` batches and the data continues across epochs (starting a
// new pass over the loader when one runs out), as Keras 3 iterates arrays.
class EpochFeed {
 public:
  EpochFeed(data::DataLoader& loader, bool continuous) : loader_(loader), continuous_(continuous) {}
  void begin(int epoch) {
    if (!continuous_ || loader_.epoch() < 0) loader_.begin_epoch(continuous_ ? 0 : epoch);
  }
  std::optional<data::Batch> next() {
    auto batch = loader_.next();
    if (!batch && continuous_) {
      loader_.begin_epoch(loader_.epoch() + 1);
      batch = loader_.next();
    }
    return batch;
  }

 private:
  data::DataLoader& loader_;
  bool continuous_;
};

CallbackList make_callbacks(const std::vector<CallbackPtr>& user, int verbose, std::ostream* out,
                            const std::shared_ptr<History>& history) {
  CallbackList list(user);
  // Keras appends History and the progress bar after the caller's callbacks, so they see
  // what earlier callbacks add to the epoch logs.
  if (history) list.add(history);
  if (verbose > 0) list.add(std::make_shared<ProgbarLogger>(ProgbarOptions{.out = out}));
  return list;
}

}  // namespace

// ---- fit ----

void Model::check_io_counts(const char* what, std::size_t xs, std::optional<std::size_t> ys) const {
  if (xs != num_inputs()) {
    std::string names;
    for (const auto& n : is_sequential() ? std::vector<std::string>{} : input_names()) {
      names += (names.empty() ? " (" : ", ") + n;
    }
    KILN_THROW(ValueError, what, ": the model '", name(), "' takes ", num_inputs(), " input(s)",
               names.empty() ? "" : names + ")", ", got ", xs, " input tensor(s)");
  }
  KILN_CHECK(!ys || *ys == num_outputs(), ValueError, what, ": the model '", name(), "' has ", num_outputs(),
             " output(s), got ", *ys, " target tensor(s)");
}

History Model::fit(const Tensor& x, const Tensor& y, FitOptions options) {
  return fit(std::vector<Tensor>{x}, std::vector<Tensor>{y}, std::move(options));
}

History Model::fit(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, FitOptions options) {
  require_compiled("fit");
  check_io_counts("fit", xs.size(), ys.size());
  check_xy("fit", xs, ys, options.sample_weight);
  data::Dataset all(xs, ys, options.sample_weight);
  options.sample_weight = Tensor();  // now part of the dataset
  return fit(all, std::move(options));
}

History Model::fit(const data::Dataset& all, FitOptions options) {
  require_compiled("fit");
  KILN_CHECK(!options.sample_weight.defined(), ValueError,
             "fit: give a dataset its sample weights (Dataset(x, y, sample_weight)), not FitOptions::sample_weight");
  KILN_CHECK(options.batch_size >= 1, ValueError, "fit: batch_size must be >= 1, got ", options.batch_size);
  KILN_CHECK(options.validation_split >= 0.0 && options.validation_split < 1.0, ValueError,
             "fit: validation_split must be in [0, 1), got ", options.validation_split);
  KILN_CHECK(options.class_weight.empty() || !all.has_sample_weight(), ValueError,
             "fit: you cannot use class_weight and sample_weight at the same time");
  KILN_CHECK(options.class_weight.empty() || num_outputs() == 1, ValueError,
             "fit: class_weight is only supported for models with a single output");

  data::Dataset train = all;
  std::optional<data::Dataset> val;
  if (options.validation_data.defined()) {
    if (options.validation_data.loader == nullptr) val.emplace(validation_dataset(options.validation_data));
  } else if (options.validation_split > 0.0) {
    // Keras: the LAST fraction, taken before any shuffling.
    const std::int64_t n = all.size();
    const auto split_at = static_cast<std::int64_t>(std::floor(static_cast<double>(n) * (1.0 - options.validation_split)));
    KILN_CHECK(split_at > 0 && split_at < n, ValueError, "fit: training data contains ", n,
               " samples, which is not sufficient to split it into a validation and training set as specified "
               "by validation_split=", options.validation_split,
               ". Either provide more data, or a different value for validation_split.");
    train = all.slice(0, split_at);
    val = all.slice(split_at, n);
  }

  const Device d = device();
  const int prefetch = options.prefetch.value_or(default_prefetch(d));
  data::LoaderOptions lo{.batch_size = options.batch_size, .shuffle = options.shuffle, .seed = fit_seed(options),
                         .drop_last = false, .device = d, .prefetch = prefetch};
  if (!options.class_weight.empty()) lo.transforms.push_back(std::make_shared<ClassWeightTransform>(options.class_weight));
  data::DataLoader train_loader(train, lo);
  std::optional<data::DataLoader> val_loader;
  if (val) {
    val_loader.emplace(*val, data::LoaderOptions{.batch_size = options.validation_batch_size.value_or(options.batch_size),
                                                 .shuffle = false, .seed = 0, .device = d, .prefetch = prefetch});
  }
  data::DataLoader* val_ptr = val_loader ? &*val_loader : options.validation_data.loader;
  const std::int64_t steps = options.steps_per_epoch.value_or(train_loader.size());
  options.class_weight.clear();  // applied by the loader's transform
  return run_fit(train_loader, val_ptr, steps, options);
}

History Model::fit(data::DataLoader& loader, FitOptions options) {
  require_compiled("fit");
  KILN_CHECK(options.validation_split == 0.0, ValueError,
             "fit: validation_split is only supported for tensor inputs; pass validation_data for a loader");
  KILN_CHECK(options.class_weight.empty() || num_outputs() == 1, ValueError,
             "fit: class_weight is only supported for models with a single output");
  std::optional<data::DataLoader> val_loader;
  data::DataLoader* val_ptr = options.validation_data.loader;
  if (!options.validation_data.xs.empty()) {
    val_loader.emplace(validation_dataset(options.validation_data),
                       data::LoaderOptions{.batch_size = options.validation_batch_size.value_or(loader.options().batch_size),
                                           .shuffle = false, .seed = 0, .device = device(),
                                           .prefetch = options.prefetch.value_or(default_prefetch(device()))});
    val_ptr = &*val_loader;
  }
  KILN_CHECK(loader.device() == device(), DeviceError, "fit: the loader delivers batches to ", loader.device(),
             " but the model is on ", device(), "; make the loader with .device = model.device()");
  const std::int64_t steps = options.steps_per_epoch.value_or(loader.size());
  return run_fit(loader, val_ptr, steps, options);
}

// Builds a sequential model that has no input shape yet from the loader's first example,
// so that weights exist before on_train_begin (BackupAndRestore restores into them), as
// Keras 3 builds the model before its callbacks start.
void Model::build_from_loader(const data::DataLoader& loader, const char* what) {
  if (built()) return;
  const data::Dataset& ds = loader.dataset();
  KILN_CHECK(ds.size() > 0, ValueError, what, ": the dataset is empty");
  std::vector<Shape> shapes;
  if (ds.x().defined()) {
    shapes.push_back(ds.x().shape());
    for (const auto& t : ds.more_x()) shapes.push_back(t.shape());
  } else {
    for (const auto& t : ds.gather(std::vector<std::int64_t>{0}).inputs()) shapes.push_back(t.shape());
  }
  for (auto& shape : shapes) shape = layers::with_unknown_batch(shape);
  build(shapes);
}

History Model::run_fit(data::DataLoader& train, data::DataLoader* val, std::int64_t steps, const FitOptions& o) {
  require_compiled("fit");
  KILN_CHECK(o.epochs >= 0, ValueError, "fit: epochs must be >= 0, got ", o.epochs);
  KILN_CHECK(steps >= 1, ValueError, "fit: an epoch needs at least one batch (steps_per_epoch = ", steps,
             ", the loader has ", train.size(), " batches)");
  KILN_CHECK(o.validation_freq >= 1, ValueError, "fit: validation_freq must be >= 1, got ", o.validation_freq);
  const bool continuous = o.steps_per_epoch.has_value();
  const int verbose = o.verbose.resolve();
  build_from_loader(train, "fit");
  refresh_step_cache();

  auto hist = std::make_shared<History>();
  CallbackList callbacks = make_callbacks(o.callbacks, verbose, o.out, hist);
  callbacks.set_model(this);
  callbacks.set_params({.epochs = o.epochs, .steps = steps, .verbose = verbose});
  stop_training = false;
  resume_epoch_.reset();
  callbacks.on_train_begin();
  // BackupAndRestore sets the epoch to resume at during on_train_begin.
  const int initial_epoch = resume_epoch_.value_or(0) > 0 ? *resume_epoch_ : o.initial_epoch;
  resume_epoch_.reset();
  if (!cache_->valid) refresh_step_cache();  // a callback may have restored or built weights

  EpochFeed feed(train, continuous);
  // fit(loader, {.class_weight}): the lookup runs on the device (fit(x, y) does it in the
  // loader instead, and clears the map).
  const Tensor class_table = o.class_weight.empty() ? Tensor() : class_weight_table(o.class_weight, device());
  Logs epoch_logs;
  for (int epoch = initial_epoch; epoch < o.epochs; ++epoch) {
    reset_metrics();
    callbacks.on_epoch_begin(epoch);
    feed.begin(epoch);
    std::int64_t step = 0;
    for (; step < steps; ++step) {
      std::optional<data::Batch> batch = feed.next();
      if (!batch) break;
      KILN_CHECK(batch->y.defined(), ValueError, "fit: the batches have no targets (y); fit needs them");
      if (class_table.defined()) {
        KILN_CHECK(!batch->sample_weight.defined(), ValueError,
                   "fit: you cannot use class_weight and sample_weight at the same time");
        batch->sample_weight = class_sample_weight(batch->y, class_table, "fit");
      }
      callbacks.on_train_batch_begin(step);
      train_step(batch->inputs(), batch->targets(), batch->sample_weight);
      callbacks.on_train_batch_end(step, [this] { return metrics_result(); });
      if (stop_training) break;
    }
    KILN_CHECK(step > 0 || stop_training, ValueError, "fit: epoch ", epoch + 1, " got no batches from the loader");
    epoch_logs = metrics_result();
    if (val != nullptr && (epoch + 1) % o.validation_freq == 0) {
      const Logs val_logs = run_evaluate(*val, o.validation_steps, callbacks);
      for (const auto& [name, value] : val_logs) epoch_logs["val_" + name] = value;
    }
    callbacks.on_epoch_end(epoch, epoch_logs);
    if (stop_training) break;
  }
  callbacks.on_train_end(epoch_logs);
  history = *hist;
  return *hist;
}

// ---- evaluate ----

Logs Model::run_evaluate(data::DataLoader& loader, std::optional<std::int64_t> steps, CallbackList& callbacks) {
  reset_metrics();
  callbacks.on_test_begin();
  loader.begin_epoch(0);
  const std::int64_t n = steps.value_or(loader.size());
  for (std::int64_t step = 0; step < n; ++step) {
    std::optional<data::Batch> batch = loader.next();
    if (!batch) break;
    KILN_CHECK(batch->y.defined(), ValueError, "evaluate: the batches have no targets (y); evaluate needs them");
    callbacks.on_test_batch_begin(step);
    test_step(batch->inputs(), batch->targets(), batch->sample_weight);
    callbacks.on_test_batch_end(step, [this] { return metrics_result(); });
  }
  const Logs logs = metrics_result();
  callbacks.on_test_end(logs);
  return logs;
}

Logs Model::evaluate(data::DataLoader& loader, EvaluateOptions options) {
  require_compiled("evaluate");
  KILN_CHECK(loader.device() == device(), DeviceError, "evaluate: the loader delivers batches to ", loader.device(),
             " but the model is on ", device());
  build_from_loader(loader, "evaluate");
  refresh_step_cache();
  const int verbose = options.verbose.resolve();
  CallbackList callbacks = make_callbacks(options.callbacks, verbose, options.out, nullptr);
  callbacks.set_model(this);
  callbacks.set_params({.epochs = 1, .steps = options.steps.value_or(loader.size()), .verbose = verbose});
  return run_evaluate(loader, options.steps, callbacks);
}

Logs Model::evaluate(const Tensor& x, const Tensor& y, EvaluateOptions options) {
  return evaluate(std::vector<Tensor>{x}, std::vector<Tensor>{y}, std::move(options));
}

Logs Model::evaluate(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, EvaluateOptions options) {
  require_compiled("evaluate");
  check_io_counts("evaluate", xs.size(), ys.size());
  check_xy("evaluate", xs, ys, options.sample_weight);
  KILN_CHECK(options.batch_size >= 1, ValueError, "evaluate: batch_size must be >= 1, got ", options.batch_size);
  data::DataLoader loader(data::Dataset(xs, ys, options.sample_weight),
                          {.batch_size = options.batch_size, .shuffle = false, .seed = 0, .device = device(),
                           .prefetch = default_prefetch(device())});
  return evaluate(loader, std::move(options));
}

// ---- predict ----

std::vector<Tensor> Model::run_predict(data::DataLoader& loader, std::optional<std::int64_t> steps,
                                       CallbackList& callbacks) {
  NoGradGuard no_grad;
  callbacks.on_predict_begin();
  loader.begin_epoch(0);
  const std::int64_t n = steps.value_or(loader.size());
  std::vector<std::vector<Tensor>> parts;
  for (std::int64_t step = 0; step < n; ++step) {
    std::optional<data::Batch> batch = loader.next();
    if (!batch) break;
    callbacks.on_predict_batch_begin(step);
    std::vector<Tensor> outs = (*this)(batch->inputs(), /*training=*/false);
    parts.resize(outs.size());
    for (std::size_t i = 0; i < outs.size(); ++i) parts[i].push_back(std::move(outs[i]));
    callbacks.on_predict_batch_end(step);
  }
  KILN_CHECK(!parts.empty(), ValueError, "predict: the input produced no batches");
  std::vector<Tensor> result;
  for (auto& p : parts) result.push_back(p.size() == 1 ? p[0] : concat(p, 0));
  callbacks.on_predict_end();
  return result;
}

std::vector<Tensor> Model::predict_outputs(const Tensor& x, PredictOptions options) {
  return predict_outputs(std::vector<Tensor>{x}, std::move(options));
}

std::vector<Tensor> Model::predict_outputs(const std::vector<Tensor>& xs, PredictOptions options) {
  check_io_counts("predict", xs.size(), std::nullopt);
  check_xy("predict", xs, {}, Tensor());
  KILN_CHECK(options.batch_size >= 1, ValueError, "predict: batch_size must be >= 1, got ", options.batch_size);
  data::DataLoader loader(data::Dataset(xs, {}),
                          {.batch_size = options.batch_size, .shuffle = false, .seed = 0, .device = device(),
                           .prefetch = default_prefetch(device())});
  build_from_loader(loader, "predict");
  const int verbose = options.verbose.resolve();
  CallbackList callbacks = make_callbacks(options.callbacks, verbose, options.out, nullptr);
  callbacks.set_model(this);
  callbacks.set_params({.epochs = 1, .steps = options.steps.value_or(loader.size()), .verbose = verbose});
  std::vector<Tensor> outs = run_predict(loader, options.steps, callbacks);
  for (auto& t : outs) t = t.to(xs[0].device());
  return outs;
}

Tensor Model::predict(const Tensor& x, PredictOptions options) {
  return predict(std::vector<Tensor>{x}, std::move(options));
}

Tensor Model::predict(const std::vector<Tensor>& xs, PredictOptions options) {
  std::vector<Tensor> outs = predict_outputs(xs, std::move(options));
  KILN_CHECK(outs.size() == 1, ValueError, "predict: the model has ", outs.size(),
             " outputs; use predict_outputs for all of them");
  return outs[0];
}

Tensor Model::predict(data::DataLoader& loader, PredictOptions options) {
  KILN_CHECK(loader.device() == device(), DeviceError, "predict: the loader delivers batches to ", loader.device(),
             " but the model is on ", device());
  build_from_loader(loader, "predict");
  const int verbose = options.verbose.resolve();
  CallbackList callbacks = make_callbacks(options.callbacks, verbose, options.out, nullptr);
  callbacks.set_model(this);
  callbacks.set_params({.epochs = 1, .steps = options.steps.value_or(loader.size()), .verbose = verbose});
  std::vector<Tensor> outs = run_predict(loader, options.steps, callbacks);
  KILN_CHECK(outs.size() == 1, ValueError, "predict: the model has ", outs.size(), " outputs");
  return outs[0];
}

}  // namespace kiln
