// Losses as fused ops, with Keras' names and semantics (per-sample values reduced with
// Reduction::mean by default, as Keras' sum_over_batch_size). y_pred holds probabilities
// unless from_logits. Each records its backward.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

enum class Reduction { none, sum, mean };

struct CrossEntropyOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  std::int64_t axis = -1;  // the class axis
  Reduction reduction = Reduction::mean;
};

// y_true: integer class indices (int32/int64) of y_pred's shape without the class axis.
// Indices outside [0, classes) raise IndexError naming the first bad one.
Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred,
                                       CrossEntropyOptions options = {});
// y_true: one-hot (or soft) targets of y_pred's shape.
Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred,
                                CrossEntropyOptions options = {});
Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred,
                           CrossEntropyOptions options = {});
Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred, Reduction reduction = Reduction::mean);
Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred, Reduction reduction = Reduction::mean);
Tensor huber(const Tensor& y_true, const Tensor& y_pred, double delta = 1.0,
             Reduction reduction = Reduction::mean);
Tensor kl_divergence(const Tensor& y_true, const Tensor& y_pred, Reduction reduction = Reduction::mean);

}  // namespace kiln
