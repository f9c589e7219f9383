// Helpers for the image-layer tests: seeded inputs and the key set of a config. (Gradient
// checks of whole layers: layer_gradcheck.h.)
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln/core/random.h"
#include "kiln/core/tensor.h"
#include "kiln/layers/layer.h"

namespace kiln::test {

inline constexpr Device kHost = Device::cpu();

// Values uniform in [lo, hi) from Philox(seed), of `dtype` on `device`.
inline Tensor seeded_uniform(const Shape& shape, std::uint64_t seed, DType dtype = DType::float32,
                             Device device = kHost, double lo = -1.0, double hi = 1.0) {
  Generator gen(seed);
  return uniform(shape, lo, hi, {.dtype = DType::float64, .device = kHost}, &gen).to(device, dtype);
}

// The keys of a JSON object, sorted.
inline std::set<std::string> keys_of(const nlohmann::json& object) {
  std::set<std::string> keys;
  for (const auto& [key, _] : object.items()) keys.insert(key);
  return keys;
}

// The base keys every layer config has, plus `extra`.
inline std::set<std::string> layer_keys(std::initializer_list<const char*> extra) {
  std::set<std::string> keys{"name", "trainable", "dtype"};
  for (const char* k : extra) keys.insert(k);
  return keys;
}

}  // namespace kiln::test
