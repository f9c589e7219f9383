// Fake device and host backends for the allocators' policy tests and benchmarks: no GPU,
// fake addresses that never overlap (and are never dereferenced), a configurable memory
// limit past which malloc returns nullptr, and fake streams and events whose completion
// the test controls (complete_all_events, complete_events_on).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "kiln/core/cuda/device_backend.h"
#include "kiln/core/cuda/pinned_allocator.h"

namespace kiln::testing {

// A fake stream handle; fake_stream(0) is the default stream (nullptr), like CUDA's.
inline void* fake_stream(int i) {
  return i == 0 ? nullptr : reinterpret_cast<void*>(std::uintptr_t{0x5000} + 16u * i);
}

// Events as the tests see them: created unrecorded (a query says complete, as
// cudaEventQuery does), incomplete once recorded, complete when the test says so.
class FakeEvents {
 public:
  void* create() {
    const std::uintptr_t id = ++last_id_;
    events_[id] = Event{};
    return reinterpret_cast<void*>(id);
  }
  void record(void* event, void* stream) {
    Event& e = at(event);
    e.stream = stream;
    e.complete = false;
    ++records_;
  }
  bool query(void* event) { return at(event).complete; }
  void destroy(void* event) {
    if (events_.erase(reinterpret_cast<std::uintptr_t>(event)) != 1) {
      throw std::logic_error("FakeEvents: destroying an unknown event");
    }
  }

  void complete_all() {
    for (auto& [id, e] : events_) e.complete = true;
  }
  void complete_on(void* stream) {
    for (auto& [id, e] : events_) {
      if (e.stream == stream) e.complete = true;
    }
  }
  std::size_t live() const { return events_.size(); }
  std::size_t incomplete() const {
    std::size_t n = 0;
    for (const auto& [id, e] : events_) n += e.complete ? 0 : 1;
    return n;
  }
  std::size_t incomplete_on(void* stream) const {
    std::size_t n = 0;
    for (const auto& [id, e] : events_) n += (!e.complete && e.stream == stream) ? 1 : 0;
    return n;
  }
  std::int64_t records() const { return records_; }

 private:
  struct Event {
    void* stream = nullptr;
    bool complete = true;
  };
  Event& at(void* event) {
    auto it = events_.find(reinterpret_cast<std::uintptr_t>(event));
    if (it == events_.end()) throw std::logic_error("FakeEvents: unknown event");
    return it->second;
  }
  std::unordered_map<std::uintptr_t, Event> events_;
  std::uintptr_t last_id_ = 0;
  std::int64_t records_ = 0;
};

// Fake memory: a bump allocator over an address range nothing else uses, with a gap
// after every buffer so that no two buffers are ever adjacent either.
class FakeMemory {
 public:
  explicit FakeMemory(std::size_t limit, std::uintptr_t base) : limit_(limit), next_(base) {}

  void* malloc(std::size_t bytes) {
    ++malloc_calls;
    if (bytes > limit_ || live_bytes_ > limit_ - bytes) return nullptr;
    void* p = reinterpret_cast<void*>(next_);
    next_ += (bytes + kGap - 1) / kGap * kGap + kGap;
    live_.emplace(p, bytes);
    live_bytes_ += bytes;
    malloc_sizes.push_back(bytes);
    ++mallocs;
    return p;
  }
  void free(void* p) {
    auto it = live_.find(p);
    if (it == live_.end()) throw std::logic_error("FakeMemory: freeing an unknown pointer");
    live_bytes_ -= it->second;
    live_.erase(it);
    ++frees;
  }
  std::size_t limit() const { return limit_; }
  void set_limit(std::size_t limit) { limit_ = limit; }
  std::size_t live_bytes() const { return live_bytes_; }
  std::size_t live_buffers() const { return live_.size(); }

  std::int64_t malloc_calls = 0;  // including the ones that failed
  std::int64_t mallocs = 0;       // successful
  std::int64_t frees = 0;
  std::vector<std::size_t> malloc_sizes;  // of the successful ones, in order

 private:
  static constexpr std::uintptr_t kGap = 1 << 16;
  std::size_t limit_;
  std::uintptr_t next_;
  std::size_t live_bytes_ = 0;
  std::unordered_map<void*, std::size_t> live_;
};

// A fake cuda device for CachingAllocator. synchronize() completes every event, as a
// device-wide synchronization does.
class FakeBackend final : public cuda::DeviceBackend {
 public:
  explicit FakeBackend(std::size_t memory_limit = std::size_t{1} << 40)
      : memory(memory_limit, std::uintptr_t{1} << 44) {}

  void* malloc(std::size_t bytes) override { return memory.malloc(bytes); }
  void free(void* ptr) override { memory.free(ptr); }
  void* create_event() override { return events.create(); }
  void record_event(void* event, void* stream) override { events.record(event, stream); }
  bool query_event(void* event) override { return events.query(event); }
  void destroy_event(void* event) override { events.destroy(event); }
  void synchronize() override {
    ++synchronizations;
    events.complete_all();
  }
  std::size_t total_memory() override { return memory.limit(); }

  void complete_all_events() { events.complete_all(); }
  void complete_events_on(void* stream) { events.complete_on(stream); }

  FakeMemory memory;
  FakeEvents events;
  std::int64_t synchronizations = 0;
};

// A fake pinned-host backend for PinnedAllocator; events remember the device too.
class FakeHostBackend final : public cuda::HostBackend {
 public:
  explicit FakeHostBackend(std::size_t memory_limit = std::size_t{1} << 40)
      : memory(memory_limit, std::uintptr_t{3} << 44) {}

  void* host_alloc(std::size_t bytes) override { return memory.malloc(bytes); }
  void host_free(void* ptr) override { memory.free(ptr); }
  int current_device() override { return device; }
  void* record_event(void* stream, int on_device) override {
    void* e = events.create();
    events.record(e, stream);
    event_devices.push_back(on_device);
    return e;
  }
  bool query_event(void* event) override { return events.query(event); }
  void destroy_event(void* event) override { events.destroy(event); }

  FakeMemory memory;
  FakeEvents events;
  int device = 0;                  // what current_device() answers
  std::vector<int> event_devices;  // the device of each recorded event, in order
};

}  // namespace kiln::testing
