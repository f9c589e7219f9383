// Host-side batch transforms for DataLoader (LoaderOptions::transforms), applied to
// batch.x after gathering and before the copy to the device. Images are NHWC
// (B, H, W, C). Random ones draw per image from Philox keyed by the loader (see
// Note [Loader determinism] in loader.h), so they are reproducible with a seed.
//   RandomCrop   zero-pads H and W by `padding` on each side, then takes a random
//                (height, width) window per image: the CIFAR "pad 4, crop 32" recipe.
//   RandomFlip   flips each image with probability 1/2, Keras' modes "horizontal",
//                "vertical", "horizontal_and_vertical" (each axis drawn separately).
//   Normalize    (x - mean[c]) / std[c] per channel (one value: every channel), to float32.
//   Rescale      x * scale + offset, to float32 (Keras' Rescaling: scale = 1/255).
// Crop and flip keep x's dtype (uint8 images stay uint8 until Rescale/Normalize).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/training/data/loader.h"

namespace kiln::data {

struct RandomCropOptions {
  std::int64_t padding = 0;  // zeros added on each side of H and W before cropping
};
TransformPtr RandomCrop(std::int64_t height, std::int64_t width, RandomCropOptions options = {});

TransformPtr RandomFlip(const std::string& mode = "horizontal");

TransformPtr Normalize(std::vector<double> mean, std::vector<double> stddev);

TransformPtr Rescale(double scale, double offset = 0.0);

// The key a transform at `position` in the list gets for batch `batch` of `epoch`; a
// Philox mix of the four, so neighbouring batches and epochs draw unrelated numbers.
std::uint64_t transform_key(std::uint64_t seed, std::int64_t epoch, std::int64_t batch,
                            std::int64_t position);

}  // namespace kiln::data
