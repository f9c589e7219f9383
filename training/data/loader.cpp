// DataLoader: per-epoch order, batch preparation (gather, transforms, device copy) and
// the prefetching thread. See Notes [Loader determinism] and [Loader prefetching] in
// loader.h.
#include "kiln/training/data/loader.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <thread>

#include "kiln/core/philox.h"
#include "kiln/training/data/staging.h"
#include "kiln/training/data/transforms.h"

namespace kiln::data {
namespace {

// The epoch's permutation: Fisher-Yates driven by Philox block i for step i, keyed by
// (seed, epoch) through transform_key with a batch index no batch has (-1).
std::vector<std::int64_t> make_order(std::int64_t n, bool shuffle, std::uint64_t seed,
                                     std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  if (!shuffle) return order;
  const std::uint64_t key = transform_key(seed, epoch, -1, -1);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const PhiloxBlock r = philox_block(key, 0, 4 * static_cast<std::uint64_t>(i));
    const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
    // j uniform in [0, i]: the high half of a 64x64-bit product (Lemire), bias < 2^-32.
    const auto j = static_cast<std::int64_t>(
        (static_cast<unsigned __int128>(bits) * static_cast<std::uint64_t>(i + 1)) >> 64);
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

struct Slot {
  std::int64_t batch = 0;
  std::optional<Batch> value;
  std::exception_ptr error;
};

}  // namespace

struct DataLoader::Impl {
  Dataset dataset;
  LoaderOptions options;
  Device device;
  std::int64_t batches = 0;

  // Guarded by mutex: the epoch the consumer is in and the worker's queue.
  std::mutex mutex;
  std::condition_variable work_cv;   // the worker waits for room or a new epoch
  std::condition_variable ready_cv;  // the consumer waits for a batch
  std::int64_t epoch = -1;
  std::uint64_t generation = 0;  // bumped by begin_epoch; stale batches are dropped
  std::shared_ptr<const std::vector<std::int64_t>> order;
  std::int64_t returned = 0;      // batches next() has handed out this epoch
  std::int64_t produce_next = 0;  // the batch the worker makes next
  std::deque<Slot> ready;
  bool stop = false;
  std::thread worker;

  Impl(Dataset ds, LoaderOptions opts) : dataset(std::move(ds)), options(std::move(opts)) {}

  // Gathers batch b of the epoch (order), runs the transforms, delivers to the device.
  Batch make_batch(const std::vector<std::int64_t>& ord, std::int64_t ep, std::int64_t b,
                   Stager& stager) const {
    const auto bs = options.batch_size;
    const auto begin = static_cast<std::size_t>(b * bs);
    const auto end = std::min(ord.size(), begin + static_cast<std::size_t>(bs));
    Batch batch = dataset.gather(std::span<const std::int64_t>(ord.data() + begin, end - begin));
    for (std::size_t t = 0; t < options.transforms.size(); ++t) {
      options.transforms[t]->apply(batch, transform_key(*options.seed, ep, b,
                                                        static_cast<std::int64_t>(t)));
    }
    return stager.deliver(std::move(batch));
  }

  void run_worker() {
    // Made on first use inside the try below: creating the copy stream can throw, and an
    // exception must reach the consumer, never escape this thread.
    std::optional<Stager> stager;
    std::unique_lock lock(mutex);
    while (!stop) {
      const bool room = static_cast<std::int64_t>(ready.size()) < options.prefetch;
      if (epoch < 0 || produce_next >= batches || !room) {
        work_cv.wait(lock);
        continue;
      }
      const std::uint64_t gen = generation;
      const auto ord = order;
      const std::int64_t ep = epoch;
      Slot slot{produce_next++, std::nullopt, nullptr};
      lock.unlock();
      try {
        if (!stager) stager.emplace(device, /*copy_stream=*/true);
        slot.value = make_batch(*ord, ep, slot.batch, *stager);
      } catch (...) {
        slot.error = std::current_exception();
      }
      lock.lock();
      if (gen == generation) {
        ready.push_back(std::move(slot));
        ready_cv.notify_all();
      }
    }
  }
};

DataLoader::DataLoader(Dataset dataset, LoaderOptions options)
    : impl_(std::make_unique<Impl>(std::move(dataset), std::move(options))) {
  LoaderOptions& o = impl_->options;
  KILN_CHECK(o.batch_size >= 1, ValueError, "DataLoader: batch_size must be >= 1, got ", o.batch_size);
  KILN_CHECK(o.prefetch >= 0, ValueError, "DataLoader: prefetch must be >= 0, got ", o.prefetch);
  for (std::size_t i = 0; i < o.transforms.size(); ++i) {
    KILN_CHECK(o.transforms[i] != nullptr, ValueError, "DataLoader: transform ", i, " is null");
  }
  if (!o.seed) o.seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  impl_->device = o.device.value_or(default_device());
  check_device(impl_->device, "DataLoader");
  o.device = impl_->device;
  const std::int64_t n = impl_->dataset.size();
  impl_->batches = o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
  if (o.prefetch > 0) impl_->worker = std::thread([impl = impl_.get()] { impl->run_worker(); });
}

DataLoader::~DataLoader() {
  if (!impl_) return;  // moved from
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->work_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

DataLoader::DataLoader(DataLoader&&) noexcept = default;

DataLoader& DataLoader::operator=(DataLoader&& other) noexcept {
  if (this != &other) {
    DataLoader doomed(std::move(*this));  // stops this loader's worker
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::int64_t DataLoader::size() const { return impl_->batches; }

void DataLoader::begin_epoch(std::int64_t epoch) {
  KILN_CHECK(epoch >= 0, ValueError, "DataLoader::begin_epoch: epoch must be >= 0, got ", epoch);
  auto order = std::make_shared<const std::vector<std::int64_t>>(
      make_order(impl_->dataset.size(), impl_->options.shuffle, *impl_->options.seed, epoch));
  std::deque<Slot> stale;  // destroyed outside the lock
  {
    std::lock_guard lock(impl_->mutex);
    ++impl_->generation;
    impl_->epoch = epoch;
    impl_->order = std::move(order);
    impl_->returned = 0;
    impl_->produce_next = 0;
    stale.swap(impl_->ready);
  }
  impl_->work_cv.notify_all();
}

std::optional<Batch> DataLoader::next() {
  Impl& s = *impl_;
  if (epoch() < 0) begin_epoch(0);
  if (s.options.prefetch == 0) {
    std::int64_t b = 0;
    {
      // Counted before it is made: a batch whose preparation throws is consumed, as
      // with prefetch, and the next call moves on to the batch after it.
      std::lock_guard lock(s.mutex);
      if (s.returned >= s.batches) return std::nullopt;
      b = s.returned++;
    }
    Stager stager(s.device, /*copy_stream=*/false);
    return s.make_batch(*s.order, s.epoch, b, stager);
  }
  Slot slot;
  {
    std::unique_lock lock(s.mutex);
    if (s.returned >= s.batches) return std::nullopt;
    s.ready_cv.wait(lock, [&] { return !s.ready.empty(); });
    slot = std::move(s.ready.front());
    s.ready.pop_front();
    KILN_ASSERT(slot.batch == s.returned, "DataLoader: batch ", slot.batch, " arrived as batch ",
                s.returned);
    ++s.returned;
  }
  s.work_cv.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  hand_over(*slot.value, s.device);
  return std::move(slot.value);
}

std::int64_t DataLoader::epoch() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->epoch;
}

std::int64_t DataLoader::batches_returned() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->returned;
}

const Dataset& DataLoader::dataset() const { return impl_->dataset; }
const LoaderOptions& DataLoader::options() const { return impl_->options; }
Device DataLoader::device() const { return impl_->device; }

std::vector<std::int64_t> DataLoader::epoch_order(std::int64_t epoch) const {
  return make_order(impl_->dataset.size(), impl_->options.shuffle, *impl_->options.seed, epoch);
}

}  // namespace kiln::data
