// libFuzzer target: .npz archives (zip directory, zip64 fields, stored and deflated
// members, CRCs) and the .npy members inside them.
#include "fuzz_util.h"
#include "kiln/training/data/formats.h"
#include "kiln/training/data/zip.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return kiln::fuzz::run([&] {
    const kiln::data::ZipReader zip(kiln::fuzz::span_of(data, size), "fuzz.npz");
    kiln::data::Bytes scratch;
    for (const auto& entry : zip.entries()) {
      kiln::fuzz::run([&] { kiln::fuzz::decode(kiln::data::parse_npy(zip.read(entry, scratch), entry.name)); });
    }
  });
}
