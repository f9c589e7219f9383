// Test runner for every kiln suite: GoogleTest's main, plus one line saying which cuda
// devices the gpu-labelled tests will see (real, simulated, or none and why).
#include <gtest/gtest.h>

#include <cstdio>

#include "kiln/core/cuda/runtime.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
