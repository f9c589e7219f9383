// Settings of the SIMT emulator that tests and tools change at run time. Each one starts
// from its environment variable (read on first use of the runtime):
//   KILN_SIM_DEVICES=N          number of cuda devices (default 2)
//   KILN_SIM_MEMORY=256MiB      memory limit of each device (default: 80 GiB or half the
//                               host's memory, whichever is less)
//   KILN_SIM_THREADS=N          OS threads that run blocks, the launching thread included
//                               (default: std::thread::hardware_concurrency())
//   KILN_SIM_BLOCK_ORDER=forward|reverse|random[:seed]
//                               the order blocks are handed out in (default forward;
//                               random without a seed draws one and prints it)
// A malformed value makes every runtime call fail with cudaErrorInitializationError,
// whose cudaGetErrorString names the variable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln::sim {

enum class BlockOrder { forward, reverse, random };

struct BlockOrderSetting {
  BlockOrder order = BlockOrder::forward;
  std::uint64_t seed = 0;  // used by BlockOrder::random
};

// Memory limit per device, in bytes. Lowering it below what is in use only makes the
// next allocations fail.
void set_memory_limit(std::size_t bytes);
std::size_t memory_limit();
// Bytes of device memory allocated and not yet freed on `device`.
std::size_t memory_in_use(int device);

void set_block_order(BlockOrderSetting setting);
BlockOrderSetting block_order();

// OS threads running blocks, the launching thread included (>= 1). 1 runs every block
// on the launching thread, in block order: the deterministic setting for debugging.
void set_worker_threads(int count);
int worker_threads();

// Clears the sticky kernel-fault error of `device` so a test can go on. A real GPU needs
// a new process for that.
void reset_device_error(int device);

// Parsers behind the environment variables, exposed for tests.
// "256MiB", "2GiB", "64KiB", "1048576", "3GB" (decimal units: KB, MB, GB, TB).
std::optional<std::size_t> parse_byte_size(std::string_view text);
// "forward", "reverse", "random", "random:42".
std::optional<BlockOrderSetting> parse_block_order(std::string_view text);

}  // namespace kiln::sim
