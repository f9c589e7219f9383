// Parsers of the dataset file formats, from bytes to a validated RawArray (bytes.h).
// A header is never trusted: every field is checked, and the declared array size is
// computed with overflow checks and compared with the bytes actually present before
// any caller allocates for it. Failures are FormatError "<source>: <field>: ...".
//   IDX     (MNIST; LeCun's format): magic 00 00 <type> <ndim>, big-endian u32 extents,
//           big-endian elements. Types: 08 uint8, 0C int32, 0D float32, 0E float64
//           (09 int8 and 0B int16 have no kiln dtype and are rejected).
//   CIFAR   binary batches: fixed records of <label bytes> + 3072 image bytes (1024 red,
//           1024 green, 1024 blue, row-major 32x32); CIFAR-10 has one label byte (< 10),
//           CIFAR-100 two (coarse < 20, fine < 100). There is no header or magic: the
//           file size and the label ranges are what can be checked.
//   NPY     (numpy.lib.format, versions 1.0, 2.0, 3.0): "\x93NUMPY", version, header
//           length, a Python dict literal {'descr', 'fortran_order', 'shape'}, then the
//           C-order little-endian elements. descr: <f2 <f4 <f8 <i4 <i8 |u1 |b1.
// Nothing here knows Tensor (see readers.h for that), so the fuzz targets link it alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/training/data/bytes.h"

namespace kiln::data {

RawArray parse_idx(ByteSpan bytes, std::string_view source);

enum class CifarVariant { cifar10, cifar100 };
inline constexpr std::int64_t kCifarSide = 32;
inline constexpr std::int64_t kCifarImageBytes = 3 * kCifarSide * kCifarSide;

// The validated records of a CIFAR batch file.
struct CifarRecords {
  CifarVariant variant = CifarVariant::cifar10;
  std::int64_t count = 0;
  ByteSpan bytes;  // count * record_bytes(variant)
};
std::int64_t cifar_label_bytes(CifarVariant variant);   // 1 or 2
std::int64_t cifar_record_bytes(CifarVariant variant);  // 3073 or 3074
// Checks the size (a positive multiple of the record) and every label's range.
CifarRecords parse_cifar(ByteSpan bytes, CifarVariant variant, std::string_view source);
// Record i's image as HWC (32, 32, 3) into `image` (3072 bytes) and its label into
// *label: the only label (CIFAR-10), or the fine (label_index 1) / coarse (0) one.
void decode_cifar_record(ByteSpan record, CifarVariant variant, int label_index,
                         std::uint8_t* image, std::uint8_t* label);

RawArray parse_npy(ByteSpan bytes, std::string_view source);
// The descr of `dtype` ("<f4", "|u1", ...); TypeError for dtypes numpy cannot name
// (bfloat16).
std::string npy_descr(DType dtype);
// A complete .npy file (version 1.0, or 2.0 when the header needs it) for a C-order
// little-endian array of `shape` whose elements are `data`.
Bytes npy_bytes(DType dtype, const Shape& shape, ByteSpan data);

}  // namespace kiln::data
