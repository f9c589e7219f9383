// CIFAR-10/100 binary batch parsing: record size, label ranges, CHW -> HWC decoding.
#include "kiln/training/data/formats.h"

namespace kiln::data {

std::int64_t cifar_label_bytes(CifarVariant variant) {
  return variant == CifarVariant::cifar10 ? 1 : 2;
}

std::int64_t cifar_record_bytes(CifarVariant variant) {
  return cifar_label_bytes(variant) + kCifarImageBytes;
}

CifarRecords parse_cifar(ByteSpan bytes, CifarVariant variant, std::string_view source) {
  const auto record = static_cast<std::size_t>(cifar_record_bytes(variant));
  KILN_FORMAT_CHECK(!bytes.empty(), source, "records", "the file is empty");
  KILN_FORMAT_CHECK(bytes.size() % record == 0, source, "records", "the size ", bytes.size(),
                    " is not a multiple of the ", record, "-byte ",
                    variant == CifarVariant::cifar10 ? "CIFAR-10" : "CIFAR-100",
                    " record (truncated, or the other CIFAR variant?)");
  CifarRecords out{variant, static_cast<std::int64_t>(bytes.size() / record), bytes};
  // Label ranges: the only content check the format allows (it has no magic).
  const int classes[2] = {variant == CifarVariant::cifar10 ? 10 : 20, 100};
  const char* names[2] = {variant == CifarVariant::cifar10 ? "label" : "coarse label",
                          "fine label"};
  for (std::int64_t i = 0; i < out.count; ++i) {
    const std::uint8_t* rec = bytes.data() + static_cast<std::size_t>(i) * record;
    for (int k = 0; k < cifar_label_bytes(variant); ++k) {
      KILN_FORMAT_CHECK(rec[k] < classes[k], source, names[k], "record ", i, " has label ",
                        static_cast<int>(rec[k]), ", outside [0, ", classes[k], ")");
    }
  }
  return out;
}

void decode_cifar_record(ByteSpan record, CifarVariant variant, int label_index,
                         std::uint8_t* image, std::uint8_t* label) {
  const auto label_bytes = static_cast<std::size_t>(cifar_label_bytes(variant));
  KILN_ASSERT(record.size() == label_bytes + kCifarImageBytes, "CIFAR record of ", record.size(),
              " bytes");
  *label = record[variant == CifarVariant::cifar10 ? 0 : static_cast<std::size_t>(label_index)];
  // The file holds three 32x32 planes (R, G, B); kiln's images are NHWC.
  const std::uint8_t* planes = record.data() + label_bytes;
  constexpr std::size_t kPlane = kCifarSide * kCifarSide;
  for (std::size_t p = 0; p < kPlane; ++p) {
    image[3 * p + 0] = planes[p];
    image[3 * p + 1] = planes[kPlane + p];
    image[3 * p + 2] = planes[2 * kPlane + p];
  }
}

}  // namespace kiln::data
