// kiln::Model: a layers::Network that trains, Keras' Model. kiln::Sequential is a Model
// built from a list of layers (or add()); kiln::Model(inputs, outputs) is the functional
// form.
//
//   auto model = kiln::Sequential({kiln::layers::Dense(64, {.activation = "relu", .input_shape = {32}}),
//                                  kiln::layers::Dense(10, {.activation = "softmax"})});
//   model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy",
//                  .metrics = {"accuracy"}});
//   kiln::History h = model.fit(x, y, {.epochs = 5, .batch_size = 32, .validation_split = 0.1});
//   kiln::Logs test = model.evaluate(x_test, y_test);
//   kiln::Tensor probs = model.predict(x_test);
//
// Note [The training step stays on the device]
// One step is: forward (training=true), the compiled loss (+ sample/class weights, loss
// weights) plus Network::regularization_loss(), backward, one fused optimizer update,
// Network::apply_constraints(), then the loss tracker and metrics accumulate on the device.
// Nothing in the step reads a value back to the host; the running loss and metrics are read
// only when a callback asks for batch logs (the progress bar a few times a second in
// verbose 1, never in verbose 2) and at the end of each epoch. See Note [Batch logs are
// read lazily] in callback.h.
//
// Logs names (Keras 3): "loss" (the total, regularization included), each metric by its
// name ("accuracy"), and for a model with several outputs "<output>_loss" and
// "<output>_<metric>" per output; validation adds "val_" to each.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/core/tensor.h"
#include "kiln/layers/network.h"
#include "kiln/training/callback.h"
#include "kiln/training/data/loader.h"
#include "kiln/training/history.h"
#include "kiln/training/losses.h"
#include "kiln/training/metrics.h"
#include "kiln/training/optimizers.h"

namespace kiln {

struct TensorFile;

// Keras' verbose argument: "auto", 0 (silent), 1 (progress bar), 2 (one line per epoch).
// "auto" is 1 when standard output is a terminal, else 2.
class Verbosity {
 public:
  Verbosity(int level);           // NOLINT: .verbose = 2
  Verbosity(const char* level);   // NOLINT: .verbose = "auto" (the only string accepted)
  int resolve() const;            // 0, 1 or 2
  bool is_auto() const { return level_ < 0; }

 private:
  int level_ = -1;
};

// What compile() takes for `loss`: one loss for every output, or one per output.
//   .loss = "mse"   .loss = kiln::losses::Huber({.delta = 2})   .loss = {"mse", "binary_crossentropy"}
class LossSpec {
 public:
  LossSpec() = default;
  LossSpec(losses::LossRef loss) : losses_{std::move(loss)}, shared_(true) {}  // NOLINT
  LossSpec(const char* name) : LossSpec(losses::LossRef(name)) {}             // NOLINT
  LossSpec(std::string name) : LossSpec(losses::LossRef(std::move(name))) {}  // NOLINT
  template <class L>
    requires std::derived_from<L, losses::Loss>
  LossSpec(std::shared_ptr<L> loss) : LossSpec(losses::LossRef(std::shared_ptr<losses::Loss>(std::move(loss)))) {}  // NOLINT
  template <class L>
    requires std::derived_from<std::remove_cvref_t<L>, losses::Loss> && (!std::is_lvalue_reference_v<L>)
  LossSpec(L&& loss) : LossSpec(losses::LossRef(std::forward<L>(loss))) {}  // NOLINT
  LossSpec(std::initializer_list<losses::LossRef> per_output) : losses_(per_output), shared_(false) {}
  // One loss per output, from a list built at run time (compile_from_config).
  explicit LossSpec(std::vector<losses::LossRef> per_output) : losses_(std::move(per_output)), shared_(false) {}

  bool empty() const { return losses_.empty(); }
  // One loss applied to every output (true), or one per output.
  bool shared() const { return shared_; }
  const std::vector<losses::LossRef>& losses() const { return losses_; }

 private:
  std::vector<losses::LossRef> losses_;
  bool shared_ = true;
};

struct CompileOptions {
  optimizers::OptimizerRef optimizer = "rmsprop";  // Keras' default
  LossSpec loss;                                   // required
  // Applied to every output. "accuracy"/"acc" resolve by the loss (metrics::get).
  std::vector<metrics::MetricRef> metrics;
  // Per output; the total loss is sum(loss_weights[i] * loss_i). Empty: all 1.
  std::vector<double> loss_weights;
};

// Validation data for fit: tensors (x, y[, sample_weight]), one per input and output for a
// multi-input / multi-output model ({x_a, x_b}, {y_a, y_b}), or a loader the caller owns.
struct ValidationData {
  ValidationData() = default;
  ValidationData(Tensor x, Tensor y, Tensor sample_weight_ = {})
      : xs{std::move(x)}, ys{std::move(y)}, sample_weight(std::move(sample_weight_)) {}
  ValidationData(std::vector<Tensor> xs_, std::vector<Tensor> ys_, Tensor sample_weight_ = {})
      : xs(std::move(xs_)), ys(std::move(ys_)), sample_weight(std::move(sample_weight_)) {}
  ValidationData(data::DataLoader& loader_) : loader(&loader_) {}  // NOLINT
  bool defined() const { return !xs.empty() || loader != nullptr; }

  std::vector<Tensor> xs, ys;
  Tensor sample_weight;
  data::DataLoader* loader = nullptr;
};

struct FitOptions {
  std::int64_t batch_size = 32;  // for tensor inputs (a loader has its own)
  int epochs = 1;
  Verbosity verbose = "auto";
  std::vector<CallbackPtr> callbacks;
  // The LAST fraction of x / y / sample_weight (before any shuffling) is held out for
  // validation (tensor inputs only); ignored when validation_data is given.
  double validation_split = 0.0;
  ValidationData validation_data;
  bool shuffle = true;  // tensor inputs: a new order each epoch
  // Class index -> weight, multiplied into the sample weights (single-output models; y
  // holds class indices, or one-hot rows whose argmax is the class).
  std::map<std::int64_t, double> class_weight;
  Tensor sample_weight;  // (N,) for tensor inputs
  int initial_epoch = 0;
  std::optional<std::int64_t> steps_per_epoch;   // batches per epoch (default: all)
  std::optional<std::int64_t> validation_steps;  // batches per validation (default: all)
  std::optional<std::int64_t> validation_batch_size;  // default: batch_size
  int validation_freq = 1;  // validate after every validation_freq-th epoch
  // kiln: the seed of the per-epoch shuffle; unset draws one from the default generator
  // (so kiln::manual_seed makes fit reproducible, as keras.utils.set_random_seed does).
  std::optional<std::uint64_t> seed;
  // kiln: batches the loader prepares ahead on a background thread (tensor inputs);
  // unset: 2 on a cuda device, 0 on cpu.
  std::optional<int> prefetch;
  std::ostream* out = nullptr;  // the progress bar's stream; std::cout when null
};

struct EvaluateOptions {
  std::int64_t batch_size = 32;
  Verbosity verbose = "auto";
  Tensor sample_weight;
  std::optional<std::int64_t> steps;
  std::vector<CallbackPtr> callbacks;
  std::ostream* out = nullptr;
};

struct PredictOptions {
  std::int64_t batch_size = 32;
  Verbosity verbose = "auto";
  std::optional<std::int64_t> steps;
  std::vector<CallbackPtr> callbacks;
  std::ostream* out = nullptr;
};

class Model : public layers::Network {
 public:
  // Functional: Model(input, output), Model({in_a, in_b}, {out}).
  Model(const layers::KerasTensor& input, const layers::KerasTensor& output,
        layers::NetworkOptions options = {});
  Model(std::vector<layers::KerasTensor> inputs, std::vector<layers::KerasTensor> outputs,
        layers::NetworkOptions options = {});
  ~Model() override;

  // ---- compile ----

  // Resolves the optimizer, the losses (one per output) and the metrics. ValueError for a
  // missing loss, unknown identifiers (listing the valid ones), or loss / loss_weights
  // lists whose length is not the number of outputs. Compiling again starts a new
  // optimizer state.
  void compile(CompileOptions options);
  bool compiled() const { return compiled_ != nullptr; }
  optimizers::Optimizer& optimizer() const;  // ValueError before compile
  // The metrics of output `output` (after compile).
  const std::vector<std::shared_ptr<metrics::Metric>>& metrics(std::size_t output = 0) const;

  // ---- fit / evaluate / predict ----

  // x (N, ...) and y (N, ...) tensors on any device (batches go to device()).
  History fit(const Tensor& x, const Tensor& y, FitOptions options = {});
  // A model with several inputs or outputs (Keras' fit([x_a, x_b], [y_a, y_b])): one
  // tensor per input and one per output, in the order of the model's inputs and outputs,
  // all with the same N samples. model.fit({x_a, x_b}, {y}, {.epochs = 3}).
  History fit(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, FitOptions options = {});
  // A dataset (in memory or a reader): batched, shuffled and validation-split as tensors
  // are; its own sample weights replace FitOptions::sample_weight.
  History fit(const data::Dataset& dataset, FitOptions options = {});
  // A loader the caller owns: each epoch takes its batches (x, y, sample_weight).
  // validation_split is not supported (Keras neither); batch_size and shuffle are the
  // loader's.
  History fit(data::DataLoader& loader, FitOptions options = {});
  Logs evaluate(const Tensor& x, const Tensor& y, EvaluateOptions options = {});
  Logs evaluate(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, EvaluateOptions options = {});
  Logs evaluate(data::DataLoader& loader, EvaluateOptions options = {});
  // Batched inference: no autograd graph is recorded, each batch's intermediates are
  // freed before the next; the outputs are concatenated on device() and returned on x's
  // device (a single-output model). predict_outputs gives every output.
  Tensor predict(const Tensor& x, PredictOptions options = {});
  std::vector<Tensor> predict_outputs(const Tensor& x, PredictOptions options = {});
  // One tensor per input (returned on xs[0]'s device).
  Tensor predict(const std::vector<Tensor>& xs, PredictOptions options = {});
  std::vector<Tensor> predict_outputs(const std::vector<Tensor>& xs, PredictOptions options = {});
  Tensor predict(data::DataLoader& loader, PredictOptions options = {});

  // One step on one batch; returns the running logs since the last reset_metrics()
  // (Keras 3's train_on_batch(..., return_dict=True); reads the device once).
  Logs train_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight = {},
                      const std::map<std::int64_t, double>& class_weight = {});
  Logs train_on_batch(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys,
                      const Tensor& sample_weight = {});
  Logs test_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight = {});
  Logs test_on_batch(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys,
                     const Tensor& sample_weight = {});
  std::vector<Tensor> predict_on_batch(const std::vector<Tensor>& xs);
  Tensor predict_on_batch(const Tensor& x);

  // The loss tracker and every metric back to zero.
  void reset_metrics();
  // {"loss", metrics...} from the accumulated states (reads the device).
  Logs metrics_result() const;

  // Set by callbacks (EarlyStopping, TerminateOnNaN) to end fit after the current batch.
  bool stop_training = false;
  // The last fit's History (Keras' model.history).
  History history;

  // ---- weights and saving ----

  // Device copies of weights() (no host round trip), and putting them back: what
  // EarlyStopping(restore_best_weights) keeps.
  std::vector<Tensor> weight_snapshot() const;
  void restore_weight_snapshot(const std::vector<Tensor>& snapshot);
  // The weights, as a safetensors file keyed by named_weights(); load checks keys and
  // shapes (ValueError / ShapeError naming the weight) before changing anything. Written
  // to a temporary file, synced and renamed.
  void save_weights(const std::string& path) const;
  void load_weights(const std::string& path);
  // Weights plus the architecture (Keras-style JSON config, in the file's metadata) plus,
  // when compiled, the compile config and the optimizer's state: everything
  // kiln::load_model (training/saving.h) needs to continue training. Atomic as
  // save_weights. See Note [The model file] in training/saving.h.
  void save(const std::string& path) const;
  // Keras' Model.from_config: a kiln::Sequential (class_name "Sequential") or a functional
  // Model ("Functional") rebuilt from get_config() output, its layers made by the layer
  // registry (new weights: load them after).
  static std::shared_ptr<Model> from_config(const nlohmann::json& config, std::string_view class_name);
  // Keras 3's get_compile_config / compile_from_config: {"optimizer": optimizers::serialize,
  // "loss": [losses::serialize per output], "loss_weights": [...], "metrics": [names]}
  // (null before compile), and compile() from it. Metrics come back by name (metrics::get);
  // a custom loss function or metric object cannot: ValueError saying so.
  nlohmann::json get_compile_config() const;
  void compile_from_config(const nlohmann::json& config);
  // (key, value) for every weight, in weights() order. Keys are "<layer class in snake
  // case>[_<ordinal>]/<variable>" ("dense/kernel", "dense_1/bias"): the same for every
  // instance of an architecture (see Note [Weight keys] in saving.cpp).
  std::vector<std::pair<std::string, Tensor>> named_weights() const;
  std::vector<std::string> weight_keys() const;
  // Assigns every weight from file entry prefix + name (ValueError for a missing or extra
  // entry, ShapeError for a shape mismatch, both naming the first weight that does not
  // fit; `source` names the file in messages). Entries under "optimizer/" are not weights.
  // Checks everything before changing anything.
  void assign_named_weights(const TensorFile& file, const std::string& prefix, const std::string& source);

  // BackupAndRestore: the epoch the next fit starts at (Keras' model._initial_epoch);
  // consumed by that fit.
  void set_resume_epoch(int epoch) { resume_epoch_ = epoch; }

 protected:
  // Sequential mode (kiln::Sequential).
  explicit Model(std::vector<layers::LayerRef> layers, layers::NetworkOptions options);

 private:
  struct Compiled;
  struct StepCache;

  std::size_t num_inputs() const;
  // ValueError unless xs tensors match the model's inputs (and ys its outputs, when given).
  void check_io_counts(const char* what, std::size_t xs, std::optional<std::size_t> ys) const;
  std::size_t num_outputs() const;
  Compiled& require_compiled(const char* what) const;
  void refresh_step_cache();
  // The steps on device batches (one tensor per input / output). Nothing reads the device.
  void train_step(const std::vector<Tensor>& xs, std::vector<Tensor> ys, const Tensor& sample_weight);
  void test_step(const std::vector<Tensor>& xs, std::vector<Tensor> ys, const Tensor& sample_weight);
  Tensor prepare_target(std::size_t output, const Tensor& y, const Tensor& y_pred) const;
  void check_targets(const char* what, const std::vector<Tensor>& outputs, const std::vector<Tensor>& ys) const;
  // The weighted total loss plus the regularization losses; converts ys in place to the
  // form the losses take; per-output (weighted) losses into *per_output when not null.
  Tensor compute_loss(const std::vector<Tensor>& outputs, std::vector<Tensor>& ys, const Tensor& sample_weight,
                      std::vector<Tensor>* per_output);
  void track(const std::vector<Tensor>& outputs, const std::vector<Tensor>& ys, const Tensor& sample_weight,
             const Tensor& total, const std::vector<Tensor>& per_output);

  // The loops (fit_loop.cpp).
  History run_fit(data::DataLoader& train, data::DataLoader* val, std::int64_t steps_per_epoch,
                  const FitOptions& options);
  Logs run_evaluate(data::DataLoader& loader, std::optional<std::int64_t> steps, CallbackList& callbacks);
  std::vector<Tensor> run_predict(data::DataLoader& loader, std::optional<std::int64_t> steps,
                                  CallbackList& callbacks);
  void build_from_loader(const data::DataLoader& loader, const char* what);

  std::unique_ptr<Compiled> compiled_;
  std::unique_ptr<StepCache> cache_;
  std::optional<int> resume_epoch_;
};

// Keras' Sequential model: a Model in sequential mode.
class Sequential : public Model {
 public:
  explicit Sequential(std::vector<layers::LayerRef> layers = {}, layers::NetworkOptions options = {});
};

}  // namespace kiln
