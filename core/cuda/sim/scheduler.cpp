// Kernel launches: configuration checks, the block order, and the pool of OS threads
// that runs blocks.
//
// Note [Block order]
// Blocks are handed out in positions 0, 1, 2, ...; the order setting maps a position to
// a block: forward (linear block index = position), reverse, or random with a seed. A
// random order is a seeded Fisher-Yates permutation for grids up to 2^16 blocks and an
// affine bijection (position * stride + offset mod blocks, stride coprime to blocks) for
// larger ones, which needs no memory. With several pool threads, blocks also run
// concurrently; KILN_SIM_THREADS=1 runs them one at a time, in exactly this order.
#include "kiln/core/cuda/sim/scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <numeric>
#include <random>
#include <thread>

#include "kiln/core/cuda/sim/block.h"
#include "kiln/core/cuda/sim/state.h"

namespace kiln::sim {
namespace detail {
namespace {

constexpr std::uint64_t kMaxPermutedBlocks = 1 << 16;

std::string dims(dim3 d) { return thread_name_of(uint3{d.x, d.y, d.z}); }

class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool pool;
    return pool;
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // Runs every block of `grid`; the calling thread takes blocks too.
  void run(Grid& grid) {
    const int helpers = kiln::sim::worker_threads() - 1;
    const bool share = helpers > 0 && grid.blocks > 1;
    if (share) {
      std::lock_guard lock(mutex_);
      while (static_cast<int>(threads_.size()) < helpers) {
        const int index = static_cast<int>(threads_.size());
        threads_.emplace_back([this, index] { worker_loop(index); });
      }
      queue_.push_back(&grid);
    }
    if (share) cv_.notify_all();
    work_on(grid, helpers + 1);
    if (share) {
      std::unique_lock lock(mutex_);
      std::erase(queue_, &grid);
      cv_.wait(lock, [&] { return grid.users == 0 && grid.done == grid.blocks; });
    }
  }

 private:
  void worker_loop(int index) {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] {
        return stopping_ || (!queue_.empty() && index < kiln::sim::worker_threads() - 1);
      });
      if (stopping_) return;
      Grid* grid = queue_.front();
      ++grid->users;
      lock.unlock();
      work_on(*grid, kiln::sim::worker_threads());
      lock.lock();
      std::erase(queue_, grid);  // every block is taken once work_on returns
      --grid->users;
      cv_.notify_all();
    }
  }

  // Takes chunks of consecutive positions until none are left.
  void work_on(Grid& grid, int workers) {
    const std::uint64_t chunk =
        std::clamp<std::uint64_t>(grid.blocks / (static_cast<std::uint64_t>(workers) * 16), 1, 64);
    BlockRunner& runner = BlockRunner::of_this_thread();
    for (;;) {
      const std::uint64_t start = grid.next.fetch_add(chunk);
      if (start >= grid.blocks) return;
      const std::uint64_t end = std::min(start + chunk, grid.blocks);
      for (std::uint64_t i = start; i < end; ++i) {
        if (!grid.faulted()) runner.run(grid, grid.block_at(i));
      }
      if (grid.done.fetch_add(end - start) + (end - start) == grid.blocks) {
        std::lock_guard lock(mutex_);
        cv_.notify_all();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Grid*> queue_;  // grids with blocks left to hand out
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

cudaError_t check_configuration(const LaunchDesc& d, const std::string& name) {
  const std::string site = " (kernel '" + name + "' launched at " + d.file + ":" +
                           std::to_string(d.line) + ")";
  const unsigned b[3] = {d.block.x, d.block.y, d.block.z};
  const unsigned g[3] = {d.grid.x, d.grid.y, d.grid.z};
  const std::uint64_t threads = std::uint64_t{b[0]} * b[1] * b[2];
  for (int i = 0; i < 3; ++i) {
    if (b[i] == 0 || b[i] > kMaxBlockDim[i] || threads > kMaxThreadsPerBlock) {
      return fail(cudaErrorInvalidConfiguration,
                  "block " + dims(d.block) + " has " + std::to_string(threads) +
                      " threads; the limits are 1024 threads and (1024,1024,64)" + site);
    }
    if (g[i] == 0 || g[i] > kMaxGridDim[i]) {
      return fail(cudaErrorInvalidConfiguration,
                  "grid " + dims(d.grid) + " is empty or over the limits (2^31-1,65535,65535)" +
                      site);
    }
  }
  const std::size_t limit = max_dynamic_shared_bytes(d.kernel);
  if (d.shared_bytes > limit) {
    return fail(cudaErrorInvalidValue,
                std::to_string(d.shared_bytes) + " bytes of dynamic shared memory asked for; the "
                "kernel's limit is " + std::to_string(limit) + " (raise it with "
                "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n), up "
                "to " + std::to_string(kSharedBytesOptin) + ")" + site);
  }
  if (d.invoke == nullptr || d.kernel == nullptr) {
    return fail(cudaErrorInvalidDeviceFunction, "no kernel" + site);
  }
  return cudaSuccess;
}

}  // namespace

Grid::Grid(const LaunchDesc& d, BlockOrderSetting order)
    : desc(d), kernel_name(kernel_name_of(d.launch_text)), order_(order.order) {
  blocks = std::uint64_t{d.grid.x} * d.grid.y * d.grid.z;
  threads_per_block = d.block.x * d.block.y * d.block.z;
  if (order_ != BlockOrder::random || blocks < 2) return;
  std::mt19937_64 rng(order.seed);
  if (blocks <= kMaxPermutedBlocks) {
    permutation_.resize(blocks);
    std::iota(permutation_.begin(), permutation_.end(), 0u);
    for (std::uint64_t i = blocks - 1; i > 0; --i) {  // Fisher-Yates, portable
      std::swap(permutation_[i], permutation_[rng() % (i + 1)]);
    }
  } else {
    do {
      stride_ = 1 + rng() % (blocks - 1);
    } while (std::gcd(stride_, blocks) != 1);
    offset_ = rng() % blocks;
  }
}

uint3 Grid::block_at(std::uint64_t i) const {
  std::uint64_t linear = i;
  if (order_ == BlockOrder::reverse) {
    linear = blocks - 1 - i;
  } else if (!permutation_.empty()) {
    linear = permutation_[i];
  } else if (order_ == BlockOrder::random && blocks > 1) {
    linear = static_cast<std::uint64_t>(
        (static_cast<unsigned __int128>(i) * stride_ + offset_) % blocks);
  }
  const std::uint64_t gx = desc.grid.x, gy = desc.grid.y;
  return uint3{static_cast<unsigned>(linear % gx), static_cast<unsigned>((linear / gx) % gy),
               static_cast<unsigned>(linear / (gx * gy))};
}

void Grid::record_fault(cudaError_t code, const std::string& detail) {
  std::lock_guard lock(fault_mutex_);
  if (faulted_.load()) return;
  fault_code_ = code;
  fault_detail_ = detail;
  faulted_.store(true);
}

}  // namespace detail

std::string kernel_name_of(const char* launch_text) {
  std::string_view text(launch_text);
  int depth = 0;
  std::size_t end = 0;
  for (; end < text.size(); ++end) {
    const char c = text[end];
    if (c == '(' || c == '<' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == '>' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) break;
  }
  std::string_view name = text.substr(0, end);
  while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
  while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
  if (name.size() >= 2 && name.front() == '(' && name.back() == ')') {
    name = name.substr(1, name.size() - 2);
  }
  return std::string(name);
}

cudaError_t launch(const LaunchDesc& desc) {
  using namespace detail;
  int device = 0;
  if (const cudaError_t err = stream_device(desc.stream, &device); err != cudaSuccess) return err;
  if (const cudaError_t err = check_device(device); err != cudaSuccess) return err;
  const std::string name = kernel_name_of(desc.launch_text);
  if (device != current_device()) {
    return fail(cudaErrorInvalidResourceHandle,
                "kernel '" + name + "' launched on a stream of device " + std::to_string(device) +
                    " while device " + std::to_string(current_device()) + " is current");
  }
  if (const cudaError_t err = check_configuration(desc, name); err != cudaSuccess) return err;
  Grid grid(desc, block_order());
  WorkerPool::instance().run(grid);
  tsan_acquire(&grid.tsan_token);
  if (!grid.faulted()) return cudaSuccess;
  set_sticky_error(device, grid.fault_code(), grid.fault_detail());
  return fail(grid.fault_code(), grid.fault_detail());
}

}  // namespace kiln::sim
