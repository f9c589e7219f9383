// Shared by the libFuzzer targets: run a parser on the input and accept exactly one kind
// of failure, kiln::Error (FormatError above all). Anything else escapes and libFuzzer
// reports it: a crash, a sanitizer report, std::bad_alloc from trusting a header, or an
// allocation over -malloc_limit_mb (see scripts/fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/training/data/bytes.h"

namespace kiln::fuzz {

inline data::ByteSpan span_of(const std::uint8_t* data, std::size_t size) { return {data, size}; }

// Decodes a parsed array fully, as the tensor readers do, so the payload bounds are used.
inline void decode(const data::RawArray& raw) {
  std::vector<std::uint8_t> out(raw.payload.size());
  data::decode_elements(raw, out.data(), "fuzz");
}

template <class F>
int run(F&& parse) {
  try {
    parse();
  } catch (const kiln::Error&) {
    // Rejected with kiln's error: the expected outcome for malformed input.
  }
  return 0;
}

}  // namespace kiln::fuzz
