// The two workloads the issue sets the emulator's speed by: a block reduction of 1M
// floats with warp shuffles, and a 256x256x256 shared-memory tiled SGEMM. Shared by the
// correctness test (gpu label, prints the times) and the timing test (slow label).
#pragma once

namespace kiln::sim::test {

// Sum of n floats at `in` (device memory): one launch of up to 1024 blocks of 256
// threads (4 elements per thread or more) that reduce with warp shuffles to one partial
// each, then one block that adds the partials.
float reduce_sum(const float* in, int n);

// c = a * b for row-major device matrices a (m x k), b (k x n), c (m x n); m, n and k
// multiples of 16 (16x16 tiles staged through shared memory).
void sgemm_tiled(const float* a, const float* b, float* c, int m, int n, int k);

}  // namespace kiln::sim::test
