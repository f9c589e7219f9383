// The cuDNN algorithm cache without cuDNN: the line format round trip and what it rejects, a
// second load (a new process) finding what the first one wrote, corrupt and foreign lines
// (skipped with one warning, dropped at the next write), concurrent lookups and writers,
// entries another process wrote first, atomic rewrites (no torn file, no temporary left),
// an unwritable file (memory only), and where the file lives.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kernels/cuda/conv_algo_cache.h"

namespace kiln::cuda {
namespace {

namespace fs = std::filesystem;

ConvAlgoKey key(int i, ConvDirection d = ConvDirection::forward) {
  return {"NVIDIA H100 80GB HBM3 sm_90", 91900, d,
          "float32 n" + std::to_string(i) + " h56 w56 c64 o64 k3x3 g1 s1x1 d1x1 p1,1,1,1 out56x56", "fma"};
}
ConvAlgoChoice choice(int i) { return {i % 8, i % 4, std::int64_t{1} << (i % 40)}; }

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Each test gets its own folder under the system's temporary folder.
class ConvAlgoCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kiln_algo_cache_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    file_ = dir_ / "sub" / "cudnn_algos.txt";
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& text) {
    fs::create_directories(file_.parent_path());
    std::ofstream(file_) << text;
  }

  fs::path dir_, file_;
};

TEST(ConvAlgoCacheFormat, LineRoundTripsEveryField) {
  for (const ConvDirection d : {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_filter}) {
    const ConvAlgoKey k = key(7, d);
    const ConvAlgoChoice c{6, 3, (std::int64_t{1} << 40) + 5};
    const std::string line = format_conv_algo_line(k, c);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    const auto parsed = parse_conv_algo_line(line);
    ASSERT_TRUE(parsed.has_value()) << line;
    EXPECT_EQ(parsed->first.text(), k.text());
    EXPECT_EQ(parsed->first.direction, d);
    EXPECT_EQ(parsed->first.library_version, 91900);
    EXPECT_EQ(parsed->first.device, k.device);
    EXPECT_EQ(parsed->first.problem, k.problem);
    EXPECT_EQ(parsed->first.math, "fma");
    EXPECT_EQ(parsed->second, c);
    // A line read from a file written on Windows ends in \r.
    EXPECT_TRUE(parse_conv_algo_line(line + "\r").has_value());
  }
}

TEST(ConvAlgoCacheFormat, TabsAndLineBreaksInsideFieldsCannotSplitTheLine) {
  ConvAlgoKey k = key(1);
  k.device = "odd\tname\nwith breaks";
  const std::string line = format_conv_algo_line(k, choice(1));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto parsed = parse_conv_algo_line(line);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->first.device, "odd name with breaks");
  EXPECT_EQ(parsed->first.text(), k.text());  // the key the cache files it under
}

TEST(ConvAlgoCacheFormat, KeyTextDiffersInEveryField) {
  const ConvAlgoKey base = key(1);
  std::vector<ConvAlgoKey> variants(5, base);
  variants[0].device = "NVIDIA A100-SXM4-80GB sm_80";
  variants[1].library_version = 90100;
  variants[2].direction = ConvDirection::backward_filter;
  variants[3].problem = key(2).problem;
  variants[4].math = "tf32";
  for (const ConvAlgoKey& v : variants) EXPECT_NE(v.text(), base.text());
}

TEST(ConvAlgoCacheFormat, RejectsMalformedLines) {
  const std::string good = format_conv_algo_line(key(3), choice(3));
  ASSERT_TRUE(parse_conv_algo_line(good).has_value());
  std::string other_version = good;
  other_version.replace(0, std::string("kiln-cudnn-algo-v1").size(), "kiln-cudnn-algo-v2");
  const std::vector<std::string> bad = {
      "",
      "# a comment",
      "garbage",
      good.substr(0, good.size() / 2),  // torn in the middle
      good + "\textra",
      other_version,
      "kiln-cudnn-algo-v1\tdev\t91900\tsideways\tproblem\tfma\t1\t1\t0",
      "kiln-cudnn-algo-v1\tdev\t91900\tforward\tproblem\tfma\t-1\t1\t0",
      "kiln-cudnn-algo-v1\tdev\t91900\tforward\tproblem\tfma\t1\t1\t12abc",
      "kiln-cudnn-algo-v1\tdev\tnine\tforward\tproblem\tfma\t1\t1\t0",
      "kiln-cudnn-algo-v1\t\t91900\tforward\tproblem\tfma\t1\t1\t0",
      "kiln-cudnn-algo-v1\tdev\t91900\tforward\t\tfma\t1\t1\t0",
      "kiln-cudnn-algo-v1\tdev\t91900\tforward\tproblem\tfma\t1\t1\t99999999999999999999999",
  };
  for (const std::string& line : bad) EXPECT_FALSE(parse_conv_algo_line(line).has_value()) << "'" << line << "'";
}

TEST_F(ConvAlgoCacheTest, SecondLoadFindsWhatTheFirstWrote) {
  {
    ConvAlgoCache first(file_);
    EXPECT_FALSE(first.lookup(key(0)).has_value());  // no file yet: empty, no error
    for (int i = 0; i < 3; ++i) first.insert(key(i), choice(i));
    first.insert(key(0, ConvDirection::backward_data), choice(9));
    EXPECT_EQ(first.size(), 4u);
    EXPECT_EQ(first.lookup(key(1)), choice(1));
  }
  ASSERT_TRUE(fs::exists(file_)) << "the folder is created with the file";
  ConvAlgoCache second(file_);  // what a new process sees
  for (int i = 0; i < 3; ++i) EXPECT_EQ(second.lookup(key(i)), choice(i)) << i;
  EXPECT_EQ(second.lookup(key(0, ConvDirection::backward_data)), choice(9));
  EXPECT_FALSE(second.lookup(key(0, ConvDirection::backward_filter)).has_value());
  EXPECT_EQ(second.size(), 4u);
  EXPECT_EQ(second.ignored_lines(), 0);
}

TEST_F(ConvAlgoCacheTest, MemoryOnlyCacheWritesNothing) {
  ConvAlgoCache cache{fs::path()};
  cache.insert(key(1), choice(1));
  EXPECT_EQ(cache.lookup(key(1)), choice(1));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(ConvAlgoCacheTest, CorruptAndForeignLinesAreSkippedWithOneWarningAndDroppedOnWrite) {
  const std::string good = format_conv_algo_line(key(1), choice(1));
  write("# header\n\n" + good + "\nnot a cache line\n" + "kiln-cudnn-algo-v9\tfrom\ta\tfuture\tkiln\n" +
        format_conv_algo_line(key(2), choice(2)) + "\n" + good.substr(0, 20));  // torn last line
  ConvAlgoCache cache(file_);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(cache.lookup(key(1)), choice(1));
  EXPECT_EQ(cache.lookup(key(2)), choice(2));
  EXPECT_EQ(cache.ignored_lines(), 3);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("skipped 3"), std::string::npos) << err;
  EXPECT_NE(err.find("line 4"), std::string::npos) << err;  // the first bad line

  cache.insert(key(3), choice(3));  // rewrites the file: the bad lines go, the good stay
  ConvAlgoCache reloaded(file_);
  EXPECT_EQ(reloaded.ignored_lines(), 0);
  EXPECT_EQ(reloaded.size(), 3u);
  EXPECT_EQ(reloaded.lookup(key(3)), choice(3));
  EXPECT_EQ(read_text(file_).find("not a cache line"), std::string::npos);
}

TEST_F(ConvAlgoCacheTest, EntryAnotherProcessWroteFirstIsAdopted) {
  ConvAlgoCache a(file_), b(file_);
  EXPECT_FALSE(a.lookup(key(5)).has_value());  // a has loaded the (missing) file
  b.insert(key(5), choice(1));
  b.insert(key(6), choice(6));
  a.insert(key(5), choice(2));  // a timed it too, but the file already has b's
  EXPECT_EQ(a.lookup(key(5)), choice(1));
  EXPECT_EQ(a.lookup(key(6)), choice(6)) << "a adopts what it found on disk when it wrote";
  const std::string text = read_text(file_);
  EXPECT_EQ(text.find(format_conv_algo_line(key(5), choice(2))), std::string::npos);
  ConvAlgoCache fresh(file_);
  EXPECT_EQ(fresh.size(), 2u);
}

TEST_F(ConvAlgoCacheTest, ConcurrentLookupsSeeEveryEntry) {
  ConvAlgoCache cache(file_);
  constexpr int kEntries = 64;
  for (int i = 0; i < kEntries; ++i) cache.insert(key(i), choice(i));
  ConvAlgoCache shared(file_);  // loads on the threads' first lookups, which race
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 2000; ++r) {
        const int i = (r * 7 + t * 13) % (kEntries + 8);  // some misses too
        const auto got = shared.lookup(key(i));
        if (i < kEntries ? got != choice(i) : got.has_value()) ++wrong;
      }
    });
  }
  threads.emplace_back([&] {  // an insert while the lookups run
    for (int i = kEntries + 100; i < kEntries + 104; ++i) shared.insert(key(i), choice(i));
  });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(shared.size(), static_cast<std::size_t>(kEntries + 4));
}

TEST_F(ConvAlgoCacheTest, ConcurrentWritersKeepEveryEntry) {
  constexpr int kWriters = 4, kEach = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      ConvAlgoCache mine(file_);  // a separate cache object: like a separate process
      for (int i = 0; i < kEach; ++i) mine.insert(key(t * 100 + i), choice(i));
    });
  }
  for (std::thread& t : threads) t.join();
  ConvAlgoCache all(file_);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kWriters * kEach));
  EXPECT_EQ(all.ignored_lines(), 0);
}

TEST_F(ConvAlgoCacheTest, RewritesAreAtomicAndLeaveNoTemporaryFiles) {
  ConvAlgoCache writer(file_);
  writer.insert(key(0), choice(0));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, shrank{0};
  std::thread reader([&] {
    std::size_t last = 0;
    while (!done.load()) {
      ConvAlgoCache view(file_);  // a fresh load each time, racing the rewrites
      const std::size_t n = view.size();
      if (view.ignored_lines() != 0) ++torn;
      if (n < last) ++shrank;
      last = n;
    }
  });
  for (int i = 1; i < 60; ++i) writer.insert(key(i), choice(i));
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0) << "a reader saw a partly written file";
  EXPECT_EQ(shrank.load(), 0);
  for (const auto& entry : fs::directory_iterator(file_.parent_path())) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "cudnn_algos.txt" || name == "cudnn_algos.txt.lock") << "left behind: " << name;
  }
  EXPECT_EQ(ConvAlgoCache(file_).size(), 60u);
}

TEST_F(ConvAlgoCacheTest, LeftoverTemporaryFromACrashIsHarmless) {
  ConvAlgoCache first(file_);
  first.insert(key(1), choice(1));
  std::ofstream(file_.string() + ".tmp.99999.0") << format_conv_algo_line(key(2), choice(2)).substr(0, 10);
  ConvAlgoCache second(file_);
  EXPECT_EQ(second.lookup(key(1)), choice(1));
  EXPECT_EQ(second.ignored_lines(), 0);
  second.insert(key(2), choice(2));
  EXPECT_EQ(ConvAlgoCache(file_).size(), 2u);
}

TEST_F(ConvAlgoCacheTest, UnwritableFileWarnsOnceAndKeepsWorkingInMemory) {
  std::ofstream(dir_ / "a_file") << "x";
  const fs::path impossible = dir_ / "a_file" / "sub" / "cudnn_algos.txt";  // under a regular file
  ConvAlgoCache cache(impossible);
  ::testing::internal::CaptureStderr();
  cache.insert(key(1), choice(1));
  cache.insert(key(2), choice(2));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("memory only"), std::string::npos) << err;
  EXPECT_EQ(cache.lookup(key(1)), choice(1));
  EXPECT_EQ(cache.lookup(key(2)), choice(2));
}

// Sets an environment variable for its scope (unset when `value` is null).
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ConvAlgoCacheFile, DefaultFollowsTheEnvironment) {
  {
    EnvGuard cache("KILN_CUDNN_CACHE", "/tmp/x/algos.txt"), xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(default_conv_algo_cache_file(), fs::path("/tmp/x/algos.txt"));
  }
  {
    EnvGuard cache("KILN_CUDNN_CACHE", "none");
    EXPECT_TRUE(default_conv_algo_cache_file().empty());
  }
  {
    EnvGuard cache("KILN_CUDNN_CACHE", nullptr), xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(default_conv_algo_cache_file(), fs::path("/xdg/kiln/cudnn_algos.txt"));
  }
  {
    EnvGuard cache("KILN_CUDNN_CACHE", ""), xdg("XDG_CACHE_HOME", nullptr), home("HOME", "/home/u");
    EXPECT_EQ(default_conv_algo_cache_file(), fs::path("/home/u/.cache/kiln/cudnn_algos.txt"));
  }
}

TEST_F(ConvAlgoCacheTest, ProcessCacheCanBeRedirectedToAFreshLoad) {
  ConvAlgoCache(file_).insert(key(4), choice(4));
  const std::shared_ptr<ConvAlgoCache> before = conv_algo_cache();
  set_conv_algo_cache_file(file_);
  const std::shared_ptr<ConvAlgoCache> now = conv_algo_cache();
  EXPECT_NE(now.get(), before.get());
  EXPECT_EQ(now->file(), file_);
  EXPECT_EQ(now->lookup(key(4)), choice(4));
  EXPECT_EQ(conv_algo_cache().get(), now.get()) << "one process-wide cache until redirected again";
  set_conv_algo_cache_file(fs::path());  // leave the process memory-only, not pointing into dir_
  EXPECT_TRUE(conv_algo_cache()->file().empty());
  EXPECT_EQ(now->lookup(key(4)), choice(4)) << "holders of the old cache keep a valid object";
}

}  // namespace
}  // namespace kiln::cuda
