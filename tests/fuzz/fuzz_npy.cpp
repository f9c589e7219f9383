// libFuzzer target: .npy files (header dict, descr, shape, payload).
#include "fuzz_util.h"
#include "kiln/training/data/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return kiln::fuzz::run([&] {
    const auto raw = kiln::data::parse_npy(kiln::fuzz::span_of(data, size), "fuzz.npy");
    kiln::fuzz::decode(raw);
    // What parses must write back to the same bytes' array (the writer's round trip).
    const auto again = kiln::data::parse_npy(kiln::data::npy_bytes(raw.dtype, raw.shape, raw.payload), "rt");
    if (!(again.shape == raw.shape) || again.dtype != raw.dtype || again.payload.size() != raw.payload.size()) {
      __builtin_trap();
    }
  });
}
