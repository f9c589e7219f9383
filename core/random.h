// Generator: a Philox4x32-10 stream (seed, offset). Each random fill of n elements takes
// the next ceil(n / 4) Philox blocks, so the same seed gives the same numbers on cpu and
// cuda (see core/philox.h for the element-to-counter convention).
#pragma once

#include <cstdint>
#include <mutex>

namespace kiln {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}

  void manual_seed(std::uint64_t seed);
  std::uint64_t seed() const;
  std::uint64_t offset() const;  // in Philox blocks (4 words each)

  struct Draw {
    std::uint64_t seed;
    std::uint64_t offset;
  };
  // Reserves the blocks for `n` elements and returns where they start.
  Draw reserve(std::int64_t n);
  // {seed, offset}: all that decides the next draws. Checkpoints save it to resume a run
  // bitwise (BackupAndRestore); set_state puts it back.
  Draw state() const;
  void set_state(Draw state);

 private:
  mutable std::mutex mutex_;
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

// The process-wide generator used when a factory is given none (seed 0 until reseeded).
Generator& default_generator();
// Reseeds the default generator (like torch.manual_seed / keras.utils.set_random_seed).
void manual_seed(std::uint64_t seed);

}  // namespace kiln
