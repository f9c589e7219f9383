// Keras 3's progress bar; see progbar.h for the formats.
#include "kiln/training/progbar.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>

namespace kiln {
namespace {

constexpr const char* kBold = "\x1b[1m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kWhite = "\x1b[37m";
constexpr const char* kReset = "\x1b[0m";
constexpr const char* kBarChar = "\u2501";  // "━", one column wide

std::string printf_string(const char* format, auto... args) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), format, args...);
  return buf;
}

// "%Nd/%d" with N the digits of the target, so the counter keeps its width (" 7/63").
std::string step_count(std::int64_t current, std::int64_t target) {
  if (target < 0) return printf_string("%7lld/Unknown", static_cast<long long>(current));
  const int digits = target > 0 ? static_cast<int>(std::log10(static_cast<double>(target))) + 1 : 1;
  return printf_string("%*lld/%lld", digits, static_cast<long long>(current),
                       static_cast<long long>(target));
}

std::string repeat(const char* s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

double monotonic_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

Progbar::Progbar(ProgbarOptions options)
    : options_(std::move(options)),
      out_(options_.out != nullptr ? options_.out : &std::cout),
      dynamic_(options_.dynamic_display.value_or(out_ == &std::cout && stdout_is_terminal())),
      start_(now()),
      last_update_(-std::numeric_limits<double>::infinity()) {}

double Progbar::now() const { return options_.clock ? options_.clock() : monotonic_seconds(); }

std::string Progbar::format_time_per_unit(double seconds, const std::string& unit) {
  if (seconds >= 1 || seconds == 0) return printf_string(" %.0fs/%s", seconds, unit.c_str());
  if (seconds >= 1e-3) return printf_string(" %.0fms/%s", seconds * 1e3, unit.c_str());
  return printf_string(" %.0fus/%s", seconds * 1e6, unit.c_str());
}

std::string Progbar::format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds);  // Python's "%d" of a float truncates
  if (seconds > 3600) return printf_string("%lld:%02lld:%02lld", s / 3600, (s % 3600) / 60, s % 60);
  if (seconds > 60) return printf_string("%lld:%02lld", s / 60, s % 60);
  return printf_string("%llds", s);
}

std::string Progbar::format_value(double v) {
  if (std::isnan(v)) return " nan";
  if (std::isinf(v)) return v > 0 ? " inf" : " -inf";
  return std::abs(v) > 1e-3 ? printf_string(" %.4f", v) : printf_string(" %.4e", v);
}

// Keras' _estimate_step_duration: the first step (graph tracing, cuDNN autotuning, lazy
// builds) is slow, so from step 2 on the rate is measured from the end of step 1.
double Progbar::time_per_unit(std::int64_t current, double now) {
  if (current <= 0) return 0.0;
  double per_unit;
  if (time_after_first_step_ && current > 1) {
    per_unit = (now - *time_after_first_step_) / static_cast<double>(current - 1);
  } else {
    per_unit = (now - start_) / static_cast<double>(current);
  }
  if (current == 1) time_after_first_step_ = now;
  return per_unit;
}

bool Progbar::due(std::int64_t current, bool finalize) const {
  if (options_.verbose == 1) return finalize || now() - last_update_ >= options_.interval;
  if (options_.verbose == 2) return finalize;
  return false;
}

void Progbar::advance(std::int64_t current) {
  time_per_unit(current, now());
  seen_so_far_ = current;
}

void Progbar::update(std::int64_t current, const Values& values, std::optional<bool> finalize_opt) {
  const bool finalize = finalize_opt.value_or(options_.target >= 0 && current >= options_.target);
  const double t = now();
  const double per_unit = time_per_unit(current, t);
  seen_so_far_ = current;
  if (options_.verbose == 1) {
    if (t - last_update_ < options_.interval && !finalize) return;
    print_bar(current, values, finalize, t, per_unit);
  } else if (options_.verbose == 2 && finalize) {
    print_line(current, values, t, per_unit);
  }
  last_update_ = t;
}

void Progbar::print_bar(std::int64_t current, const Values& values, bool finalize, double t,
                        double per_unit) {
  std::string message = dynamic_ ? "\r" : "\n";
  std::size_t width = 0;  // printed columns, without escape codes
  const std::string count = step_count(current, options_.target);
  if (options_.target >= 0) {
    const double progress =
        options_.target > 0 ? static_cast<double>(current) / static_cast<double>(options_.target) : 1.0;
    const int filled = std::min(options_.width, static_cast<int>(options_.width * progress));
    const std::string done = repeat(kBarChar, filled);
    const std::string left = repeat(kBarChar, options_.width - filled);
    if (dynamic_) {
      message += std::string(kBold) + count + kReset + " ";
      if (filled > 0) message += std::string(kGreen) + done + kReset;
      message += std::string(kWhite) + left + kReset;
    } else {
      message += count + " " + done + left;
    }
    width += count.size() + 1 + static_cast<std::size_t>(options_.width);
  } else {
    message += count;
    width += count.size();
  }

  // While running: the ETA; when finished (or with no target): the elapsed time.
  std::string info;
  if (options_.target >= 0 && !finalize) {
    info = format_eta(per_unit * static_cast<double>(options_.target - current));
  } else {
    info = printf_string("%.0fs", t - start_);
  }
  message += " ";
  message += dynamic_ ? std::string(kBold) + info + kReset : info;
  std::string rest = format_time_per_unit(per_unit, options_.unit_name);
  for (const auto& [name, value] : values) rest += " - " + name + ":" + format_value(value);
  message += rest;
  width += 1 + info.size() + rest.size();

  if (dynamic_ && prev_total_width_ > width) message += std::string(prev_total_width_ - width, ' ');
  if (finalize) message += "\n";
  *out_ << message << std::flush;
  prev_total_width_ = width;
}

void Progbar::print_line(std::int64_t current, const Values& values, double t, double per_unit) {
  std::string line = step_count(current, options_.target);
  if (options_.target < 0) line = printf_string("%lld", static_cast<long long>(current));
  line += printf_string(" - %.0fs -", t - start_);
  line += format_time_per_unit(per_unit, options_.unit_name);
  for (const auto& [name, value] : values) line += " - " + name + ":" + format_value(value);
  *out_ << line << '\n' << std::flush;
}

// ---- ProgbarLogger ----

std::ostream& ProgbarLogger::out() const {
  return bar_options_.out != nullptr ? *bar_options_.out : std::cout;
}

void ProgbarLogger::start() {
  ProgbarOptions options = bar_options_;
  options.target = params().steps;
  options.verbose = params().verbose;
  bar_.emplace(std::move(options));
  seen_ = 0;
  redraw_pending_ = false;
}

void ProgbarLogger::on_epoch_begin(int epoch, const Logs&) {
  start();
  if (params().verbose > 0 && params().epochs > 1) {
    out() << "Epoch " << epoch + 1 << '/' << params().epochs << '\n' << std::flush;
  }
}

bool ProgbarLogger::wants_batch_logs(LoopMode mode, std::int64_t batch) const {
  redraw_pending_ = false;
  if (!bar_ || params().verbose != 1) return false;
  if (mode == LoopMode::predict || (mode == LoopMode::test && called_in_fit_)) return false;
  redraw_pending_ = bar_->due(batch + 1, false);
  return redraw_pending_;
}

// Keras updates the bar after every batch in verbose 1 only; verbose 2 prints at the end.
void ProgbarLogger::update(std::int64_t batch, const Logs& logs) {
  seen_ = batch + 1;
  if (!bar_ || params().verbose != 1) return;
  // Draw only with the values in hand: when the bar said "not due" for this batch, the
  // logs were not read (unless another callback wanted them).
  const bool have_values = redraw_pending_ || !logs.empty() || predicting_;
  redraw_pending_ = false;
  if (have_values && bar_->due(seen_, false)) {
    bar_->update(seen_, Progbar::Values(logs.begin(), logs.end()), false);
  } else {
    bar_->advance(seen_);
  }
}

void ProgbarLogger::finalize(const Logs& logs) {
  if (!bar_) return;
  if (bar_->target() < 0) bar_->set_target(seen_);
  bar_->update(bar_->target(), Progbar::Values(logs.begin(), logs.end()), true);
}

void ProgbarLogger::on_test_begin(const Logs&) {
  if (!called_in_fit_) start();
}

void ProgbarLogger::on_test_batch_end(std::int64_t batch, const Logs& logs) {
  if (!called_in_fit_) update(batch, logs);
}

void ProgbarLogger::on_test_end(const Logs& logs) {
  if (!called_in_fit_) finalize(logs);
}

void ProgbarLogger::on_predict_begin(const Logs&) {
  predicting_ = true;
  start();
}

void ProgbarLogger::on_predict_end(const Logs& logs) {
  finalize(logs);
  predicting_ = false;
}

}  // namespace kiln
