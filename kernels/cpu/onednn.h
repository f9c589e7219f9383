// What the oneDNN-backed cpu kernels (conv.cpp, matmul.cpp) share: the process's one engine
// and stream, the oneDNN data type of a kiln dtype, and the bounded LRU that keeps their
// primitives (making one, i.e. choosing and JIT-compiling a kernel, costs far more than a
// small problem).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "kiln/core/dtype.h"
#include "kiln/core/error.h"

namespace kiln::cpu::onednn {

// One engine and one stream for the process: oneDNN's cpu stream holds no state between
// primitives (execution is synchronous, threaded by OpenMP), so every caller shares it.
inline dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
inline dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

// The oneDNN type of a float32/bfloat16/float16 dtype; `what` names the caller ("cpu gemm").
inline dnnl::memory::data_type data_type(DType dtype, const char* what) {
  switch (dtype) {
    case DType::float32: return dnnl::memory::data_type::f32;
    case DType::bfloat16: return dnnl::memory::data_type::bf16;
    case DType::float16: return dnnl::memory::data_type::f16;
    default: KILN_THROW(InternalError, what, ": no oneDNN type for ", dtype);
  }
}

// A thread-safe LRU of at most kCapacity entries. A value is optional: a layout this
// oneDNN cannot compute is cached as "none" so the caller's fallback is chosen without
// asking oneDNN again.
template <class Key, class Value, class Hash>
class LruCache {
 public:
  static constexpr std::size_t kCapacity = 256;

  // The cached value for `key`, made by `make` on a miss.
  template <class Make>
  std::optional<Value> get(const Key& key, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      entries_.splice(entries_.begin(), entries_, it->second);
      return it->second->second;
    }
    entries_.emplace_front(key, make());
    index_[key] = entries_.begin();
    if (entries_.size() > kCapacity) {
      index_.erase(entries_.back().first);
      entries_.pop_back();
    }
    return entries_.front().second;
  }

 private:
  using Entry = std::pair<Key, std::optional<Value>>;
  std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<Key, typename std::list<Entry>::iterator, Hash> index_;
};

}  // namespace kiln::cpu::onednn
