// The monitor-driven Keras callbacks: EarlyStopping, ReduceLROnPlateau,
// LearningRateScheduler, CSVLogger, TerminateOnNaN, and the helpers they share (mode
// resolution). ModelCheckpoint and BackupAndRestore are in callbacks_checkpoint.cpp, the
// Python-style formatting in callbacks_format.cpp.
#include "kiln/training/callbacks.h"

#include <charconv>
#include <cmath>
#include <iostream>

#include "kiln/core/error.h"
#include "kiln/training/model.h"

namespace kiln::callbacks {
namespace {

std::ostream& stream_or_cout(std::ostream* out) { return out != nullptr ? *out : std::cout; }

std::string strip_val(const std::string& monitor) {
  return monitor.starts_with("val_") ? monitor.substr(4) : monitor;
}

bool contains_any(const std::string& s, std::initializer_list<const char*> parts) {
  for (const char* p : parts) {
    if (s.find(p) != std::string::npos) return true;
  }
  return false;
}

// Keras' warning when a monitored value is missing; printed once per callback instance.
void warn_missing(std::ostream& out, const char* who, const std::string& monitor, const Logs& logs) {
  out << "WARNING: " << who << " conditioned on metric `" << monitor
      << "` which is not available. Available metrics are: ";
  bool first = true;
  for (const auto& [name, value] : logs) {
    out << (first ? "" : ",") << name;
    first = false;
  }
  out << '\n';
}

Model& require_model(Model* model, const char* who) {
  KILN_CHECK(model != nullptr, ValueError, who, ": the callback has no model (fit sets it)");
  return *model;
}

}  // namespace

Direction resolve_mode(const std::string& mode, const std::string& monitor, const char* who) {
  if (mode == "min") return Direction::min;
  if (mode == "max") return Direction::max;
  KILN_CHECK(mode == "auto", ValueError, who, ": mode must be one of 'auto', 'min', 'max'; got '",
             mode, "'");
  const std::string name = strip_val(monitor);
  if (name == "loss" || name.ends_with("_loss")) return Direction::min;
  if (contains_any(name, {"acc", "auc", "precision", "recall", "f1", "fmeasure", "iou"})) {
    return Direction::max;
  }
  if (contains_any(name, {"error", "mse", "mae", "mape", "msle", "crossentropy", "divergence",
                          "kld", "hinge", "huber", "logcosh", "poisson"})) {
    return Direction::min;
  }
  KILN_THROW(ValueError, who, " received monitor=", monitor,
             " but kiln isn't able to automatically determine whether that metric should be "
             "maximized or minimized. Pass mode = \"max\" in order to use the highest value of "
             "the metric, or mode = \"min\" in order to use the lowest value.");
}

// ---- EarlyStopping ----

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  KILN_CHECK(options_.patience >= 0, ValueError, "EarlyStopping: patience must be >= 0, got ",
             options_.patience);
  options_.min_delta = std::abs(options_.min_delta);
  // Validates the mode string now; the direction itself is resolved at the first epoch end.
  if (options_.mode != "auto") direction_ = resolve_mode(options_.mode, options_.monitor, "EarlyStopping");
}

void EarlyStopping::on_train_begin(const Logs&) {
  // Instances can be reused across fit calls, as in Keras.
  wait_ = 0;
  stopped_epoch_ = 0;
  best_epoch_ = 0;
  best_.reset();
  best_weights_.clear();
}

bool EarlyStopping::is_improvement(double value, std::optional<double> reference) const {
  if (!reference) return true;
  // Keras: monitor_op(value - min_delta, reference) with min_delta negated for "min".
  return *direction_ == Direction::min ? value + options_.min_delta < *reference
                                       : value - options_.min_delta > *reference;
}

void EarlyStopping::on_epoch_end(int epoch, Logs& logs) {
  if (!direction_) direction_ = resolve_mode(options_.mode, options_.monitor, "EarlyStopping");
  const auto it = logs.find(options_.monitor);
  if (it == logs.end()) {
    warn_missing(stream_or_cout(options_.out), "Early stopping", options_.monitor, logs);
    return;
  }
  if (epoch < options_.start_from_epoch) return;
  const double current = it->second;
  Model& model = require_model(this->model(), "EarlyStopping");
  if (options_.restore_best_weights && best_weights_.empty()) {
    best_weights_ = model.weight_snapshot();  // the current weights are the best so far
    best_epoch_ = epoch;
  }
  ++wait_;
  if (is_improvement(current, best_)) {
    best_ = current;
    best_epoch_ = epoch;
    if (options_.restore_best_weights) best_weights_ = model.weight_snapshot();
    // Only restart the wait when the value beats both the baseline and the previous best.
    if (!options_.baseline || is_improvement(current, options_.baseline)) wait_ = 0;
    return;
  }
  if (wait_ >= options_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    model.stop_training = true;
  }
}

void EarlyStopping::on_train_end(const Logs&) {
  std::ostream& out = stream_or_cout(options_.out);
  if (stopped_epoch_ > 0 && options_.verbose > 0) {
    out << "Epoch " << stopped_epoch_ + 1 << ": early stopping\n";
  }
  if (options_.restore_best_weights && !best_weights_.empty()) {
    if (options_.verbose > 0) {
      out << "Restoring model weights from the end of the best epoch: " << best_epoch_ + 1 << ".\n";
    }
    require_model(model(), "EarlyStopping").restore_weight_snapshot(best_weights_);
  }
}

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options) : options_(std::move(options)) {
  KILN_CHECK(options_.factor < 1.0, ValueError,
             "ReduceLROnPlateau does not support a factor >= 1.0. Received factor=", options_.factor);
  KILN_CHECK(options_.mode == "auto" || options_.mode == "min" || options_.mode == "max", ValueError,
             "ReduceLROnPlateau: mode must be one of 'auto', 'min', 'max'; got '", options_.mode, "'");
}

void ReduceLROnPlateau::on_train_begin(const Logs&) {
  // Keras: "auto" maximises only monitors with "acc" in the name.
  const bool maximise = options_.mode == "max" ||
                        (options_.mode == "auto" && options_.monitor.find("acc") != std::string::npos);
  direction_ = maximise ? Direction::max : Direction::min;
  best_ = maximise ? -INFINITY : INFINITY;
  wait_ = 0;
  cooldown_counter_ = 0;
}

bool ReduceLROnPlateau::improved(double current) const {
  return direction_ == Direction::min ? current < best_ - options_.min_delta
                                      : current > best_ + options_.min_delta;
}

void ReduceLROnPlateau::on_epoch_end(int epoch, Logs& logs) {
  optimizers::Optimizer& opt = require_model(model(), "ReduceLROnPlateau").optimizer();
  logs["learning_rate"] = opt.learning_rate();
  const auto it = logs.find(options_.monitor);
  if (it == logs.end()) {
    warn_missing(stream_or_cout(options_.out), "Learning rate reduction", options_.monitor, logs);
    return;
  }
  const double current = it->second;
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (improved(current)) {
    best_ = current;
    wait_ = 0;
  } else if (cooldown_counter_ == 0) {
    if (++wait_ >= options_.patience) {
      const double old_lr = opt.learning_rate();
      // Keras compares against min_lr in float32, as the optimizer stores the rate.
      if (old_lr > static_cast<double>(static_cast<float>(options_.min_lr))) {
        const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
        opt.set_learning_rate(new_lr);
        if (options_.verbose > 0) {
          stream_or_cout(options_.out) << "\nEpoch " << epoch + 1
                                       << ": ReduceLROnPlateau reducing learning rate to "
                                       << python_float_repr(new_lr) << ".\n";
        }
        cooldown_counter_ = options_.cooldown;
        wait_ = 0;
      }
    }
  }
}

// ---- LearningRateScheduler ----

LearningRateScheduler::LearningRateScheduler(Schedule schedule, int verbose, std::ostream* out)
    : schedule_(std::move(schedule)), verbose_(verbose), out_(out) {
  KILN_CHECK(static_cast<bool>(schedule_), ValueError, "LearningRateScheduler: the schedule is empty");
}

void LearningRateScheduler::on_epoch_begin(int epoch, const Logs&) {
  optimizers::Optimizer& opt = require_model(model(), "LearningRateScheduler").optimizer();
  const double lr = schedule_(epoch, opt.learning_rate());
  KILN_CHECK(std::isfinite(lr), ValueError,
             "LearningRateScheduler: the schedule returned a non-finite learning rate (", lr,
             ") at epoch ", epoch);
  opt.set_learning_rate(lr);
  if (verbose_ > 0) {
    stream_or_cout(out_) << "\nEpoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to "
                         << python_float_repr(lr) << ".\n";
  }
}

void LearningRateScheduler::on_epoch_end(int, Logs& logs) {
  logs["learning_rate"] = require_model(model(), "LearningRateScheduler").optimizer().learning_rate();
}

// ---- CSVLogger ----

CSVLogger::CSVLogger(std::string filename, CSVLoggerOptions options)
    : filename_(std::move(filename)), options_(std::move(options)) {}

void CSVLogger::on_train_begin(const Logs&) {
  keys_.clear();
  write_header_ = true;
  if (options_.append) {
    // Keras writes the header only when the file is new or empty.
    std::ifstream existing(filename_);
    std::string first_line;
    if (existing && std::getline(existing, first_line) && !first_line.empty()) write_header_ = false;
  }
  file_.open(filename_, options_.append ? std::ios::app : std::ios::trunc);
  KILN_CHECK(file_.is_open(), IOError, "CSVLogger: cannot open '", filename_, "' for writing");
}

void CSVLogger::on_epoch_end(int epoch, Logs& logs) {
  if (keys_.empty()) {
    for (const auto& [name, value] : logs) keys_.push_back(name);  // sorted: Logs is ordered
    if (write_header_) {
      file_ << "epoch";
      for (const auto& k : keys_) file_ << options_.separator << k;
      file_ << '\n';
    }
  }
  file_ << epoch;
  for (const auto& k : keys_) {
    const auto it = logs.find(k);
    file_ << options_.separator << (it == logs.end() ? std::string("NA") : python_float_repr(it->second));
  }
  file_ << '\n';
  file_.flush();
  KILN_CHECK(file_.good(), IOError, "CSVLogger: writing '", filename_, "' failed");
}

void CSVLogger::on_train_end(const Logs&) {
  if (file_.is_open()) file_.close();
}

// ---- TerminateOnNaN ----

void TerminateOnNaN::on_train_batch_end(std::int64_t batch, const Logs& logs) {
  const auto it = logs.find("loss");
  if (it == logs.end() || std::isfinite(it->second)) return;
  stream_or_cout(out_) << "Batch " << batch << ": Invalid loss, terminating training\n" << std::flush;
  stopped_batch_ = batch;
  stopped_epoch_ = epoch_;
  require_model(model(), "TerminateOnNaN").stop_training = true;
}

}  // namespace kiln::callbacks
