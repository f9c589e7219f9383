// The CUDA runtime seam in a KILN_CUDA=OFF build: there are no cuda devices, and every
// operation that needs one raises DeviceError saying why.
#include "kiln/core/cuda/runtime.h"

#include "kiln/core/error.h"

namespace kiln::cuda {
namespace {

constexpr const char* kReason = "kiln was built with KILN_CUDA=OFF";

[[noreturn]] void no_cuda(const char* op) {
  KILN_THROW(DeviceError, op, ": no cuda devices (", kReason, ")");
}

}  // namespace

int device_count() { return 0; }
bool is_available() { return false; }
bool is_simulated() { return false; }
std::string unavailable_reason() { return kReason; }
int current_device() { no_cuda("current_device"); }
void set_device(int) { no_cuda("set_device"); }
void synchronize_device(int) { no_cuda("synchronize_device"); }
const DeviceProperties& properties(int) { no_cuda("properties"); }
MemoryInfo memory_info(int) { no_cuda("memory_info"); }

DeviceGuard::DeviceGuard(int) { no_cuda("DeviceGuard"); }
DeviceGuard::~DeviceGuard() = default;

struct Stream::Owned {};
Stream Stream::default_stream(int) { no_cuda("Stream::default_stream"); }
Stream Stream::create(int, bool) { no_cuda("Stream::create"); }
void* Stream::native() const { return nullptr; }
bool Stream::query() const { no_cuda("Stream::query"); }
void Stream::synchronize() const { no_cuda("Stream::synchronize"); }
void Stream::wait(const Event&) const { no_cuda("Stream::wait"); }
Stream current_stream(int) { no_cuda("current_stream"); }

StreamGuard::StreamGuard(const Stream& s) : previous_(s), device_guard_(s.device()) {}
StreamGuard::~StreamGuard() = default;

Event::Event(int, bool) { no_cuda("Event"); }
Event::~Event() = default;
Event::Event(Event&& other) noexcept : device_(other.device_), event_(other.event_) {}
Event& Event::operator=(Event&&) noexcept { return *this; }
void Event::record(const Stream&) { no_cuda("Event::record"); }
bool Event::query() const { no_cuda("Event::query"); }
void Event::synchronize() const { no_cuda("Event::synchronize"); }
float Event::elapsed_ms(const Event&, const Event&) { no_cuda("Event::elapsed_ms"); }

}  // namespace kiln::cuda
