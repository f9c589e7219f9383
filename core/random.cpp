#include "kiln/core/random.h"

#include "kiln/core/philox.h"

namespace kiln {

void Generator::manual_seed(std::uint64_t seed) {
  std::lock_guard lock(mutex_);
  seed_ = seed;
  offset_ = 0;
}

std::uint64_t Generator::seed() const {
  std::lock_guard lock(mutex_);
  return seed_;
}

std::uint64_t Generator::offset() const {
  std::lock_guard lock(mutex_);
  return offset_;
}

Generator::Draw Generator::reserve(std::int64_t n) {
  std::lock_guard lock(mutex_);
  const Draw d{seed_, offset_};
  offset_ += philox_blocks(static_cast<std::uint64_t>(n));
  return d;
}

Generator::Draw Generator::state() const {
  std::lock_guard lock(mutex_);
  return {seed_, offset_};
}

void Generator::set_state(Draw state) {
  std::lock_guard lock(mutex_);
  seed_ = state.seed;
  offset_ = state.offset;
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace kiln
