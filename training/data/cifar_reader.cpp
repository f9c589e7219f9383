// CifarReader: record-at-a-time reads of CIFAR batch files with pread.
#include "kiln/training/data/cifar_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kiln::data {

CifarReader::CifarReader(const std::vector<std::string>& paths, CifarVariant variant,
                         CifarLabels labels)
    : variant_(variant), label_index_(labels == CifarLabels::coarse ? 0 : 1) {
  KILN_CHECK(!paths.empty(), ValueError, "CifarReader: no files given");
  const std::int64_t record = cifar_record_bytes(variant);
  for (const std::string& path : paths) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    KILN_CHECK(fd.get() >= 0, IOError, path, ": cannot open for reading: ", std::strerror(errno));
    struct stat st {};
    KILN_CHECK(::fstat(fd.get(), &st) == 0, IOError, path, ": cannot stat: ", std::strerror(errno));
    KILN_FORMAT_CHECK(st.st_size > 0 && st.st_size % record == 0, path, "records", "the size ",
                      st.st_size, " is not a positive multiple of the ", record, "-byte record");
    files_.push_back(File{path, std::move(fd), size_, st.st_size / record});
    size_ += files_.back().count;
  }
}

CifarReader::Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Batch CifarReader::gather(std::span<const std::int64_t> indices) const {
  const auto n = static_cast<std::int64_t>(indices.size());
  const auto record = static_cast<std::size_t>(cifar_record_bytes(variant_));
  Batch out;
  out.x = empty({n, kCifarSide, kCifarSide, 3}, {.dtype = uint8, .device = Device::cpu()});
  out.y = empty({n}, {.dtype = int64, .device = Device::cpu()});
  auto* x = out.x.data<std::uint8_t>();
  auto* y = out.y.data<std::int64_t>();
  Bytes buffer(record);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t index = indices[static_cast<std::size_t>(i)];
    KILN_CHECK(index >= 0 && index < size_, IndexError, "CifarReader: index ", index,
               " is out of range for ", size_, " examples");
    const auto file = std::upper_bound(files_.begin(), files_.end(), index,
                                       [](std::int64_t v, const File& f) { return v < f.first; }) - 1;
    const auto offset = static_cast<off_t>((index - file->first) * static_cast<std::int64_t>(record));
    std::size_t got = 0;
    while (got < record) {
      const ssize_t r = ::pread(file->fd.get(), buffer.data() + got, record - got, offset + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      KILN_CHECK(r > 0, IOError, file->path, ": read of record ", index - file->first, " failed: ",
                 r == 0 ? "the file shrank" : std::strerror(errno));
      got += static_cast<std::size_t>(r);
    }
    // Validates the labels of this one record (parse_cifar's checks), then decodes it.
    parse_cifar(buffer, variant_, file->path);
    std::uint8_t label = 0;
    decode_cifar_record(buffer, variant_, label_index_, x + i * kCifarImageBytes, &label);
    y[i] = label;
  }
  return out;
}

}  // namespace kiln::data
