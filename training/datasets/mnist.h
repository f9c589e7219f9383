// MNIST (Yann LeCun and Corinna Cortes; CC BY-SA 3.0) from its four IDX files, as Keras'
// keras.datasets.mnist.load_data returns it: x uint8 (N, 28, 28), y class indices.
// Differences from Keras, on purpose: y is int64 (N,) rather than uint8, because kiln's
// sparse_categorical_crossentropy takes int32/int64 indices; and nothing is downloaded.
#pragma once

#include <string>

#include "kiln/training/datasets/splits.h"

namespace kiln::datasets::mnist {

// Reads <dir>/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
// and t10k-labels-idx1-ubyte, each either raw or with a .gz suffix (raw preferred).
//
// When only the t10k-* files are there (the project bundles just the 10,000-image test
// set, in samples/data/mnist), train is EMPTY: x (0, 28, 28), y (0,), and test holds all
// 10,000. load_data never passes test images off as training data; a caller that wants
// to train on them splits them itself, e.g. split_at(data.test, 8000) (see
// has_training_set). IOError names the first missing file (the t10k pair is required,
// and train-* must be both present or both absent); FormatError for malformed files,
// images that are not (N, 28, 28) uint8, image and label counts that differ, or a label
// outside [0, 10).
TrainTest load_data(const std::string& dir);

// True when <dir> holds the train-* pair (raw or .gz).
bool has_training_set(const std::string& dir);

}  // namespace kiln::datasets::mnist
