// safetensors reading and atomic writing; see tensor_file.h.
//
// Note [Reading untrusted files]
// A weight file may be truncated, corrupt or hostile, and reading one must end in a
// FormatError naming the file and the field, never in a crash or a huge allocation. So,
// before any tensor memory is allocated: the header length must fit in the file (and in
// safetensors' 100 MB limit), the header must be a JSON object, each entry must have a
// known dtype, a shape of at most Shape::kMaxDims non-negative extents whose byte size does
// not overflow, and data_offsets [begin, end) of unsigned integers with end - begin equal
// to that size; and the entries, sorted by offset, must tile the data section exactly (no
// gap, no overlap, nothing after the last), as the reference Rust implementation demands.
// Allocation is then bounded by the file's size. BOOL bytes must be 0 or 1.
#include "kiln/training/tensor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <span>

#include <nlohmann/json.hpp>

#include "kiln/core/error.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// The reference implementation's limit on the header (safetensors' MAX_HEADER_SIZE).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

constexpr std::array<std::pair<DType, const char*>, 8> kDTypeNames = {{
    {DType::float64, "F64"}, {DType::float32, "F32"}, {DType::float16, "F16"}, {DType::bfloat16, "BF16"},
    {DType::int64, "I64"}, {DType::int32, "I32"}, {DType::uint8, "U8"}, {DType::bool_, "BOOL"},
}};

const char* st_name(DType dt) {
  for (const auto& [d, n] : kDTypeNames) {
    if (d == dt) return n;
  }
  KILN_THROW(InternalError, "tensor_file: no safetensors name for dtype ", dt);
}

// Writes all of `data` to fd (write may be partial).
void write_all(int fd, const void* data, std::size_t size, const fs::path& path) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    KILN_CHECK(n > 0, IOError, "write_tensor_file: writing '", path.string(), "' failed: ", std::strerror(errno));
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// A temporary name beside `path`, unique per process and call (two threads saving one
// path must not share a temporary).
fs::path temp_path_for(const fs::path& path) {
  static std::atomic<std::uint64_t> counter{0};
  return path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

// ---- reading: one header entry ----

struct Entry {
  std::string name;
  DType dtype{};
  Shape shape;
  std::uint64_t begin = 0, end = 0;
};

// Throws FormatError "read_tensor_file: '<file>': <what>" (Note [Reading untrusted files]).
template <class... Parts>
[[noreturn]] void bad(const fs::path& path, const Parts&... parts) {
  KILN_THROW(FormatError, "read_tensor_file: '", path.string(), "': ", parts...);
}

Entry parse_entry(const std::string& name, const ordered_json& j, std::uint64_t data_size, const fs::path& path) {
  Entry e;
  e.name = name;
  if (!j.is_object()) bad(path, "tensor '", name, "' is not an object: ", j.dump());
  if (!j.contains("dtype") || !j["dtype"].is_string()) bad(path, "tensor '", name, "' has no string field \"dtype\"");
  const auto dtype = j["dtype"].get<std::string>();
  const auto* it =
      std::find_if(kDTypeNames.begin(), kDTypeNames.end(), [&](const auto& p) { return dtype == p.second; });
  if (it == kDTypeNames.end()) {
    bad(path, "tensor '", name, "' has field \"dtype\" '", dtype, "', which kiln does not support (F64 F32 F16 BF16 ",
        "I64 I32 U8 BOOL)");
  }
  e.dtype = it->first;

  if (!j.contains("shape") || !j["shape"].is_array()) bad(path, "tensor '", name, "' has no array field \"shape\"");
  const ordered_json& shape = j["shape"];
  if (shape.size() > static_cast<std::size_t>(Shape::kMaxDims)) {
    bad(path, "tensor '", name, "' has field \"shape\" of rank ", shape.size(), "; kiln holds at most ",
        Shape::kMaxDims, " dimensions");
  }
  std::vector<std::int64_t> dims;
  std::uint64_t bytes = itemsize(e.dtype);
  bool zero = false, overflow = false;
  for (const auto& d : shape) {
    if (!d.is_number_unsigned() || d.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
      bad(path, "tensor '", name, "' has field \"shape\" ", shape.dump(), " with an entry that is not a size");
    }
    const auto extent = d.get<std::uint64_t>();
    dims.push_back(static_cast<std::int64_t>(extent));
    zero = zero || extent == 0;
    overflow = overflow || __builtin_mul_overflow(bytes, extent, &bytes);
  }
  if (zero) bytes = 0;  // even when a product on the way overflowed
  if (!zero && (overflow || bytes > data_size)) {
    bad(path, "tensor '", name, "' has field \"shape\" ", shape.dump(), " of more bytes than the data section holds (",
        data_size, ")");
  }
  e.shape = Shape(std::span<const std::int64_t>(dims.data(), dims.size()));

  const ordered_json* off = j.contains("data_offsets") ? &j["data_offsets"] : nullptr;
  if (off == nullptr || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    bad(path, "tensor '", name, "' needs field \"data_offsets\" as [begin, end] of two unsigned integers, got ",
        off ? off->dump() : std::string("nothing"));
  }
  e.begin = (*off)[0].get<std::uint64_t>();
  e.end = (*off)[1].get<std::uint64_t>();
  if (e.end < e.begin || e.end > data_size) {
    bad(path, "tensor '", name, "' has field \"data_offsets\" [", e.begin, ", ", e.end,
        ") out of range of the data section (", data_size, " bytes after the header)");
  }
  if (e.end - e.begin != bytes) {
    bad(path, "tensor '", name, "' of dtype ", dtype, " and shape ", e.shape, " needs ", bytes,
        " bytes but its field \"data_offsets\" [", e.begin, ", ", e.end, ") spans ", e.end - e.begin);
  }
  return e;
}

// The entries must tile [0, data_size) (Note [Reading untrusted files]).
void check_tiling(std::vector<const Entry*> entries, std::uint64_t data_size, const fs::path& path) {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : entries) {
    if (e->begin < at) {
      bad(path, "tensors '", prev->name, "' [", prev->begin, ", ", prev->end, ") and '", e->name, "' [", e->begin,
          ", ", e->end, ") overlap (field \"data_offsets\")");
    }
    if (e->begin > at) {
      bad(path, "tensor '", e->name, "' starts at ", e->begin, " but the previous one ends at ", at,
          " (a gap in field \"data_offsets\")");
    }
    at = e->end;
    prev = e;
  }
  if (at != data_size) {
    bad(path, "the tensors cover ", at, " bytes of the data section but the file holds ", data_size,
        " (truncated, or bytes after the last tensor)");
  }
}

}  // namespace

Tensor TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  return Tensor();
}

void write_tensor_file(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  std::set<std::string> names;
  std::size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    KILN_CHECK(!name.empty() && name != "__metadata__", ValueError, "write_tensor_file: invalid tensor name '",
               name, "'");
    KILN_CHECK(names.insert(name).second, ValueError, "write_tensor_file: duplicate tensor name '", name, "'");
    KILN_CHECK(t.defined(), ValueError, "write_tensor_file: tensor '", name, "' is undefined");
    host.push_back(t.detach().to(Device::cpu()).contiguous());
    const std::size_t bytes = host.back().nbytes();
    header[name] = {{"dtype", st_name(t.dtype())},
                    {"shape", std::vector<std::int64_t>(t.shape().begin(), t.shape().end())},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata value that is not UTF-8
    KILN_THROW(ValueError, "write_tensor_file: '", path.string(), "': a tensor name or metadata entry is not valid "
               "UTF-8: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::uint64_t header_len = text.size();
  unsigned char len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = static_cast<unsigned char>(header_len >> (8 * i));

  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    KILN_CHECK(!ec, IOError, "write_tensor_file: cannot create the folder '", path.parent_path().string(), "': ",
               ec.message());
  }
  const fs::path tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  KILN_CHECK(fd >= 0, IOError, "write_tensor_file: cannot create '", tmp.string(), "': ", std::strerror(errno));
  try {
    write_all(fd, len_le, sizeof(len_le), tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (const Tensor& t : host) {
      if (t.nbytes() > 0) write_all(fd, t.data_ptr(), t.nbytes(), tmp);
    }
    KILN_CHECK(::fsync(fd) == 0, IOError, "write_tensor_file: fsync of '", tmp.string(), "' failed: ",
               std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {  // a deferred write error (NFS) shows here
    const int err = errno;
    ::unlink(tmp.c_str());
    KILN_THROW(IOError, "write_tensor_file: closing '", tmp.string(), "' failed: ", std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    KILN_THROW(IOError, "write_tensor_file: cannot rename '", tmp.string(), "' to '", path.string(), "': ",
               std::strerror(err));
  }
  // Make the rename itself durable.
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

TensorFile read_tensor_file(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  KILN_CHECK(!ec || ec == std::errc::no_such_file_or_directory, IOError, "read_tensor_file: cannot open '",
             path.string(), "': ", ec.message());
  KILN_CHECK(fs::exists(status), IOError, "read_tensor_file: cannot open '", path.string(), "': no such file");
  KILN_CHECK(fs::is_regular_file(status), IOError, "read_tensor_file: '", path.string(), "' is not a regular file");
  const std::uint64_t file_size = fs::file_size(path, ec);
  KILN_CHECK(!ec, IOError, "read_tensor_file: cannot read the size of '", path.string(), "': ", ec.message());
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in.is_open(), IOError, "read_tensor_file: cannot open '", path.string(), "': ", std::strerror(errno));

  if (file_size < 8) {
    bad(path, "the file is ", file_size, " bytes, too short to be a safetensors file (an 8-byte header length first)");
  }
  unsigned char len_le[8];
  KILN_CHECK(in.read(reinterpret_cast<char*>(len_le), 8), IOError, "read_tensor_file: reading '", path.string(),
             "' failed");
  std::uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<std::uint64_t>(len_le[i]) << (8 * i);
  if (header_len > file_size - 8) {
    bad(path, "the header length (", header_len, " bytes) runs past the end of the file (", file_size, " bytes)");
  }
  if (header_len > kMaxHeaderBytes) bad(path, "the header length (", header_len, " bytes) is over 100 MB");
  std::string text(header_len, '\0');
  KILN_CHECK(in.read(text.data(), static_cast<std::streamsize>(header_len)), IOError, "read_tensor_file: reading '",
             path.string(), "' failed");

  ordered_json header;
  try {
    header = ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    bad(path, "the header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) bad(path, "the header is not a JSON object");

  const std::uint64_t data_size = file_size - 8 - header_len;
  TensorFile out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name != "__metadata__") {
      entries.push_back(parse_entry(name, value, data_size, path));
      continue;
    }
    if (!value.is_object()) bad(path, "field \"__metadata__\" is not an object of strings");
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string()) bad(path, "field \"__metadata__\" entry '", k, "' is not a string");
      out.metadata[k] = v.get<std::string>();
    }
  }
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  check_tiling(std::move(order), data_size, path);

  const std::uint64_t data_start = 8 + header_len;
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype, .device = Device::cpu()});
    const std::uint64_t bytes = e.end - e.begin;
    if (bytes > 0) {
      in.seekg(static_cast<std::streamoff>(data_start + e.begin));
      KILN_CHECK(in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes)), IOError,
                 "read_tensor_file: reading tensor '", e.name, "' of '", path.string(), "' failed (did the file ",
                 "change while it was read?)");
    }
    if (e.dtype == DType::bool_) {
      const auto* p = static_cast<const unsigned char*>(t.data_ptr());
      if (std::any_of(p, p + bytes, [](unsigned char b) { return b > 1; })) {
        bad(path, "tensor '", e.name, "' of dtype BOOL holds a byte that is neither 0 nor 1");
      }
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace kiln
