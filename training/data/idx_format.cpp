// IDX (MNIST's format) parsing: magic, extents, payload size, all checked.
#include "kiln/training/data/formats.h"

namespace kiln::data {
namespace {

// The IDX type code's dtype, or FormatError.
DType idx_dtype(std::uint8_t code, std::string_view source) {
  switch (code) {
    case 0x08: return DType::uint8;
    case 0x0C: return DType::int32;
    case 0x0D: return DType::float32;
    case 0x0E: return DType::float64;
    case 0x09:
    case 0x0B:
      KILN_FORMAT_FAIL(source, "magic", "element type 0x", std::hex, static_cast<int>(code),
                       " (", code == 0x09 ? "int8" : "int16", ") has no kiln dtype");
    default:
      KILN_FORMAT_FAIL(source, "magic", "unknown element type 0x", std::hex,
                       static_cast<int>(code), " (expected 08, 0C, 0D or 0E)");
  }
}

}  // namespace

RawArray parse_idx(ByteSpan bytes, std::string_view source) {
  ByteCursor c(bytes, source);
  const ByteSpan magic = c.take(4, "magic");
  KILN_FORMAT_CHECK(magic[0] == 0 && magic[1] == 0, source, "magic",
                    "expected two zero bytes first, got 0x", std::hex, static_cast<int>(magic[0]),
                    " 0x", static_cast<int>(magic[1]), " (not an IDX file)");
  RawArray raw;
  raw.dtype = idx_dtype(magic[2], source);
  raw.big_endian = true;
  const int ndim = magic[3];
  KILN_FORMAT_CHECK(ndim >= 1 && ndim <= Shape::kMaxDims, source, "magic", ndim,
                    " dimensions; kiln reads 1 to ", Shape::kMaxDims);
  std::int64_t dims[Shape::kMaxDims];
  for (int i = 0; i < ndim; ++i) dims[i] = c.u32_be("dimension");
  const std::span<const std::int64_t> extents(dims, static_cast<std::size_t>(ndim));
  const std::int64_t payload = checked_array_bytes(extents, itemsize(raw.dtype), source, "dimensions");
  KILN_FORMAT_CHECK(static_cast<std::uint64_t>(payload) <= c.remaining(), source, "data",
                    "truncated: the dimensions declare ", payload, " bytes of data, the file holds ",
                    c.remaining());
  KILN_FORMAT_CHECK(static_cast<std::uint64_t>(payload) == c.remaining(), source, "data",
                    c.remaining() - static_cast<std::uint64_t>(payload),
                    " trailing bytes after the declared ", payload);
  raw.shape = Shape(extents);
  raw.payload = c.take(static_cast<std::size_t>(payload), "data");
  return raw;
}

}  // namespace kiln::data
