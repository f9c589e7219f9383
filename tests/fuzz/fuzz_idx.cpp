// libFuzzer target: IDX files, raw or gzip-compressed (read_idx's path without the file).
#include "fuzz_util.h"
#include "kiln/training/data/formats.h"
#include "kiln/training/data/gzip.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return kiln::fuzz::run([&] {
    const auto input = kiln::fuzz::span_of(data, size);
    if (kiln::data::is_gzip(input)) {
      const kiln::data::Bytes raw = kiln::data::gunzip(input, "fuzz.gz");
      kiln::fuzz::decode(kiln::data::parse_idx(raw, "fuzz.gz"));
    } else {
      kiln::fuzz::decode(kiln::data::parse_idx(input, "fuzz"));
    }
  });
}
