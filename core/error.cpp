// Error formatting: "<message>\n  (raised at core/tensor.cpp:42)".
#include "kiln/core/error.h"

#include <cstring>

namespace kiln {
namespace {

// Keep the path from the source root on, so messages do not leak build machine paths:
// the earliest "/<top folder>/" in the path wins ("tests/core/x.cpp", not "core/x.cpp").
const char* short_path(const char* file) {
  const char* best = nullptr;
  for (const char* top : {"/core/", "/kernels/", "/layers/", "/training/", "/tests/", "/bench/",
                          "/samples/"}) {
    const char* hit = std::strstr(file, top);
    if (hit && (!best || hit < best)) best = hit;
  }
  return best ? best + 1 : file;
}

std::string with_location(const std::string& message, const char* file, int line) {
  return message + "\n  (raised at " + short_path(file) + ":" + std::to_string(line) + ")";
}

}  // namespace

Error::Error(std::string message, const char* file, int line)
    : std::runtime_error(with_location(message, file, line)), message_(std::move(message)) {}

namespace detail {

void raise_internal(const char* condition, std::string message, const char* file, int line) {
  std::string full = "internal error, a bug in kiln (please report it): check '";
  full += condition;
  full += "' failed";
  if (!message.empty()) full += ": " + message;
  throw InternalError(std::move(full), file, line);
}

}  // namespace detail
}  // namespace kiln
