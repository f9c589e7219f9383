// Device: where a tensor lives, `cpu` or `cuda:N`. A small value type.
// default_device() is GPU-first: cuda:0 when a real GPU is present, else cpu; the
// KILN_DEVICE environment variable (cpu | cuda | cuda:N) overrides it. In SIM builds the
// default stays cpu: emulated devices are for proving kernels, not for speed.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

namespace kiln {

enum class DeviceType : std::uint8_t { cpu, cuda };

class Device {
 public:
  constexpr Device() = default;  // cpu
  constexpr Device(DeviceType type, int index) : type_(type), index_(type == DeviceType::cpu ? -1 : index) {}
  // "cpu", "cuda" (= cuda:0), "cuda:N"; throws ValueError on anything else.
  explicit Device(std::string_view text);

  static constexpr Device cpu() { return {}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::cuda, index}; }

  constexpr DeviceType type() const { return type_; }
  constexpr int index() const { return index_; }  // -1 for cpu
  constexpr bool is_cpu() const { return type_ == DeviceType::cpu; }
  constexpr bool is_cuda() const { return type_ == DeviceType::cuda; }
  std::string str() const;  // "cpu", "cuda:0"

  friend constexpr bool operator==(Device a, Device b) {
    return a.type_ == b.type_ && a.index_ == b.index_;
  }

 private:
  DeviceType type_ = DeviceType::cpu;
  int index_ = -1;
};

std::ostream& operator<<(std::ostream& os, Device d);

// Throws DeviceError naming `op` when `d` is a cuda device that does not exist
// (index out of range, or a build or machine without CUDA devices).
void check_device(Device d, const char* op);

// The device that factories use when none is given (see the header comment). Decided
// once per process; the choice is printed once to stderr unless KILN_QUIET=1.
Device default_device();

}  // namespace kiln
