// Keras' built-in callbacks, with Keras 3's arguments, defaults and behaviour:
// EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, LearningRateScheduler, CSVLogger,
// TerminateOnNaN, BackupAndRestore. (History is in history.h, the progress bar's
// ProgbarLogger in progbar.h, LambdaCallback and the base in callback.h.)
// Messages a callback prints (verbose > 0, TerminateOnNaN always) go to `out`, std::cout
// when null, as Keras prints to standard output.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/training/callback.h"

namespace kiln::callbacks {

// Keras' "min" / "max" / "auto" for a monitored quantity. auto resolves by the name:
// losses and errors are minimised; accuracy-like metrics (the metric's direction, or
// "acc"/"auc"/"precision"/"recall" in its name) are maximised.
enum class Direction { min, max };
Direction resolve_mode(const std::string& mode, const std::string& monitor, const char* who);

// Python's str.format for named fields, as ModelCheckpoint formats its filepath:
// "ckpt-{epoch:02d}-{val_loss:.2f}.weights" with epoch and the logs. Supports {{ }},
// width, fill/alignment, sign, zero padding, precision and the d, f, e, g, % types.
// ValueError naming the field and the available keys when a field is missing.
std::string format_path(const std::string& pattern, const Logs& values);
// Python's repr of a float: shortest round trip, "1.0", "0.001", "1e-05", "nan", "inf".
std::string python_float_repr(double v);

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  int verbose = 0;
  std::string mode = "auto";
  std::optional<double> baseline;
  bool restore_best_weights = false;
  int start_from_epoch = 0;
  std::ostream* out = nullptr;
};

class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(const Logs& logs) override;

  int stopped_epoch() const { return stopped_epoch_; }  // 0 when it did not stop training
  int best_epoch() const { return best_epoch_; }
  std::optional<double> best() const { return best_; }
  int wait() const { return wait_; }

 private:
  bool is_improvement(double value, std::optional<double> reference) const;
  EarlyStoppingOptions options_;
  std::optional<Direction> direction_;  // resolved at the first epoch end (metrics known)
  int wait_ = 0;
  int stopped_epoch_ = 0;
  int best_epoch_ = 0;
  std::optional<double> best_;
  std::vector<Tensor> best_weights_;  // device copies: no host round trip
};

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  int verbose = 0;
  bool save_best_only = false;
  bool save_weights_only = false;
  std::string mode = "auto";
  // "epoch", or every N training batches (N > 0).
  std::variant<std::string, std::int64_t> save_freq = std::string("epoch");
  std::optional<double> initial_value_threshold;
  std::ostream* out = nullptr;
};

// Saves the model (Model::save) or its weights (Model::save_weights) to
// format_path(filepath, {epoch (1-based), batch (1-based, batch saving), logs...}).
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string filepath, ModelCheckpointOptions options = {});
  bool wants_batch_logs(LoopMode mode, std::int64_t batch) const override;
  void on_train_batch_end(std::int64_t batch, const Logs& logs) override;
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;

  std::optional<double> best() const { return best_; }
  const std::string& last_saved() const { return last_saved_; }  // "" before any save

 private:
  bool batch_due(std::int64_t batch) const;
  void save(int epoch, std::optional<std::int64_t> batch, const Logs& logs);
  std::string filepath_;
  ModelCheckpointOptions options_;
  Direction direction_;
  std::optional<double> best_;
  std::int64_t save_every_ = 0;  // batches; 0: per epoch
  std::int64_t batches_seen_ = 0;
  int current_epoch_ = 0;
  std::string last_saved_;
};

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  double factor = 0.1;
  int patience = 10;
  int verbose = 0;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int cooldown = 0;
  double min_lr = 0.0;
  std::ostream* out = nullptr;
};

// Multiplies the optimizer's learning rate by `factor` after `patience` epochs without
// improvement; adds "learning_rate" to the epoch logs (so History records it).
class ReduceLROnPlateau : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  bool improved(double current) const;
  ReduceLROnPlateauOptions options_;
  Direction direction_ = Direction::min;
  double best_ = 0.0;
  int wait_ = 0;
  int cooldown_counter_ = 0;
};

// Sets the learning rate at each epoch begin to schedule(epoch, current_lr); adds
// "learning_rate" to the epoch logs.
class LearningRateScheduler : public Callback {
 public:
  using Schedule = std::function<double(int epoch, double lr)>;
  explicit LearningRateScheduler(Schedule schedule, int verbose = 0, std::ostream* out = nullptr);
  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  Schedule schedule_;
  int verbose_;
  std::ostream* out_;
};

struct CSVLoggerOptions {
  std::string separator = ",";
  bool append = false;
};

// One row per epoch: "epoch" then the logs' keys in sorted order (fixed by the first
// epoch); values as Python's repr of a float; "NA" for a key an epoch lacks.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string filename, CSVLoggerOptions options = {});
  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(const Logs& logs) override;

 private:
  std::string filename_;
  CSVLoggerOptions options_;
  std::ofstream file_;
  std::vector<std::string> keys_;
  bool write_header_ = true;
};

// Stops training at the first training batch whose running loss is NaN or infinite and
// prints "Batch <b>: Invalid loss, terminating training" (Keras' message). It reads the
// loss after every batch, so with it in the list each step waits for the device.
class TerminateOnNaN : public Callback {
 public:
  explicit TerminateOnNaN(std::ostream* out = nullptr) : out_(out) {}
  void on_train_begin(const Logs& logs) override { stopped_batch_.reset(); }
  bool wants_batch_logs(LoopMode mode, std::int64_t) const override { return mode == LoopMode::train; }
  void on_train_batch_end(std::int64_t batch, const Logs& logs) override;

  // The batch (index in its epoch) and epoch at which it stopped training, if it did.
  std::optional<std::int64_t> stopped_batch() const { return stopped_batch_; }
  std::optional<int> stopped_epoch() const { return stopped_epoch_; }
  void on_epoch_begin(int epoch, const Logs& logs) override { epoch_ = epoch; }

 private:
  std::ostream* out_;
  int epoch_ = 0;
  std::optional<std::int64_t> stopped_batch_;
  std::optional<int> stopped_epoch_;
};

struct BackupAndRestoreOptions {
  bool delete_checkpoint = true;  // remove the backup when training ends normally
};

// Fault tolerance. At each epoch end it writes the model's weights, the optimizer's state,
// the number of finished epochs and the random state (the default generator's and each
// seeded layer's, e.g. Dropout(rate, {.seed})) to <backup_dir>/latest.backup (one file,
// written to a temporary name, synced and renamed, so a crash never leaves a torn backup).
// At train begin it restores them when the file exists, and fit resumes at the next
// epoch; an interrupted run then ends with the same weights as an uninterrupted one,
// bitwise, dropout masks included, when both runs start from the same kiln::manual_seed
// (which fixes fit's shuffle seed). When training ends without an exception it deletes
// the backup.
class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::filesystem::path backup_dir, BackupAndRestoreOptions options = {});
  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(const Logs& logs) override;

  std::filesystem::path backup_path() const { return dir_ / "latest.backup"; }
  // The epoch training resumed at in the last on_train_begin (0 when nothing was restored).
  int restored_epoch() const { return restored_epoch_; }

 private:
  std::filesystem::path dir_;
  BackupAndRestoreOptions options_;
  int restored_epoch_ = 0;
};

}  // namespace kiln::callbacks
