// Progbar: Keras 3's progress bar (keras/src/utils/progbar.py), testable with an injected
// clock and output stream.
//   verbose 1, on a terminal:  "\r 63/63 ━━━━━━━━━━━━━━━━━━━━ 2s 25ms/step - loss: 0.6312"
//                              redrawn in place at most every `interval` seconds, with the
//                              ETA while running and the elapsed time when finished.
//   verbose 1, not a terminal: the same line, one per redraw (Keras' behaviour).
//   verbose 2:                 one line when finished: "63/63 - 2s - 25ms/step - loss: 0.6312".
// The values shown are what the caller passes (fit passes running averages over the epoch),
// in the order given. The caller asks due() first so that it reads values from the device
// only when a line will actually be printed.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/training/callback.h"

namespace kiln {

// True when standard output is a terminal (what Keras' "auto" verbosity and the dynamic,
// redrawn-in-place display depend on).
bool stdout_is_terminal();

// Seconds since an arbitrary start, monotonic: the default clock of Progbar.
double monotonic_seconds();

struct ProgbarOptions {
  std::int64_t target = -1;       // total steps; -1 when unknown ("   12/Unknown")
  int width = 20;                 // characters of the bar
  int verbose = 1;                // 1: bar; 2: one line when finished; 0: nothing
  double interval = 0.05;         // minimum seconds between redraws (verbose 1)
  std::string unit_name = "step";
  std::ostream* out = nullptr;    // std::cout when null
  // Redraw in place with "\r" and colour the bar. Default: out is std::cout on a terminal.
  std::optional<bool> dynamic_display;
  std::function<double()> clock;  // seconds; monotonic_seconds when empty
};

class Progbar {
 public:
  using Values = std::vector<std::pair<std::string, double>>;

  explicit Progbar(ProgbarOptions options = {});

  // Whether update(current, ..., finalize) would print anything now. Cheap (one clock read).
  bool due(std::int64_t current, bool finalize) const;
  // Records that `current` steps are done and prints if due. finalize defaults to
  // current >= target (never when the target is unknown).
  void update(std::int64_t current, const Values& values, std::optional<bool> finalize = {});
  // Records progress without printing: keeps the per-step time estimate right when the
  // caller skips update() because due() said no.
  void advance(std::int64_t current);

  std::int64_t target() const { return options_.target; }
  void set_target(std::int64_t target) { options_.target = target; }

  // " 25ms/step", " 2s/step", " 310us/step" (Keras' _format_time).
  static std::string format_time_per_unit(double seconds, const std::string& unit);
  // "2s", "1:05", "1:01:05" (Keras' ETA format).
  static std::string format_eta(double seconds);
  // " 0.6312" when |v| > 1e-3, else " 1.2340e-04" (Keras' metric format).
  static std::string format_value(double v);

 private:
  double now() const;
  double time_per_unit(std::int64_t current, double now);
  void print_bar(std::int64_t current, const Values& values, bool finalize, double now,
                 double per_unit);
  void print_line(std::int64_t current, const Values& values, double now, double per_unit);

  ProgbarOptions options_;
  std::ostream* out_;
  bool dynamic_;
  double start_;
  double last_update_ = 0.0;
  std::optional<double> time_after_first_step_;
  std::int64_t seen_so_far_ = 0;
  std::size_t prev_total_width_ = 0;
};

// Keras' ProgbarLogger: the progress bar as a callback, which fit / evaluate / predict
// append to the callbacks when verbose > 0. In fit: "Epoch 3/10" (when epochs > 1), a bar
// per epoch finished with the epoch's logs; the validation run inside fit shows no bar of
// its own. Asked for batch logs only when the bar will redraw (at most every `interval`
// seconds in verbose 1; never in verbose 2), see Note [Batch logs are read lazily].
class ProgbarLogger : public Callback {
 public:
  // `bar` gives the stream, clock and display; its target and verbose come from params().
  explicit ProgbarLogger(ProgbarOptions bar = {}) : bar_options_(std::move(bar)) {}

  bool wants_batch_logs(LoopMode mode, std::int64_t batch) const override;
  void on_train_begin(const Logs& logs) override { called_in_fit_ = true; }
  void on_train_end(const Logs& logs) override { called_in_fit_ = false; }
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_train_batch_end(std::int64_t batch, const Logs& logs) override { update(batch, logs); }
  void on_epoch_end(int epoch, Logs& logs) override { finalize(logs); }
  void on_test_begin(const Logs& logs) override;
  void on_test_batch_end(std::int64_t batch, const Logs& logs) override;
  void on_test_end(const Logs& logs) override;
  void on_predict_begin(const Logs& logs) override;
  void on_predict_batch_end(std::int64_t batch, const Logs& logs) override { update(batch, logs); }
  void on_predict_end(const Logs& logs) override;

 private:
  void start();
  void update(std::int64_t batch, const Logs& logs);
  void finalize(const Logs& logs);
  std::ostream& out() const;

  ProgbarOptions bar_options_;
  std::optional<Progbar> bar_;
  std::int64_t seen_ = 0;
  bool called_in_fit_ = false;
  bool predicting_ = false;
  mutable bool redraw_pending_ = false;  // what wants_batch_logs answered for this batch
};

}  // namespace kiln
