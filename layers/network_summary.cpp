// Network::summary: Keras 3's model.summary() table, as Keras prints it when its output
// is captured or logged (rich without a terminal: 80 columns, so line_length 76, no colour).
//
// Note [Summary layout] (keras/src/utils/summary_utils.py + rich.table):
//   columns: "Layer (type)", "Output Shape", "Param #" (right-aligned), and for graphs that
//   are not a chain "Connected to"; widths from positions [0.45, 0.80, 1.0] (chains) or
//   [0.3, 0.56, 0.74, 1.0] of line_length; rich adds one space of padding each side and
//   shrinks the padded widths to fit line_length minus the borders, taking
//   round(excess * remaining / columns) from each column in turn (rounding half to even,
//   as Python). Cells wrap at spaces; a word longer than its cell ends in "…".
//   Box: rich's HEAVY_HEAD with a line between rows.
#include <cmath>
#include <iostream>
#include <set>
#include <sstream>

#include "kiln/layers/core.h"
#include "kiln/layers/network.h"

namespace kiln::layers {

namespace {

// UTF-8 strings measured in code points (box characters and "…" are one column each).
std::size_t columns_of(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string repeat(const std::string& piece, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += piece;
  return out;
}

// Python's round() for x.5 cases: half to even.
long long round_half_even(double x) {
  const double r = std::nearbyint(x);  // the default rounding mode is to nearest, ties to even
  return static_cast<long long>(r);
}

// The padded widths rich gives fixed-width columns inside a table of total `line_length`.
std::vector<std::size_t> rich_widths(const std::vector<std::size_t>& content, std::size_t line_length) {
  std::vector<long long> w;
  for (std::size_t c : content) w.push_back(static_cast<long long>(c) + 2);
  const long long max_width = static_cast<long long>(line_length) - static_cast<long long>(content.size() + 1);
  long long total = 0;
  for (long long x : w) total += x;
  if (total > max_width) {
    long long remaining = total - max_width;
    long long ratio_left = static_cast<long long>(w.size());
    for (long long& x : w) {
      const long long take = std::min(x, round_half_even(static_cast<double>(remaining) / ratio_left));
      x -= take;
      remaining -= take;
      ratio_left -= 1;
    }
  }
  std::vector<std::size_t> out;
  for (long long x : w) out.push_back(static_cast<std::size_t>(std::max<long long>(x, 3)));
  return out;
}

// Greedy word wrap at spaces into lines of at most `width` columns; over-long words are
// cut with an ellipsis (rich's default overflow for table cells).
std::vector<std::string> wrap(const std::string& text, std::size_t width) {
  std::vector<std::string> words;
  std::string word;
  std::istringstream is(text);
  while (is >> word) words.push_back(word);
  std::vector<std::string> lines;
  std::string line;
  for (std::string w : words) {
    if (columns_of(w) > width) {
      // Cut to width - 1 code points plus "…".
      std::string cut;
      std::size_t n = 0;
      for (std::size_t i = 0; i < w.size() && n < width - 1; ++i) {
        cut += w[i];
        if (i + 1 >= w.size() || (static_cast<unsigned char>(w[i + 1]) & 0xC0) != 0x80) ++n;
      }
      w = cut + "…";
    }
    if (line.empty()) {
      line = w;
    } else if (columns_of(line) + 1 + columns_of(w) <= width) {
      line += " " + w;
    } else {
      lines.push_back(line);
      line = w;
    }
  }
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

enum class Align { left, right, center };

std::string justify(const std::string& s, std::size_t width, Align align) {
  const std::size_t n = columns_of(s);
  if (n >= width) return s;
  const std::size_t pad = width - n;
  if (align == Align::right) return std::string(pad, ' ') + s;
  if (align == Align::center) return std::string(pad / 2, ' ') + s + std::string(pad - pad / 2, ' ');
  return s + std::string(pad, ' ');
}

struct Table {
  std::vector<std::string> header;
  std::vector<Align> align;
  std::vector<std::size_t> widths;  // padded
  std::vector<std::vector<std::string>> rows;

  std::string rule(const char* left, const char* fill, const char* mid, const char* right) const {
    std::string s = left;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      s += repeat(fill, widths[i]);
      s += i + 1 < widths.size() ? mid : right;
    }
    return s + "\n";
  }
  std::string row(const std::vector<std::string>& cells, const char* bar) const {
    std::vector<std::vector<std::string>> wrapped;
    std::size_t height = 1;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      wrapped.push_back(wrap(cells[i], widths[i] - 2));
      height = std::max(height, wrapped.back().size());
    }
    std::string s;
    for (std::size_t line = 0; line < height; ++line) {
      s += bar;
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const std::string text = line < wrapped[i].size() ? wrapped[i][line] : "";
        s += " " + justify(text, widths[i] - 2, align[i]) + " " + bar;
      }
      s += "\n";
    }
    return s;
  }
  std::string render() const {
    std::string s = rule("┏", "━", "┳", "┓");
    s += row(header, "┃");
    s += rows.empty() ? rule("┗", "━", "┻", "┛") : rule("┡", "━", "╇", "┩");
    for (std::size_t r = 0; r < rows.size(); ++r) {
      s += row(rows[r], "│");
      s += r + 1 < rows.size() ? rule("├", "─", "┼", "┤") : rule("└", "─", "┴", "┘");
    }
    return s;
  }
};

std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  const int len = static_cast<int>(digits.size());
  for (int i = 0; i < len; ++i) {
    if (i > 0 && (len - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Keras' readable_memory_size: "10.79 KB", "0.00 B".
std::string readable_size(double bytes) {
  static const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  for (const char* unit : units) {
    if (bytes / 1024 < 1) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.2f %s", bytes, unit);
      return buf;
    }
    bytes /= 1024;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f PB", bytes);
  return buf;
}

std::int64_t count(const std::vector<Variable>& vars) {
  std::int64_t n = 0;
  for (const Variable& v : vars) n += v.numel();
  return n;
}
double bytes(const std::vector<Variable>& vars) {
  double n = 0;
  for (const Variable& v : vars) n += static_cast<double>(v.numel()) * static_cast<double>(itemsize(v.dtype()));
  return n;
}

}  // namespace

std::string Network::summary(SummaryOptions options) const {
  // Chain-like graphs print without "Connected to" (Keras' sequential_like).
  bool chain = true;
  if (!sequential_) {
    std::set<const Layer*> seen_layers;
    std::set<std::pair<const KerasNode*, int>> consumed;
    chain = inputs_.size() == 1 && outputs_.size() == 1;
    for (const auto& n : nodes_) {
      if (!seen_layers.insert(n->layer.get()).second || n->inputs.size() > 1) chain = false;
      for (const KerasTensor& t : n->inputs) {
        if (!consumed.insert({t.node().get(), t.index()}).second) chain = false;
      }
    }
  }
  Table table;
  std::vector<double> positions;
  std::size_t line_length = 76;  // min(88 or 108, 80 - 4): Keras without a terminal
  if (chain) {
    table.header = {"Layer (type)", "Output Shape", "Param #"};
    table.align = {Align::left, Align::left, Align::right};
    positions = {0.45, 0.80, 1.0};
  } else {
    table.header = {"Layer (type)", "Output Shape", "Param #", "Connected to"};
    table.align = {Align::left, Align::left, Align::right, Align::left};
    positions = {0.3, 0.56, 0.74, 1.0};
  }
  if (options.show_trainable) {
    // Keras widens its default by 12 before capping it at the terminal: still 76 here.
    for (double& p : positions) p *= 0.90;
    positions.push_back(1.0);
    table.header.push_back("Trainable");
    table.align.push_back(Align::center);
  }
  if (options.line_length > 0) line_length = static_cast<std::size_t>(options.line_length);
  std::vector<std::size_t> content;
  std::size_t current = 0;
  for (double p : positions) {
    const auto edge = static_cast<std::size_t>(p * static_cast<double>(line_length));
    KILN_CHECK(edge >= current + 4, ValueError, name(), ": summary line_length ", line_length, " is too narrow");
    content.push_back(edge - current);
    current = edge;
  }
  table.widths = rich_widths(content, line_length);

  // Sequential models list their layers without the InputLayer; graphs list every layer.
  for (const LayerRef& layer : layers_) {
    std::vector<std::string> cells;
    cells.push_back(layer->name() + " (" + layer->class_name() + ")");
    // The output shape of the layer's last node in this graph (Keras' format_layer_shape).
    std::shared_ptr<const KerasNode> last;
    for (const auto& n : nodes_) {
      if (n->layer.get() == layer.get()) last = n;
    }
    if (last) {
      if (last->output_shapes.size() == 1) {
        cells.push_back(shape_str(last->output_shapes[0]));
      } else {
        std::string s = "[";
        for (std::size_t i = 0; i < last->output_shapes.size(); ++i) {
          s += (i ? ", " : "") + shape_str(last->output_shapes[i]);
        }
        cells.push_back(s + "]");
      }
    } else {
      cells.push_back("?");
    }
    cells.push_back(layer->built() ? with_commas(layer->count_params()) : "0 (unbuilt)");
    if (!chain) {
      std::string connections;
      for (const auto& n : nodes_) {
        if (n->layer.get() != layer.get()) continue;
        for (const KerasTensor& t : n->inputs) {
          if (!connections.empty()) connections += ", ";
          connections += t.layer()->name() + "[" + std::to_string(t.node()->node_index) + "][" +
                         std::to_string(t.index()) + "]";
        }
      }
      cells.push_back(connections.empty() ? "-" : connections);
    }
    if (options.show_trainable) cells.push_back(layer->weights().empty() ? "-" : layer->trainable() ? "Y" : "N");
    table.rows.push_back(std::move(cells));
  }

  const std::vector<Variable> trainable = trainable_weights();
  const std::vector<Variable> frozen = non_trainable_weights();
  std::ostringstream os;
  os << "Model: \"" << name() << "\"\n" << table.render();
  os << " Total params: " << with_commas(count(trainable) + count(frozen)) << " ("
     << readable_size(bytes(trainable) + bytes(frozen)) << ")\n";
  os << " Trainable params: " << with_commas(count(trainable)) << " (" << readable_size(bytes(trainable)) << ")\n";
  os << " Non-trainable params: " << with_commas(count(frozen)) << " (" << readable_size(bytes(frozen)) << ")\n";
  return os.str();
}

void Network::print_summary(std::ostream& os, SummaryOptions options) const { os << summary(options); }

void Network::print_summary(SummaryOptions options) const { print_summary(std::cout, options); }

}  // namespace kiln::layers
