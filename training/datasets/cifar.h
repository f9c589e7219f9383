// CIFAR-10 and CIFAR-100 (Alex Krizhevsky, 2009) from their binary versions, as Keras'
// cifar10/cifar100.load_data return them: x uint8 (N, 32, 32, 3) channels-last.
// Differences from Keras, on purpose: y is int64 (N,) rather than uint8 (N, 1) (kiln's
// sparse losses take int32/int64 indices of y_pred's shape minus the class axis), and
// nothing is downloaded.
#pragma once

#include <string>

#include "kiln/training/datasets/splits.h"

namespace kiln::datasets {

namespace cifar10 {
// <dir> is the extracted cifar-10-batches-bin/ (data_batch_1.bin .. data_batch_5.bin,
// test_batch.bin) or a folder that contains it. Train: 50,000 examples; test: 10,000.
// IOError names the first missing file; FormatError for malformed ones.
TrainTest load_data(const std::string& dir);
}  // namespace cifar10

namespace cifar100 {
// <dir> is the extracted cifar-100-binary/ (train.bin, test.bin) or a folder that
// contains it. label_mode "fine" (100 classes, the default) or "coarse" (20).
TrainTest load_data(const std::string& dir, const std::string& label_mode = "fine");
}  // namespace cifar100

}  // namespace kiln::datasets
