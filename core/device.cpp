#include "kiln/core/device.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <ostream>

#include "kiln/core/cuda/runtime.h"
#include "kiln/core/error.h"

namespace kiln {

Device::Device(std::string_view text) {
  if (text == "cpu") return;
  constexpr std::string_view kCuda = "cuda";
  KILN_CHECK(text.substr(0, kCuda.size()) == kCuda, ValueError, "Device: cannot parse '",
             text, "'; expected 'cpu', 'cuda' or 'cuda:N'");
  type_ = DeviceType::cuda;
  index_ = 0;
  std::string_view rest = text.substr(kCuda.size());
  if (rest.empty()) return;
  int index = -1;
  bool ok = rest.size() > 1 && rest.front() == ':';
  if (ok) {
    const char* last = rest.data() + rest.size();
    auto [ptr, ec] = std::from_chars(rest.data() + 1, last, index);
    ok = ec == std::errc() && ptr == last && index >= 0;
  }
  KILN_CHECK(ok, ValueError, "Device: cannot parse '", text,
             "'; expected 'cpu', 'cuda' or 'cuda:N' with N >= 0");
  index_ = index;
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index_);
}

std::ostream& operator<<(std::ostream& os, Device d) { return os << d.str(); }

void check_device(Device d, const char* op) {
  if (d.is_cpu()) return;
  const int count = cuda::device_count();
  KILN_CHECK(count > 0, DeviceError, op, ": ", d, " requested, but there are no cuda devices (",
             cuda::unavailable_reason(), ")");
  KILN_CHECK(d.index() >= 0 && d.index() < count, DeviceError, op, ": ", d,
             " requested, but only ", count, " cuda device", count == 1 ? "" : "s",
             " exist (cuda:0 .. cuda:", count - 1, ")");
}

namespace {

Device choose_default_device(std::string& why) {
  if (const char* env = std::getenv("KILN_DEVICE"); env && *env) {
    Device d{std::string_view(env)};
    check_device(d, "KILN_DEVICE");
    why = "from KILN_DEVICE";
    return d;
  }
  if (cuda::is_available() && !cuda::is_simulated()) {
    why = "GPU-first default";
    return Device::cuda(0);
  }
  why = cuda::is_simulated() ? "SIM build: emulated cuda devices are opt-in"
                             : cuda::unavailable_reason();
  return Device::cpu();
}

}  // namespace

Device default_device() {
  static const Device device = [] {
    std::string why;
    Device d = choose_default_device(why);
    const char* quiet = std::getenv("KILN_QUIET");
    if (!(quiet && *quiet && *quiet != '0')) {
      std::fprintf(stderr, "kiln: default device %s (%s)\n", d.str().c_str(), why.c_str());
    }
    return d;
  }();
  return device;
}

}  // namespace kiln
