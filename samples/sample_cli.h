// The command line every sample shares (CLI11): --help, --epochs, --batch-size, --device,
// --data, --save, --verbose, --seed, --json-out; and the timing record bench/train reads.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>

#include "kiln/kiln.h"

namespace kiln::samples {

struct Args {
  int epochs = 0;
  std::int64_t batch_size = 0;
  std::string device;     // empty: kiln's default (GPU-first)
  std::string data;       // dataset directory
  std::string save;       // where the trained model goes; empty: not saved
  int verbose = -1;       // -1: Keras' "auto"
  std::uint64_t seed = 0;
  std::string json_out;   // epoch times and final accuracy, for bench/train/compare.py
  double min_accuracy = 0;  // exit status 2 when the final accuracy is lower (tests use it)
};

// Adds the shared options to `app` with the sample's defaults in `args`.
inline void add_common_options(CLI::App& app, Args& args) {
  app.add_option("--epochs", args.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch-size", args.batch_size, "examples per step")->capture_default_str();
  app.add_option("--device", args.device, "cpu or cuda:N (default: cuda:0 when a GPU is present, else cpu)");
  app.add_option("--data", args.data, "dataset directory")->capture_default_str();
  app.add_option("--save", args.save, "save the trained model (weights + architecture) to this file");
  app.add_option("--verbose", args.verbose, "0 silent, 1 progress bar, 2 one line per epoch (default: auto)");
  app.add_option("--seed", args.seed, "random seed (weights, shuffling, dropout)")->capture_default_str();
  app.add_option("--json-out", args.json_out, "write epoch times and accuracy as JSON here");
  app.add_option("--min-accuracy", args.min_accuracy, "fail (exit 2) when the final accuracy is lower");
}

// The exit status: 0, or 2 (with a message) when `accuracy` is below --min-accuracy.
inline int accuracy_status(const Args& args, double accuracy) {
  if (accuracy >= args.min_accuracy) return 0;
  std::fprintf(stderr, "accuracy %.4f is below --min-accuracy %.4f\n", accuracy, args.min_accuracy);
  return 2;
}

inline Device chosen_device(const Args& args) {
  return args.device.empty() ? default_device() : Device(args.device);
}

inline Verbosity verbosity(const Args& args) {
  return args.verbose < 0 ? Verbosity("auto") : Verbosity(args.verbose);
}

// Records each epoch's wall time (the end of one epoch to the end of the next, as a user
// timing fit by epochs would see it, validation included).
class EpochTimer : public Callback {
 public:
  // Never asks for per-batch values, so timing adds no host synchronisation.
  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_epoch_begin(int, const Logs&) override { start_ = std::chrono::steady_clock::now(); }
  void on_epoch_end(int, Logs&) override {
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  std::vector<double> seconds;

 private:
  std::chrono::steady_clock::time_point start_;
};

// MNIST as the MNIST samples train on it: the full 60,000/10,000 split when `dir` holds
// the train-* files, else the bundled 10,000 test digits split 8,000 / 2,000 (Keras'
// validation_split=0.2). x as float32 (N, 28, 28, 1) in [0, 1]; y int64 class indices.
struct MnistSplits {
  Tensor x_train, y_train, x_val, y_val;
};
inline MnistSplits load_mnist(const std::string& dir, const Device& device) {
  auto data = datasets::mnist::load_data(dir);
  datasets::Split train = data.train, val = data.test;
  if (train.size() == 0) std::tie(train, val) = datasets::split_at(data.test, 8000);
  std::printf("MNIST from %s: %lld training and %lld validation digits, on %s\n", dir.c_str(),
              static_cast<long long>(train.size()), static_cast<long long>(val.size()),
              device.str().c_str());
  return {datasets::to_float_images(train.x), train.y, datasets::to_float_images(val.x), val.y};
}

// {"framework": "kiln", "model": ..., "device": ..., "epoch_seconds": [...], "val_accuracy": ...}
inline void write_json(const Args& args, const std::string& model, const Device& device,
                       const std::vector<double>& seconds, double val_accuracy) {
  if (args.json_out.empty()) return;
  std::ofstream f(args.json_out);
  f << "{\"framework\": \"kiln\", \"model\": \"" << model << "\", \"device\": \"" << device
    << "\", \"epoch_seconds\": [";
  for (std::size_t i = 0; i < seconds.size(); ++i) f << (i ? ", " : "") << seconds[i];
  f << "], \"val_accuracy\": " << val_accuracy << "}\n";
  KILN_CHECK(f.good(), IOError, "could not write ", args.json_out);
}

}  // namespace kiln::samples
