// Decompression through zlib: gzip files (MNIST's .gz) and raw deflate streams (the
// members of a compressed .npz). Inflation never trusts a size written in the data: the
// output grows as bytes actually come out, up to a caller's limit.
#pragma once

#include <cstdint>
#include <string_view>

#include "kiln/training/data/bytes.h"

namespace kiln::data {

// Deflate cannot expand data by more than about 1032:1, so output beyond this many
// bytes per compressed byte (plus a small constant) is a malformed or hostile stream.
inline constexpr std::uint64_t kMaxDeflateRatio = 1032;

// True when `bytes` starts with the gzip magic (1f 8b).
bool is_gzip(ByteSpan bytes);

// Decompresses a gzip file (one or more concatenated members). FormatError naming
// `source` for a bad header, corrupt or truncated data, a CRC mismatch, or output past
// `max_bytes` (default: kMaxDeflateRatio times the input).
Bytes gunzip(ByteSpan compressed, std::string_view source, std::uint64_t max_bytes = 0);

// Inflates a raw deflate stream that must produce exactly `expected_bytes` (the size a
// zip directory declares, checked against kMaxDeflateRatio by the caller).
Bytes inflate_raw(ByteSpan compressed, std::uint64_t expected_bytes, std::string_view source,
                  std::string_view field);

// zlib's CRC-32 of `bytes` (zip member checksums).
std::uint32_t crc32_of(ByteSpan bytes);

}  // namespace kiln::data
