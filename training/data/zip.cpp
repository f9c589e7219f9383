// ZIP reading (central directory, zip64, stored and deflated members) and writing
// (stored members). Record layouts from PKWARE's APPNOTE 6.3, sections 4.3.7-4.3.16.
#include "kiln/training/data/zip.h"

#include <algorithm>
#include <set>

#include "kiln/training/data/gzip.h"

namespace kiln::data {
namespace {

constexpr std::uint32_t kLocalSig = 0x04034b50;
constexpr std::uint32_t kCentralSig = 0x02014b50;
constexpr std::uint32_t kEndSig = 0x06054b50;
constexpr std::uint32_t kEnd64Sig = 0x06064b50;
constexpr std::uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr std::size_t kEndSize = 22;
constexpr std::size_t kEnd64LocatorSize = 20;
constexpr std::size_t kLocalSize = 30;
constexpr std::size_t kCentralSize = 46;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint32_t kMax32 = 0xffffffffu;
constexpr std::uint16_t kMax16 = 0xffff;

struct Directory {
  std::uint64_t entries = 0;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;
  std::uint64_t end = 0;  // where the directory must end (the first end record)
};

// The end of central directory record: the last one whose comment runs exactly to the
// end of the archive (a comment may itself contain the signature).
std::size_t find_end_record(ByteSpan a, std::string_view source) {
  KILN_FORMAT_CHECK(a.size() >= kEndSize, source, "end of central directory",
                    "missing: the archive has only ", a.size(), " bytes");
  const std::size_t lowest = a.size() >= kEndSize + kMax16 ? a.size() - kEndSize - kMax16 : 0;
  for (std::size_t pos = a.size() - kEndSize + 1; pos-- > lowest;) {
    if (load_u32_le(a.data() + pos) == kEndSig &&
        pos + kEndSize + load_u16_le(a.data() + pos + 20) == a.size()) {
      return pos;
    }
  }
  KILN_FORMAT_FAIL(source, "end of central directory", "signature not found: not a zip archive");
}

Directory read_directory(ByteSpan a, std::string_view source) {
  const std::size_t end_pos = find_end_record(a, source);
  ByteCursor end(a.subspan(end_pos), source);
  end.take(4, "end signature");
  const std::uint16_t disk = end.u16_le("disk number");
  const std::uint16_t cd_disk = end.u16_le("central directory disk");
  const std::uint16_t disk_entries = end.u16_le("entries on this disk");
  Directory d;
  d.entries = end.u16_le("entry count");
  d.size = end.u32_le("central directory size");
  d.offset = end.u32_le("central directory offset");
  d.end = end_pos;
  KILN_FORMAT_CHECK(disk == 0 && cd_disk == 0 && disk_entries == d.entries, source,
                    "disk number", "multi-disk archives are not supported");
  const bool zip64 = d.entries == kMax16 || d.size == kMax32 || d.offset == kMax32;
  if (zip64) {
    KILN_FORMAT_CHECK(end_pos >= kEnd64LocatorSize, source, "zip64 end locator", "missing");
    ByteCursor loc(a.subspan(end_pos - kEnd64LocatorSize, kEnd64LocatorSize), source);
    KILN_FORMAT_CHECK(loc.u32_le("zip64 end locator") == kEnd64LocatorSig, source,
                      "zip64 end locator", "bad signature");
    loc.u32_le("zip64 end disk");
    const std::uint64_t rec = loc.u64_le("zip64 end offset");
    KILN_FORMAT_CHECK(rec <= end_pos - kEnd64LocatorSize, source, "zip64 end offset", rec,
                      " lies past the end records");
    ByteCursor r(a.subspan(static_cast<std::size_t>(rec), end_pos - kEnd64LocatorSize - rec), source);
    KILN_FORMAT_CHECK(r.u32_le("zip64 end record") == kEnd64Sig, source, "zip64 end record",
                      "bad signature");
    r.take(8 + 2 + 2 + 4 + 4, "zip64 end record");  // record size, versions, disks
    const std::uint64_t on_disk = r.u64_le("zip64 entries on this disk");
    d.entries = r.u64_le("zip64 entry count");
    d.size = r.u64_le("zip64 central directory size");
    d.offset = r.u64_le("zip64 central directory offset");
    d.end = rec;
    KILN_FORMAT_CHECK(on_disk == d.entries, source, "zip64 entry count",
                      "multi-disk archives are not supported");
  }
  KILN_FORMAT_CHECK(d.offset <= d.end && d.size <= d.end - d.offset, source,
                    "central directory offset", "the directory (offset ", d.offset, ", ", d.size,
                    " bytes) does not fit before the end record at ", d.end);
  // Each entry takes at least kCentralSize bytes: a count that cannot fit is rejected
  // before anything is reserved for it.
  KILN_FORMAT_CHECK(d.entries <= d.size / kCentralSize, source, "entry count", d.entries,
                    " entries cannot fit in a ", d.size, "-byte directory");
  return d;
}

// Replaces the 32-bit fields that are 0xffffffff with the zip64 extra field's values, in
// the APPNOTE's order (size, compressed size, local header offset).
void apply_zip64_extra(ByteSpan extra, ZipEntry& e, std::uint64_t& local_offset,
                       std::string_view source) {
  ByteCursor c(extra, source);
  while (c.remaining() >= 4) {
    const std::uint16_t id = c.u16_le("extra field id");
    const std::uint16_t len = c.u16_le("extra field size");
    ByteCursor field(c.take(len, "extra field"), source);
    if (id != kZip64ExtraId) continue;
    if (e.size == kMax32) e.size = field.u64_le("zip64 size");
    if (e.compressed_size == kMax32) e.compressed_size = field.u64_le("zip64 compressed size");
    if (local_offset == kMax32) local_offset = field.u64_le("zip64 local header offset");
  }
}

}  // namespace

ZipReader::ZipReader(ByteSpan archive, std::string_view source) : archive_(archive), source_(source) {
  const Directory d = read_directory(archive, source_);
  ByteCursor c(archive.subspan(static_cast<std::size_t>(d.offset), static_cast<std::size_t>(d.size)),
               source_);
  std::set<std::string> names;
  entries_.reserve(static_cast<std::size_t>(d.entries));
  for (std::uint64_t i = 0; i < d.entries; ++i) {
    KILN_FORMAT_CHECK(c.u32_le("central header") == kCentralSig, source_, "central header",
                      "bad signature at entry ", i);
    c.take(4, "central header");  // versions
    const std::uint16_t flags = c.u16_le("flags");
    ZipEntry e;
    e.method = c.u16_le("compression method");
    c.take(4, "central header");  // time, date
    e.crc32 = c.u32_le("crc32");
    e.compressed_size = c.u32_le("compressed size");
    e.size = c.u32_le("size");
    const std::uint16_t name_len = c.u16_le("name length");
    const std::uint16_t extra_len = c.u16_le("extra length");
    const std::uint16_t comment_len = c.u16_le("comment length");
    c.take(8, "central header");  // disk, attributes
    std::uint64_t local = c.u32_le("local header offset");
    const ByteSpan name = c.take(name_len, "name");
    e.name.assign(name.begin(), name.end());
    apply_zip64_extra(c.take(extra_len, "extra field"), e, local, source_);
    c.take(comment_len, "comment");
    KILN_FORMAT_CHECK((flags & 1) == 0, source_, e.name, "encrypted members are not supported");
    KILN_FORMAT_CHECK(e.method == 0 || e.method == 8, source_, e.name, "compression method ",
                      e.method, " is not supported (only stored and deflate)");
    KILN_FORMAT_CHECK(names.insert(e.name).second, source_, e.name, "duplicate member name");
    // The local header and the data must lie before the directory.
    KILN_FORMAT_CHECK(local <= d.offset && d.offset - local >= kLocalSize, source_, e.name,
                      "local header offset ", local, " does not fit before the directory at ",
                      d.offset);
    ByteCursor lh(archive.subspan(static_cast<std::size_t>(local),
                                  static_cast<std::size_t>(d.offset - local)), source_);
    KILN_FORMAT_CHECK(lh.u32_le("local header") == kLocalSig, source_, e.name,
                      "bad local header signature");
    lh.take(22, "local header");
    const std::uint16_t local_name_len = lh.u16_le("local name length");
    const std::uint16_t local_extra_len = lh.u16_le("local extra length");
    const ByteSpan local_name = lh.take(local_name_len, "local name");
    KILN_FORMAT_CHECK(std::equal(local_name.begin(), local_name.end(), name.begin(), name.end()),
                      source_, e.name, "the local header names another member");
    lh.take(local_extra_len, "local extra field");
    e.data_offset = local + lh.offset();
    KILN_FORMAT_CHECK(e.compressed_size <= lh.remaining(), source_, e.name,
                      "declares ", e.compressed_size, " compressed bytes, only ", lh.remaining(),
                      " remain before the directory");
    if (e.method == 0) {
      KILN_FORMAT_CHECK(e.size == e.compressed_size, source_, e.name, "stored member declares size ",
                        e.size, " but ", e.compressed_size, " compressed bytes");
    } else {
      KILN_FORMAT_CHECK(e.size <= kMaxDeflateRatio * e.compressed_size + 1024, source_, e.name,
                        "declares ", e.size, " bytes from ", e.compressed_size,
                        " compressed bytes, more than deflate can produce");
    }
    entries_.push_back(std::move(e));
  }
}

ByteSpan ZipReader::read(const ZipEntry& entry, Bytes& scratch) const {
  const ByteSpan raw = archive_.subspan(static_cast<std::size_t>(entry.data_offset),
                                        static_cast<std::size_t>(entry.compressed_size));
  ByteSpan data = raw;
  if (entry.method == 8) {
    scratch = inflate_raw(raw, entry.size, source_, entry.name);
    data = scratch;
  }
  KILN_FORMAT_CHECK(crc32_of(data) == entry.crc32, source_, entry.name, "CRC-32 mismatch");
  return data;
}

Bytes write_zip(const std::vector<std::pair<std::string, Bytes>>& members) {
  KILN_CHECK(members.size() < kMax16, ValueError, "write_zip: ", members.size(),
             " members; at most 65534 are supported (no zip64)");
  std::set<std::string_view> names;
  std::uint64_t total = kEndSize;
  for (const auto& [name, bytes] : members) {
    KILN_CHECK(!name.empty() && name.size() < kMax16, ValueError, "write_zip: bad member name '",
               name, "'");
    KILN_CHECK(names.insert(name).second, ValueError, "write_zip: duplicate member '", name, "'");
    KILN_CHECK(bytes.size() < kMax32, ValueError, "write_zip: member '", name, "' has ",
               bytes.size(), " bytes; 4 GiB or more needs zip64, which is not implemented");
    total += kLocalSize + kCentralSize + 2 * name.size() + bytes.size();
  }
  KILN_CHECK(total < kMax32, ValueError, "write_zip: the archive would be ", total,
             " bytes; 4 GiB or more needs zip64, which is not implemented");
  Bytes out;
  out.reserve(static_cast<std::size_t>(total));
  auto put16 = [&](std::uint16_t v) { out.push_back(v & 0xff); out.push_back(v >> 8); };
  auto put32 = [&](std::uint32_t v) { put16(v & 0xffff); put16(v >> 16); };
  auto put_name = [&](const std::string& n) { out.insert(out.end(), n.begin(), n.end()); };
  std::vector<std::uint32_t> offsets, crcs;
  // 1980-01-01 00:00 (the DOS epoch), as numpy/zipfile write for in-memory data.
  constexpr std::uint16_t kTime = 0, kDate = (0 << 9) | (1 << 5) | 1;
  for (const auto& [name, bytes] : members) {
    offsets.push_back(static_cast<std::uint32_t>(out.size()));
    crcs.push_back(crc32_of(bytes));
    put32(kLocalSig); put16(20); put16(0); put16(0); put16(kTime); put16(kDate);
    put32(crcs.back()); put32(static_cast<std::uint32_t>(bytes.size()));
    put32(static_cast<std::uint32_t>(bytes.size()));
    put16(static_cast<std::uint16_t>(name.size())); put16(0);
    put_name(name);
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto& [name, bytes] = members[i];
    put32(kCentralSig); put16(20); put16(20); put16(0); put16(0); put16(kTime); put16(kDate);
    put32(crcs[i]); put32(static_cast<std::uint32_t>(bytes.size()));
    put32(static_cast<std::uint32_t>(bytes.size()));
    put16(static_cast<std::uint16_t>(name.size())); put16(0); put16(0); put16(0); put16(0);
    put32(0); put32(offsets[i]);
    put_name(name);
  }
  const auto cd_size = static_cast<std::uint32_t>(out.size() - cd_offset);
  put32(kEndSig); put16(0); put16(0);
  put16(static_cast<std::uint16_t>(members.size())); put16(static_cast<std::uint16_t>(members.size()));
  put32(cd_size); put32(cd_offset); put16(0);
  return out;
}

}  // namespace kiln::data
