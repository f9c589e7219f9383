// The emulator's settings: environment parsing and the setters of control.h.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "kiln/core/cuda/sim/state.h"

namespace kiln::sim {
namespace {

constexpr std::size_t kDefaultMemoryCap = std::size_t{80} << 30;  // an H100's 80 GiB

std::size_t default_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return kDefaultMemoryCap;
  const std::size_t half = static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 2;
  return std::min(kDefaultMemoryCap, half);
}

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// Applies one variable; returns false (and says why in `error`) when malformed.
template <class Parse, class Apply>
void read_env(const char* name, Parse parse, Apply apply, std::string& error) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return;
  if (auto parsed = parse(std::string_view(value))) {
    apply(*parsed);
  } else if (error.empty()) {
    error = std::string(name) + "='" + value + "' is not valid";
  }
}

void load_settings(detail::Settings& s) {
  s.memory_limit = default_memory_limit();
  s.worker_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string& err = s.init_error;
  read_env("KILN_SIM_DEVICES", parse_unsigned, [&](std::uint64_t n) {
    if (n > static_cast<std::uint64_t>(detail::kMaxDevices)) {
      err = "KILN_SIM_DEVICES=" + std::to_string(n) + " is more than the limit of " +
            std::to_string(detail::kMaxDevices);
    } else {
      s.devices = static_cast<int>(n);
    }
  }, err);
  read_env("KILN_SIM_MEMORY", parse_byte_size, [&](std::size_t n) { s.memory_limit = n; }, err);
  read_env("KILN_SIM_THREADS", parse_unsigned, [&](std::uint64_t n) {
    s.worker_threads = static_cast<int>(std::clamp<std::uint64_t>(n, 1, 1024));
  }, err);
  read_env("KILN_SIM_BLOCK_ORDER", parse_block_order, [&](BlockOrderSetting o) {
    s.block_order = static_cast<int>(o.order);
    s.block_order_seed = o.seed;
    if (o.order == BlockOrder::random) {  // say the seed, so a failing order can be replayed
      std::fprintf(stderr, "kiln sim: KILN_SIM_BLOCK_ORDER=random:%llu\n",
                   static_cast<unsigned long long>(o.seed));
    }
  }, err);
  if (!err.empty()) {
    err += " (examples: KILN_SIM_DEVICES=2 KILN_SIM_MEMORY=256MiB KILN_SIM_THREADS=2 "
           "KILN_SIM_BLOCK_ORDER=random:42)";
  }
}

}  // namespace

namespace detail {
Settings& settings() {
  static Settings* s = [] {
    auto* p = new Settings();  // never destroyed: worker threads may outlive statics
    load_settings(*p);
    return p;
  }();
  return *s;
}
}  // namespace detail

std::optional<std::size_t> parse_byte_size(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    std::size_t factor;
  };
  static constexpr Unit kUnits[] = {
      {"TiB", std::size_t{1} << 40}, {"GiB", std::size_t{1} << 30}, {"MiB", std::size_t{1} << 20},
      {"KiB", std::size_t{1} << 10}, {"TB", 1000000000000ull},     {"GB", 1000000000ull},
      {"MB", 1000000ull},            {"KB", 1000ull},               {"B", 1}};
  std::size_t factor = 1;
  for (const Unit& u : kUnits) {
    if (text.size() > u.suffix.size() && text.ends_with(u.suffix)) {
      factor = u.factor;
      text.remove_suffix(u.suffix.size());
      break;
    }
  }
  const auto n = parse_unsigned(text);
  if (!n || (*n != 0 && factor > SIZE_MAX / *n)) return std::nullopt;
  return static_cast<std::size_t>(*n * factor);
}

std::optional<BlockOrderSetting> parse_block_order(std::string_view text) {
  if (text == "forward") return BlockOrderSetting{BlockOrder::forward, 0};
  if (text == "reverse") return BlockOrderSetting{BlockOrder::reverse, 0};
  if (text == "random") return BlockOrderSetting{BlockOrder::random, std::random_device{}()};
  if (text.starts_with("random:")) {
    if (auto seed = parse_unsigned(text.substr(7))) {
      return BlockOrderSetting{BlockOrder::random, *seed};
    }
  }
  return std::nullopt;
}

void set_memory_limit(std::size_t bytes) { detail::settings().memory_limit = bytes; }
std::size_t memory_limit() { return detail::settings().memory_limit; }

void set_block_order(BlockOrderSetting setting) {
  detail::settings().block_order = static_cast<int>(setting.order);
  detail::settings().block_order_seed = setting.seed;
}
BlockOrderSetting block_order() {
  return {static_cast<BlockOrder>(detail::settings().block_order.load()),
          detail::settings().block_order_seed.load()};
}

void set_worker_threads(int count) { detail::settings().worker_threads = std::max(1, count); }
int worker_threads() { return detail::settings().worker_threads; }

}  // namespace kiln::sim
