// Callback: Keras' hooks into fit / evaluate / predict, and CallbackList, which fans the
// hooks out to many callbacks. The Keras set (EarlyStopping, ModelCheckpoint, ...) is in
// callbacks.h; History in history.h; the progress bar in progbar.h.
//
// Note [Batch logs are read lazily]
// The running loss and metrics live on the model's device: turning them into the doubles
// of `Logs` makes the host wait for the device. So the loops ask the CallbackList, per
// batch, whether any callback wants that batch's logs (Callback::wants_batch_logs), and
// read them only then; otherwise batch hooks get an empty map. A subclass that reads batch
// logs keeps the default (true, always correct); the built-in callbacks that only act per
// epoch say false, so a fit with them alone never waits on the device between steps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Model;

// Keras' logs: metric name -> value ("loss", "accuracy", "val_loss", "lr", ...).
using Logs = std::map<std::string, double>;

// Which loop a batch hook belongs to.
enum class LoopMode { train, test, predict };

// Keras' callback.params.
struct CallbackParams {
  int epochs = 1;
  std::int64_t steps = -1;  // batches per epoch (-1 when unknown)
  int verbose = 1;
};

class Callback {
 public:
  virtual ~Callback() = default;

  // Set by fit / evaluate / predict before on_*_begin (a model may be null for a callback
  // used on its own).
  void set_model(Model* model) { model_ = model; }
  Model* model() const { return model_; }
  void set_params(const CallbackParams& params) { params_ = params; }
  const CallbackParams& params() const { return params_; }

  // See Note [Batch logs are read lazily]. `batch` is the index in the epoch (or in the
  // evaluation); asked once per batch, right before that batch's end hook.
  virtual bool wants_batch_logs(LoopMode mode, std::int64_t batch) const { return true; }

  virtual void on_train_begin(const Logs& logs) {}
  virtual void on_train_end(const Logs& logs) {}
  virtual void on_epoch_begin(int epoch, const Logs& logs) {}
  // logs: the epoch's training averages and, when there was validation, "val_" ones.
  // Mutable as in Keras: a callback may add entries (ReduceLROnPlateau and
  // LearningRateScheduler add "learning_rate") that later callbacks (History and the
  // progress bar come last) see.
  virtual void on_epoch_end(int epoch, Logs& logs) {}
  virtual void on_train_batch_begin(std::int64_t batch, const Logs& logs) {}
  // logs: running averages over the epoch so far (or empty, see the Note).
  virtual void on_train_batch_end(std::int64_t batch, const Logs& logs) {}
  virtual void on_test_begin(const Logs& logs) {}
  virtual void on_test_end(const Logs& logs) {}
  virtual void on_test_batch_begin(std::int64_t batch, const Logs& logs) {}
  virtual void on_test_batch_end(std::int64_t batch, const Logs& logs) {}
  virtual void on_predict_begin(const Logs& logs) {}
  virtual void on_predict_end(const Logs& logs) {}
  virtual void on_predict_batch_begin(std::int64_t batch, const Logs& logs) {}
  virtual void on_predict_batch_end(std::int64_t batch, const Logs& logs) {}

 private:
  Model* model_ = nullptr;
  CallbackParams params_;
};

using CallbackPtr = std::shared_ptr<Callback>;

// Keras' LambdaCallback: each hook is an optional function (an on_epoch_end taking
// const Logs& converts). Batch logs are read only for
// the batches of a phase whose batch-end function is set.
struct LambdaCallbackOptions {
  std::function<void(int, const Logs&)> on_epoch_begin;
  std::function<void(int, Logs&)> on_epoch_end;
  std::function<void(std::int64_t, const Logs&)> on_train_batch_begin;
  std::function<void(std::int64_t, const Logs&)> on_train_batch_end;
  std::function<void(const Logs&)> on_train_begin;
  std::function<void(const Logs&)> on_train_end;
  std::function<void(std::int64_t, const Logs&)> on_test_batch_end;
  std::function<void(std::int64_t, const Logs&)> on_predict_batch_end;
};

class LambdaCallback : public Callback {
 public:
  explicit LambdaCallback(LambdaCallbackOptions fns) : fns_(std::move(fns)) {}
  bool wants_batch_logs(LoopMode mode, std::int64_t) const override {
    if (mode == LoopMode::train) return static_cast<bool>(fns_.on_train_batch_end);
    if (mode == LoopMode::test) return static_cast<bool>(fns_.on_test_batch_end);
    return false;
  }
  void on_epoch_begin(int epoch, const Logs& logs) override { call(fns_.on_epoch_begin, epoch, logs); }
  void on_epoch_end(int epoch, Logs& logs) override { call(fns_.on_epoch_end, epoch, logs); }
  void on_train_batch_begin(std::int64_t b, const Logs& logs) override { call(fns_.on_train_batch_begin, b, logs); }
  void on_train_batch_end(std::int64_t b, const Logs& logs) override { call(fns_.on_train_batch_end, b, logs); }
  void on_train_begin(const Logs& logs) override { call(fns_.on_train_begin, logs); }
  void on_train_end(const Logs& logs) override { call(fns_.on_train_end, logs); }
  void on_test_batch_end(std::int64_t b, const Logs& logs) override { call(fns_.on_test_batch_end, b, logs); }
  void on_predict_batch_end(std::int64_t b, const Logs& logs) override { call(fns_.on_predict_batch_end, b, logs); }

 private:
  template <class F, class... A>
  static void call(const F& f, A&&... args) {
    if (f) f(std::forward<A>(args)...);
  }
  LambdaCallbackOptions fns_;
};

// Fans each hook out to its callbacks in order. Batch-end hooks take a function that
// produces the logs, called at most once per batch and only when some callback wants them.
class CallbackList {
 public:
  CallbackList() = default;
  explicit CallbackList(std::vector<CallbackPtr> callbacks) : callbacks_(std::move(callbacks)) {}

  void add(CallbackPtr cb) { callbacks_.push_back(std::move(cb)); }
  const std::vector<CallbackPtr>& callbacks() const { return callbacks_; }
  bool empty() const { return callbacks_.empty(); }

  void set_model(Model* model);
  void set_params(const CallbackParams& params);
  // Asks every callback (each is asked, so each can note what it answered).
  bool wants_batch_logs(LoopMode mode, std::int64_t batch) const;

  void on_train_begin(const Logs& logs = {});
  void on_train_end(const Logs& logs = {});
  void on_epoch_begin(int epoch, const Logs& logs = {});
  void on_epoch_end(int epoch, Logs& logs);
  void on_test_begin(const Logs& logs = {});
  void on_test_end(const Logs& logs);
  void on_predict_begin(const Logs& logs = {});
  void on_predict_end(const Logs& logs = {});

  // `logs` (a callable returning Logs) is called only when some callback wants this
  // batch's logs.
  template <class LogsFn> void on_train_batch_end(std::int64_t batch, LogsFn&& logs);
  template <class LogsFn> void on_test_batch_end(std::int64_t batch, LogsFn&& logs);
  void on_train_batch_begin(std::int64_t batch);
  void on_test_batch_begin(std::int64_t batch);
  void on_predict_batch_begin(std::int64_t batch);
  void on_predict_batch_end(std::int64_t batch);

 private:
  std::vector<CallbackPtr> callbacks_;
};

template <class LogsFn>
void CallbackList::on_train_batch_end(std::int64_t batch, LogsFn&& logs) {
  if (callbacks_.empty()) return;
  const Logs values = wants_batch_logs(LoopMode::train, batch) ? logs() : Logs{};
  for (const auto& cb : callbacks_) cb->on_train_batch_end(batch, values);
}

template <class LogsFn>
void CallbackList::on_test_batch_end(std::int64_t batch, LogsFn&& logs) {
  if (callbacks_.empty()) return;
  const Logs values = wants_batch_logs(LoopMode::test, batch) ? logs() : Logs{};
  for (const auto& cb : callbacks_) cb->on_test_batch_end(batch, values);
}

}  // namespace kiln
