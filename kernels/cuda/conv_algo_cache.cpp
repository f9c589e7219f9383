// The cuDNN algorithm cache (see conv_algo_cache.h): line format, parsing, the file's load
// and its atomic rewrite. POSIX file calls (open/fsync/rename/flock): kiln targets Linux.
//
// Note [Algorithm cache file]
// Why a rewrite per new entry rather than an append: an append that a crash cuts short
// leaves half a line, and two processes appending at once can interleave. A rewrite into
// a temporary file in the same folder, fsync'd and renamed over the old one, replaces the
// file in one step: a reader sees the old file or the new one, never a mix. Entries are
// few (one per layer shape and direction that was timed) and new ones arrive only while
// timing, which costs far more than the write. Writers take an flock on "<file>.lock" and
// re-read the file under it, so entries written by other processes meanwhile survive.
// Lines that do not parse are skipped with one warning per load and dropped at the next
// rewrite, so a damaged file heals instead of warning forever.
#include "kiln/kernels/cuda/conv_algo_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <system_error>
#include <vector>

#include "kiln/core/error.h"

namespace kiln::cuda {
namespace {

constexpr std::string_view kTag = "kiln-cudnn-algo-v1";
constexpr std::size_t kFields = 9;
constexpr const char* kHeader =
    "# kiln cuDNN convolution algorithms, one per line (tab-separated): format, device, cuDNN version,\n"
    "# direction, problem, math asked for -> algorithm, its math type, workspace bytes. Safe to delete.\n";

// A field as written: tabs and line breaks would split it, so they become spaces.
std::string clean(std::string_view field) {
  std::string out(field);
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
    if (tab == std::string_view::npos) return fields;
    start = tab + 1;
  }
}

// A non-negative decimal integer filling the whole field.
template <class I>
bool parse_int(std::string_view field, I& out) {
  if (field.empty()) return false;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out);
  return ec == std::errc() && end == field.data() + field.size() && out >= 0;
}

std::optional<ConvDirection> parse_direction(std::string_view s) {
  for (ConvDirection d : {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_filter}) {
    if (s == direction_name(d)) return d;
  }
  return std::nullopt;
}

bool is_comment(std::string_view line) {
  return line.empty() || line.front() == '#' || line.find_first_not_of(" \r") == std::string_view::npos;
}

void warn(const std::string& message) { std::fprintf(stderr, "kiln: %s\n", message.c_str()); }

// The file's lines, or nothing when it does not exist; IOError when it exists but cannot be read.
std::optional<std::vector<std::string>> read_lines(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return std::nullopt;
    KILN_THROW(IOError, "cannot read ", file.string(), ": ", std::strerror(errno));
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  KILN_CHECK(!in.bad(), IOError, "reading ", file.string(), " failed");
  return lines;
}

// Closes a POSIX descriptor at scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const std::string& text, const std::filesystem::path& where) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    KILN_CHECK(n > 0, IOError, "writing ", where.string(), " failed: ", std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
}

// Replaces `file` with `text` in one step: temporary file in the same folder, fsync,
// rename, fsync of the folder (so the rename itself survives a crash).
void write_atomically(const std::filesystem::path& file, const std::string& text) {
  static std::atomic<unsigned> counter{0};
  std::filesystem::path tmp = file;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    Fd out{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC, 0644)};
    KILN_CHECK(out.fd >= 0, IOError, "cannot create ", tmp.string(), ": ", std::strerror(errno));
    try {
      write_all(out.fd, text, tmp);
      KILN_CHECK(::fsync(out.fd) == 0, IOError, "fsync of ", tmp.string(), " failed: ", std::strerror(errno));
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    KILN_THROW(IOError, "cannot rename ", tmp.string(), " to ", file.string(), ": ", std::strerror(err));
  }
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) (void)::fsync(d.fd);  // best effort: some filesystems refuse a folder fsync
}

// An exclusive flock on "<file>.lock" for its scope (serialises writers across processes
// and across cache objects of one process; readers need none thanks to the rename).
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& file) {
    std::filesystem::path lock_path = file;
    lock_path += ".lock";
    fd_.fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    KILN_CHECK(fd_.fd >= 0, IOError, "cannot open ", lock_path.string(), ": ", std::strerror(errno));
    int rc;
    while ((rc = ::flock(fd_.fd, LOCK_EX)) != 0 && errno == EINTR) {
    }
    KILN_CHECK(rc == 0, IOError, "cannot lock ", lock_path.string(), ": ", std::strerror(errno));
  }
  ~FileLock() { (void)::flock(fd_.fd, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  Fd fd_;
};

}  // namespace

const char* direction_name(ConvDirection direction) {
  switch (direction) {
    case ConvDirection::forward: return "forward";
    case ConvDirection::backward_data: return "backward_data";
    case ConvDirection::backward_filter: return "backward_filter";
  }
  return "?";
}

std::string ConvAlgoKey::text() const {
  std::string out = clean(device);
  out += '\t';
  out += std::to_string(library_version);
  out += '\t';
  out += direction_name(direction);
  out += '\t';
  out += clean(problem);
  out += '\t';
  out += clean(math);
  return out;
}

std::string format_conv_algo_line(const ConvAlgoKey& key, const ConvAlgoChoice& choice) {
  std::string line(kTag);
  line += '\t';
  line += key.text();
  line += '\t' + std::to_string(choice.algo) + '\t' + std::to_string(choice.math_type) + '\t' +
          std::to_string(choice.workspace_bytes);
  return line;
}

std::optional<std::pair<ConvAlgoKey, ConvAlgoChoice>> parse_conv_algo_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const std::vector<std::string_view> f = split_tabs(line);
  if (f.size() != kFields || f[0] != kTag) return std::nullopt;
  ConvAlgoKey key;
  ConvAlgoChoice choice;
  const std::optional<ConvDirection> direction = parse_direction(f[3]);
  if (f[1].empty() || f[4].empty() || f[5].empty() || !direction || !parse_int(f[2], key.library_version) ||
      !parse_int(f[6], choice.algo) || !parse_int(f[7], choice.math_type) ||
      !parse_int(f[8], choice.workspace_bytes)) {
    return std::nullopt;
  }
  key.device = std::string(f[1]);
  key.direction = *direction;
  key.problem = std::string(f[4]);
  key.math = std::string(f[5]);
  return std::make_pair(std::move(key), choice);
}

ConvAlgoCache::ConvAlgoCache(std::filesystem::path file) : file_(std::move(file)) {}

void ConvAlgoCache::load_once() {
  if (loaded_) return;
  loaded_ = true;
  if (file_.empty()) return;
  std::optional<std::vector<std::string>> lines;
  try {
    lines = read_lines(file_);
  } catch (const Error& e) {
    warn("cuDNN algorithm cache: " + e.message() + "; algorithms are chosen again this run");
    return;
  }
  if (!lines) return;
  std::size_t first_bad = 0;
  for (std::size_t i = 0; i < lines->size(); ++i) {
    const std::string& line = (*lines)[i];
    if (is_comment(line)) continue;
    if (auto entry = parse_conv_algo_line(line)) {
      entries_.try_emplace(entry->first.text(), entry->second);
    } else if (ignored_lines_++ == 0) {
      first_bad = i + 1;
    }
  }
  if (ignored_lines_ > 0) {
    warn("cuDNN algorithm cache " + file_.string() + ": skipped " + std::to_string(ignored_lines_) +
         " malformed or foreign line(s) (the first is line " + std::to_string(first_bad) +
         "); they are dropped when the file is next written");
  }
}

std::optional<ConvAlgoChoice> ConvAlgoCache::lookup(const ConvAlgoKey& key) {
  const std::string text = key.text();
  {
    std::shared_lock lock(mutex_);
    if (loaded_) {
      const auto it = entries_.find(text);
      return it == entries_.end() ? std::nullopt : std::optional<ConvAlgoChoice>(it->second);
    }
  }
  std::unique_lock lock(mutex_);
  load_once();
  const auto it = entries_.find(text);
  return it == entries_.end() ? std::nullopt : std::optional<ConvAlgoChoice>(it->second);
}

void ConvAlgoCache::insert(const ConvAlgoKey& key, const ConvAlgoChoice& choice) {
  std::unique_lock lock(mutex_);
  load_once();
  ConvAlgoChoice kept = choice;
  if (!file_.empty() && !disk_failed_) {
    try {
      kept = persist(key, choice);
    } catch (const Error& e) {
      disk_failed_ = true;
      warn("cuDNN algorithm cache: " + e.message() + "; keeping choices in memory only for this run");
    }
  }
  entries_.insert_or_assign(key.text(), kept);
}

ConvAlgoChoice ConvAlgoCache::persist(const ConvAlgoKey& key, const ConvAlgoChoice& choice) {
  std::error_code ec;
  if (file_.has_parent_path()) std::filesystem::create_directories(file_.parent_path(), ec);
  KILN_CHECK(!ec, IOError, "cannot create the folder ", file_.parent_path().string(), ": ", ec.message());
  const FileLock lock(file_);
  const std::string text = key.text();
  std::optional<ConvAlgoChoice> on_disk;
  std::string content = kHeader;
  for (const std::string& line : read_lines(file_).value_or(std::vector<std::string>{})) {
    if (is_comment(line)) continue;
    const auto entry = parse_conv_algo_line(line);
    if (!entry) continue;  // dropped (warned about at load)
    const std::string entry_key = entry->first.text();
    if (entry_key == text) on_disk = entry->second;
    entries_.try_emplace(entry_key, entry->second);  // adopt what other processes timed
    content += line;
    content += '\n';
  }
  if (on_disk) return *on_disk;
  content += format_conv_algo_line(key, choice);
  content += '\n';
  write_atomically(file_, content);
  return choice;
}

std::size_t ConvAlgoCache::size() {
  std::unique_lock lock(mutex_);
  load_once();
  return entries_.size();
}

std::int64_t ConvAlgoCache::ignored_lines() {
  std::unique_lock lock(mutex_);
  load_once();
  return ignored_lines_;
}

std::filesystem::path default_conv_algo_cache_file() {
  const auto env = [](const char* name) -> std::string_view {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string_view() : std::string_view(v);
  };
  const std::string_view explicit_file = env("KILN_CUDNN_CACHE");
  if (explicit_file == "none" || explicit_file == "off") return {};
  if (!explicit_file.empty()) return std::filesystem::path(explicit_file);
  const std::string_view xdg = env("XDG_CACHE_HOME");
  if (!xdg.empty()) return std::filesystem::path(xdg) / "kiln" / "cudnn_algos.txt";
  const std::string_view home = env("HOME");
  if (!home.empty()) return std::filesystem::path(home) / ".cache" / "kiln" / "cudnn_algos.txt";
  return {};
}

namespace {
struct ProcessCache {
  std::mutex mutex;
  std::shared_ptr<ConvAlgoCache> cache;
};
// Leaked on purpose: conv calls from threads still running at exit must find it alive.
ProcessCache& process_cache() {
  static ProcessCache* p = new ProcessCache;
  return *p;
}
}  // namespace

std::shared_ptr<ConvAlgoCache> conv_algo_cache() {
  ProcessCache& p = process_cache();
  std::lock_guard<std::mutex> lock(p.mutex);
  if (!p.cache) p.cache = std::make_shared<ConvAlgoCache>(default_conv_algo_cache_file());
  return p.cache;
}

void set_conv_algo_cache_file(const std::filesystem::path& file) {
  ProcessCache& p = process_cache();
  auto fresh = std::make_shared<ConvAlgoCache>(file);
  std::lock_guard<std::mutex> lock(p.mutex);
  p.cache = std::move(fresh);
}

}  // namespace kiln::cuda
