// libFuzzer target: CIFAR-10 and CIFAR-100 binary batches, every record decoded.
#include "fuzz_util.h"
#include "kiln/training/data/formats.h"

namespace {

void parse(kiln::data::ByteSpan input, kiln::data::CifarVariant variant) {
  const auto records = kiln::data::parse_cifar(input, variant, "fuzz.bin");
  const auto record = static_cast<std::size_t>(kiln::data::cifar_record_bytes(variant));
  std::vector<std::uint8_t> image(kiln::data::kCifarImageBytes);
  std::uint8_t label = 0;
  for (std::int64_t i = 0; i < records.count; ++i) {
    kiln::data::decode_cifar_record(records.bytes.subspan(static_cast<std::size_t>(i) * record, record),
                                    variant, 1, image.data(), &label);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = kiln::fuzz::span_of(data, size);
  kiln::fuzz::run([&] { parse(input, kiln::data::CifarVariant::cifar10); });
  return kiln::fuzz::run([&] { parse(input, kiln::data::CifarVariant::cifar100); });
}
