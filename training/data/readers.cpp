// File -> tensor readers and tensor -> file writers over the parsers of formats.h.
#include "kiln/training/data/readers.h"

#include <bit>

#include "kiln/training/data/gzip.h"
#include "kiln/training/data/zip.h"

namespace kiln::data {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the npy writer and decode_elements assume a little-endian host");

constexpr std::string_view kNpySuffix = ".npy";

CifarBatch read_cifar(const std::string& path, CifarVariant variant, int label_index) {
  const Bytes bytes = read_file(path);
  const CifarRecords records = parse_cifar(bytes, variant, path);
  CifarBatch out;
  out.x = empty({records.count, kCifarSide, kCifarSide, 3}, {.dtype = uint8, .device = Device::cpu()});
  out.y = empty({records.count}, {.dtype = uint8, .device = Device::cpu()});
  auto* x = out.x.data<std::uint8_t>();
  auto* y = out.y.data<std::uint8_t>();
  const auto record = static_cast<std::size_t>(cifar_record_bytes(variant));
  for (std::int64_t i = 0; i < records.count; ++i) {
    decode_cifar_record(records.bytes.subspan(static_cast<std::size_t>(i) * record, record), variant,
                        label_index, x + i * kCifarImageBytes, y + i);
  }
  return out;
}

// The bytes of `t` as a host C-order array (a copy only when needed).
Tensor host_contiguous(const Tensor& t) { return t.detach().to(Device::cpu()).contiguous(); }

Bytes npy_of(const Tensor& t) {
  KILN_CHECK(t.defined(), ValueError, "save_npy: the tensor is undefined");
  const Tensor host = host_contiguous(t);
  return npy_bytes(host.dtype(), host.shape(),
                   ByteSpan(static_cast<const std::uint8_t*>(host.data_ptr()), host.nbytes()));
}

}  // namespace

Tensor to_tensor(const RawArray& raw, std::string_view source) {
  Tensor out = empty(raw.shape, {.dtype = raw.dtype, .device = Device::cpu()});
  KILN_ASSERT(out.nbytes() == raw.payload.size(), "payload of ", raw.payload.size(),
              " bytes for shape ", raw.shape);
  if (!raw.payload.empty()) decode_elements(raw, out.data_ptr(), source);
  return out;
}

Tensor read_idx(const std::string& path) {
  Bytes bytes = read_file(path);
  if (is_gzip(bytes)) bytes = gunzip(bytes, path);
  return to_tensor(parse_idx(bytes, path), path);
}

CifarBatch read_cifar10_batch(const std::string& path) {
  return read_cifar(path, CifarVariant::cifar10, 0);
}

CifarBatch read_cifar100_batch(const std::string& path, CifarLabels labels) {
  return read_cifar(path, CifarVariant::cifar100, labels == CifarLabels::coarse ? 0 : 1);
}

Tensor load_npy(const std::string& path) {
  const Bytes bytes = read_file(path);
  return to_tensor(parse_npy(bytes, path), path);
}

void save_npy(const std::string& path, const Tensor& tensor) {
  write_file_atomic(path, npy_of(tensor));
}

std::map<std::string, Tensor> load_npz(const std::string& path) {
  const Bytes archive = read_file(path);
  const ZipReader zip(archive, path);
  std::map<std::string, Tensor> out;
  Bytes scratch;
  for (const ZipEntry& e : zip.entries()) {
    const std::string source = path + ": " + e.name;
    KILN_FORMAT_CHECK(e.name.size() > kNpySuffix.size() && e.name.ends_with(kNpySuffix), path,
                      e.name, "is not a .npy member");
    const ByteSpan member = zip.read(e, scratch);
    out.emplace(e.name.substr(0, e.name.size() - kNpySuffix.size()),
                to_tensor(parse_npy(member, source), source));
  }
  return out;
}

void save_npz(const std::string& path, const std::map<std::string, Tensor>& arrays) {
  std::vector<std::pair<std::string, Bytes>> members;
  members.reserve(arrays.size());
  for (const auto& [name, tensor] : arrays) {
    KILN_CHECK(!name.empty(), ValueError, "save_npz: an array has an empty name");
    members.emplace_back(name + std::string(kNpySuffix), npy_of(tensor));
  }
  write_file_atomic(path, write_zip(members));
}

}  // namespace kiln::data
