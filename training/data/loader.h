// Dataset, DataLoader and Batch: kiln's input pipeline (Keras' fit(x, y) batching, with
// the prefetching of a tf.data / torch DataLoader).
//
//   Dataset     N examples: in-memory host tensors x (N, ...), optional y (N, ...) and
//               sample weights (N,), or a Reader that gathers examples on demand.
//   DataLoader  cuts a Dataset into batches of batch_size in a per-epoch order (shuffled
//               with a seed, or in order), applies host transforms (augmentation,
//               normalization) and hands out Batches already on the target device.
//
// Note [Loader determinism]
// Everything random in an epoch is a pure function of (seed, epoch, batch index): the
// order of the examples is a Philox-driven Fisher-Yates permutation keyed by
// (seed, epoch), and batch b's transforms draw from Philox keyed by (seed, epoch, b).
// So the same seed gives the same batches whatever prefetch is, whichever thread
// prepares a batch and however the consumer's steps are timed.
//
// Note [Loader prefetching]
// With prefetch = k > 0 a background thread prepares up to k batches ahead of the
// consumer: it gathers the examples into host memory (pinned when the target is a cuda
// device), runs the transforms, and copies the batch to the device on a copy stream of
// its own, while the consumer's current step runs on its stream. A batch is handed out
// only once its copy has completed, and its device memory is marked as used on the
// consumer's current stream (record_stream), so the caching allocator never reuses it
// for the next batch while the step that reads it is still running. core's
// Tensor::copy_ synchronizes the copy stream after a host-to-device copy, so the thread,
// not the consumer, waits for each copy. With prefetch = 0 next() does the same work
// inline on the calling thread (no thread, no copy stream): the batches are identical.
// On a cpu target there is no pinned memory and no copy stream.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/device.h"
#include "kiln/core/tensor.h"

namespace kiln::data {

// One batch. x (B, ...) always; y (B, ...) and sample_weight (B,) are undefined when the
// dataset has none. A dataset with several inputs or targets (Keras' fit([x_a, x_b],
// [y_a, y_b])) puts the first in x / y and the others, in order, in more_x / more_y.
// Transforms see x and y only. From a DataLoader every tensor is contiguous and on its
// device.
struct Batch {
  Tensor x;
  Tensor y;
  Tensor sample_weight;
  std::vector<Tensor> more_x;
  std::vector<Tensor> more_y;

  // {x, more_x...}: the model's inputs, in order.
  std::vector<Tensor> inputs() const {
    std::vector<Tensor> out{x};
    out.insert(out.end(), more_x.begin(), more_x.end());
    return out;
  }
  // {y, more_y...}: the targets of the model's outputs; empty when y is undefined.
  std::vector<Tensor> targets() const {
    if (!y.defined()) return {};
    std::vector<Tensor> out{y};
    out.insert(out.end(), more_y.begin(), more_y.end());
    return out;
  }
  // Every defined tensor of the batch (for copying and stream bookkeeping).
  std::vector<Tensor*> tensors() {
    std::vector<Tensor*> out;
    for (Tensor* t : {&x, &y, &sample_weight}) {
      if (t->defined()) out.push_back(t);
    }
    for (auto* list : {&more_x, &more_y}) {
      for (Tensor& t : *list) out.push_back(&t);
    }
    return out;
  }
};

// A source of examples gathered by index: implement it for data that does not fit in
// memory or is decoded on demand (cifar_reader.h: CifarReader reads records from the binary
// files). gather() is called from the loader's background thread, one call at a time
// per loader, so it must not rely on thread-local state of the thread that made it.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual std::int64_t size() const = 0;  // number of examples
  virtual bool has_y() const { return true; }
  virtual bool has_sample_weight() const { return false; }
  // Examples `indices` (each in [0, size())) as contiguous host tensors with a leading
  // batch axis of indices.size(); y and sample_weight undefined when there are none.
  virtual Batch gather(std::span<const std::int64_t> indices) const = 0;
};

// N examples. Copies are cheap: they share the tensors (or the reader).
class Dataset {
 public:
  Dataset() = default;
  // In-memory: x (N, ...); y (N, ...) or undefined; sample_weight (N,) or undefined.
  // The tensors are moved to the host (cpu) and made contiguous once, here; batches are
  // gathered from them. ShapeError when the leading extents differ or sample_weight is
  // not 1-D; ValueError when x is undefined or 0-D.
  explicit Dataset(Tensor x, Tensor y = {}, Tensor sample_weight = {});
  // Several inputs and targets (a multi-input / multi-output model): xs (at least one) and
  // ys (none, or one per output), every tensor with the same N examples; batches carry
  // them as x + more_x and y + more_y. ShapeError names the first tensor whose leading
  // extent differs.
  Dataset(std::vector<Tensor> xs, std::vector<Tensor> ys, Tensor sample_weight = {});
  // Examples from a reader (not null).
  explicit Dataset(std::shared_ptr<const Reader> reader);

  std::int64_t size() const;  // number of examples N
  bool has_y() const;
  bool has_sample_weight() const;

  // Examples [start, stop) (Python rules for negative bounds, clamped), sharing the
  // tensors: Keras' validation_split takes the last fraction this way, before shuffling.
  Dataset slice(std::int64_t start, std::int64_t stop) const;

  // The examples `indices` as contiguous host tensors (batch axis first). IndexError
  // names the first index out of range.
  Batch gather(std::span<const std::int64_t> indices) const;

  // The in-memory tensors (undefined for a reader-backed dataset).
  const Tensor& x() const { return x_; }
  const Tensor& y() const { return y_; }
  const Tensor& sample_weight() const { return sample_weight_; }
  // The inputs and targets after the first (in-memory datasets; empty for one of each).
  const std::vector<Tensor>& more_x() const { return more_x_; }
  const std::vector<Tensor>& more_y() const { return more_y_; }

 private:
  Tensor x_, y_, sample_weight_;
  std::vector<Tensor> more_x_, more_y_;
  std::shared_ptr<const Reader> reader_;
  std::int64_t start_ = 0;  // a slice of the reader's examples: [start_, start_ + size_)
  std::int64_t size_ = 0;
};

// A host-side transform of a batch (augmentation, normalization), run by the loader
// after gathering and before the copy to the device. `rng_key` is unique to
// (seed, epoch, batch index) and to the transform's position in the list, so a transform
// draws its random numbers with philox_word(rng_key, 0, i) and is reproducible (see
// Note [Loader determinism]). apply() may replace batch.x (e.g. with a float32 copy).
class Transform {
 public:
  virtual ~Transform() = default;
  virtual void apply(Batch& batch, std::uint64_t rng_key) const = 0;
  virtual std::string name() const = 0;
};
using TransformPtr = std::shared_ptr<const Transform>;

// Keyword options: DataLoader(ds, {.batch_size = 128, .shuffle = true, .seed = 42}).
struct LoaderOptions {
  std::int64_t batch_size = 32;
  // Shuffle the examples each epoch (a new order per epoch, see Note [Loader determinism]).
  // Off by default, as in torch's DataLoader; Model::fit passes its own shuffle (Keras'
  // default there is true).
  bool shuffle = false;
  // The seed of the order and of the transforms; unset draws one from std::random_device
  // at construction (so runs differ). Set it for reproducible epochs.
  std::optional<std::uint64_t> seed;
  // Drop the last batch when it is smaller than batch_size.
  bool drop_last = false;
  // Where batches are delivered; unset means default_device().
  std::optional<Device> device;
  // Batches prepared ahead on a background thread (Note [Loader prefetching]); 0 = none.
  int prefetch = 2;
  // Applied to each batch on the host, in order (see transforms.h).
  std::vector<TransformPtr> transforms;
};

class DataLoader {
 public:
  // ValueError for batch_size < 1 or prefetch < 0; DeviceError for a missing device.
  explicit DataLoader(Dataset dataset, LoaderOptions options = {});
  ~DataLoader();  // stops and joins the background thread
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Batches per epoch: ceil(N / batch_size), or floor with drop_last.
  std::int64_t size() const;
  // Starts epoch `epoch` (>= 0): fixes its order and, with prefetch, starts preparing
  // its first batches. Abandons what is left of the previous epoch.
  void begin_epoch(std::int64_t epoch);
  // The next batch of the current epoch, on device(); nullopt once the epoch is done.
  // Calling it before any begin_epoch begins epoch 0. An exception thrown while a batch
  // was prepared (by a reader or a transform) is rethrown here, for that batch.
  std::optional<Batch> next();

  // The epoch begun last (-1 before any) and how many batches next() has returned in it.
  std::int64_t epoch() const;
  std::int64_t batches_returned() const;

  const Dataset& dataset() const;
  const LoaderOptions& options() const;  // seed filled in with the one in use
  Device device() const;

  // The order of the examples in `epoch` (all N of them; the batches take consecutive
  // runs of it). For tests and for fit's bookkeeping.
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::data
