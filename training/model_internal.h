// Model's private state (what compile resolves, what the step caches) and the helpers that
// model.cpp and fit_loop.cpp share. Not part of the public API.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/training/losses.h"
#include "kiln/training/metrics.h"
#include "kiln/training/model.h"
#include "kiln/training/optimizers.h"

namespace kiln {

// What compile() resolved, per output where it varies.
struct Model::Compiled {
  std::shared_ptr<optimizers::Optimizer> optimizer;
  std::vector<std::shared_ptr<losses::Loss>> losses;  // per output
  std::vector<bool> sparse_targets;                   // the loss takes class ids
  std::vector<double> loss_weights;                   // per output
  std::vector<std::vector<std::shared_ptr<metrics::Metric>>> metrics;  // per output
  std::vector<std::string> metric_log_names;  // flattened in metrics' order
  metrics::Mean loss_tracker{"loss"};         // the total loss, weighted by batch size
  std::vector<std::unique_ptr<metrics::Mean>> output_loss_trackers;  // "<output>_loss", several outputs only
};

// What the step needs from the model's weights, computed once per fit (and once per
// *_on_batch call) instead of once per step.
struct Model::StepCache {
  std::vector<Tensor> params;  // trainable_parameters()
  bool has_regularizers = false;
  bool has_constraints = false;
  bool valid = false;
};

// The class_weight map as a float32 table on `device` (ValueError when a class id between 0
// and the largest is missing, as Keras).
Tensor class_weight_table(const std::map<std::int64_t, double>& class_weight, Device device);
// Per-sample weights table[class of each row of y] (Keras' class_weight rule: one-hot rows
// by argmax, else rounded class ids). IndexError names a class outside the table.
Tensor class_sample_weight(const Tensor& y, const Tensor& table, const char* what);

}  // namespace kiln
