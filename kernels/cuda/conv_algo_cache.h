// The cuDNN convolution algorithm cache: (GPU, cuDNN version, direction, problem, math type)
// -> (algorithm, the math type it runs with, workspace bytes), held in memory and in a small
// text file, so a process never times a problem that an earlier run already timed. It knows
// nothing of cuDNN (algorithms and math types are plain ints), so it compiles in every build
// and is unit-tested without a GPU (tests/kernels/conv_algo_cache_test.cpp).
//
// The file (see Note [Algorithm cache file] in conv_algo_cache.cpp): one entry per line,
// tab-separated, first field the format tag:
//   kiln-cudnn-algo-v1 <device> <cudnn version> <direction> <problem> <math> <algo> <algo math> <workspace>
// Lines starting with '#' and blank lines are comments. Loaded once (on the first lookup);
// each new entry rewrites the file through a temporary file, fsync and rename (never a torn
// file), merged under a lock with what other processes wrote meanwhile. A malformed or
// foreign line is skipped with one warning per load, never an error; a file that cannot
// be read or written leaves the cache working in memory (one warning).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace kiln::cuda {

enum class ConvDirection { forward, backward_data, backward_filter };
// "forward", "backward_data", "backward_filter" (the file's spelling).
const char* direction_name(ConvDirection direction);

struct ConvAlgoKey {
  std::string device;               // GPU name and compute capability: "NVIDIA H100 80GB HBM3 sm_90"
  std::int64_t library_version = 0;  // cudnnGetVersion(): 91900 for 9.19.0
  ConvDirection direction = ConvDirection::forward;
  std::string problem;              // ConvGeometry::key() of the problem cuDNN sees
  std::string math;                 // the math type asked for: "fma", "tf32", "tensor_op", ...
  // The fields joined by tabs (tabs and line breaks inside a field become spaces): the
  // in-memory map's key and the head of the entry's line.
  std::string text() const;
};

struct ConvAlgoChoice {
  int algo = 0;                       // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  int math_type = 0;                  // the cudnnMathType_t the algorithm was timed with
  std::int64_t workspace_bytes = 0;
  friend bool operator==(const ConvAlgoChoice&, const ConvAlgoChoice&) = default;
};

// One line of the file (no line break) and its inverse; nullopt for a line that is not a
// well-formed entry of this format (comments included).
std::string format_conv_algo_line(const ConvAlgoKey& key, const ConvAlgoChoice& choice);
std::optional<std::pair<ConvAlgoKey, ConvAlgoChoice>> parse_conv_algo_line(std::string_view line);

class ConvAlgoCache {
 public:
  // `file` empty: memory only. The file is read on the first lookup, not here.
  explicit ConvAlgoCache(std::filesystem::path file);
  ConvAlgoCache(const ConvAlgoCache&) = delete;
  ConvAlgoCache& operator=(const ConvAlgoCache&) = delete;

  // Thread-safe; many lookups run at once (a shared lock after the first load).
  std::optional<ConvAlgoChoice> lookup(const ConvAlgoKey& key);
  // Records the choice in memory and, when there is a file, persists it. An entry already
  // on disk for the key (another process timed it meanwhile) is kept and adopted.
  void insert(const ConvAlgoKey& key, const ConvAlgoChoice& choice);

  const std::filesystem::path& file() const { return file_; }
  std::size_t size();                 // entries in memory (loads the file first)
  std::int64_t ignored_lines();       // malformed or foreign lines the load skipped

 private:
  void load_once();
  // Under the file lock: reads the file as it is now, adds `line` unless its key is there,
  // rewrites it atomically. Returns the choice the file holds for the key afterwards.
  ConvAlgoChoice persist(const ConvAlgoKey& key, const ConvAlgoChoice& choice);

  std::filesystem::path file_;
  std::shared_mutex mutex_;
  bool loaded_ = false;
  bool disk_failed_ = false;  // a write failed: warned once, memory only from then on
  std::int64_t ignored_lines_ = 0;
  std::unordered_map<std::string, ConvAlgoChoice> entries_;
};

// The file the process-wide cache uses: $KILN_CUDNN_CACHE when set ("none" or "off": no
// file, memory only), else $XDG_CACHE_HOME/kiln/cudnn_algos.txt, else
// ~/.cache/kiln/cudnn_algos.txt; empty (memory only) when none of those can be formed.
std::filesystem::path default_conv_algo_cache_file();
// The process-wide cache, created on first use over default_conv_algo_cache_file().
std::shared_ptr<ConvAlgoCache> conv_algo_cache();
// Replaces the process-wide cache with a fresh one over `file` (empty: memory only), which
// loads that file again on its first lookup: what a new process would see. For tests and
// tools; callers holding the previous cache keep a valid object.
void set_conv_algo_cache_file(const std::filesystem::path& file);

}  // namespace kiln::cuda
