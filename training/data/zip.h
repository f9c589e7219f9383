// The part of the ZIP format that .npz needs (PKWARE APPNOTE 6.3): reading an archive's
// central directory (zip64 included: numpy.savez forces zip64 local headers) and its
// stored or deflated members, and writing an archive of stored members, as numpy.savez
// does. Every offset and size in the directory is checked against the archive before it
// is used, and a member's declared size against its compressed size before inflation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/training/data/bytes.h"

namespace kiln::data {

struct ZipEntry {
  std::string name;
  std::uint16_t method = 0;  // 0 stored, 8 deflated (others are rejected)
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;         // uncompressed
  std::uint64_t data_offset = 0;  // of the member's bytes (past its local header)
};

class ZipReader {
 public:
  // Parses and validates the directory and every local header. FormatError naming
  // `source` and the field for anything malformed; the archive must outlive the reader.
  ZipReader(ByteSpan archive, std::string_view source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The member's bytes, CRC-checked: a view into the archive for a stored member, or
  // the inflated bytes placed in `scratch` for a deflated one.
  ByteSpan read(const ZipEntry& entry, Bytes& scratch) const;

 private:
  ByteSpan archive_;
  std::string source_;
  std::vector<ZipEntry> entries_;
};

// A zip archive holding `members` (name, bytes) stored uncompressed, in order.
// ValueError for a member of 4 GiB or more, or more than 65535 members (zip64 writing
// is not implemented), and for duplicate or empty names.
Bytes write_zip(const std::vector<std::pair<std::string, Bytes>>& members);

}  // namespace kiln::data
