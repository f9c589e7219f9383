// The shapes Keras' dataset loaders return, and the helpers the samples use on them.
//   auto data = kiln::datasets::mnist::load_data(dir);
//   auto x_train = kiln::datasets::to_float_images(data.train.x);  // (N, 28, 28, 1) in [0, 1]
#pragma once

#include <cstdint>
#include <utility>

#include "kiln/core/tensor.h"

namespace kiln::datasets {

// One split: x (N, ...) images, y (N,) int64 class indices.
struct Split {
  Tensor x;
  Tensor y;
  std::int64_t size() const { return x.defined() ? x.size(0) : 0; }
};

// Keras' ((x_train, y_train), (x_test, y_test)).
struct TrainTest {
  Split train;
  Split test;
};

// (first `n` examples, the rest), sharing storage with `s`; n is clamped to [0, N].
std::pair<Split, Split> split_at(const Split& s, std::int64_t n);

// The usual preprocessing of uint8 images: float32 / 255, and a channel axis appended
// when x is (N, H, W) (grayscale MNIST becomes (N, H, W, 1)); (N, H, W, C) keeps its
// shape. Returns a new cpu tensor. TypeError unless x is uint8.
Tensor to_float_images(const Tensor& x);

}  // namespace kiln::datasets
