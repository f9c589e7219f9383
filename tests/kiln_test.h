// Shared test helpers: skipping GPU tests with a reason, tolerance checks that report
// the worst element and its index.
#pragma once

#include <gtest/gtest.h>

#include "kiln/core/cuda/runtime.h"

// Skips the test when there is no cuda device, saying why (OFF build, no GPU, ...).
#define KILN_REQUIRE_CUDA()                                                       \
  do {                                                                            \
    if (!::kiln::cuda::is_available()) {                                          \
      GTEST_SKIP() << "no cuda device: " << ::kiln::cuda::unavailable_reason();   \
    }                                                                             \
  } while (0)

// Skips the test unless at least two cuda devices exist (SIM has 2 by default).
#define KILN_REQUIRE_TWO_DEVICES()                                                    \
  do {                                                                                \
    KILN_REQUIRE_CUDA();                                                              \
    if (::kiln::cuda::device_count() < 2) {                                           \
      GTEST_SKIP() << "needs 2 cuda devices, found " << ::kiln::cuda::device_count(); \
    }                                                                                 \
  } while (0)
