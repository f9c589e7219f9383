// Printing in the NumPy/PyTorch style:
//   tensor([[ 1.5000, -2.0000],
//           [ 0.2500,  3.0000]], dtype=float32, device=cpu)
// Floats share one format chosen from the values (integers print as "1.", very large or
// small magnitudes switch to scientific); tensors over 1000 elements show the first and
// last 3 entries of each axis with "..." between.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {
namespace {

constexpr std::int64_t kSummarizeOver = 1000;
constexpr std::int64_t kEdgeItems = 3;

enum class FloatStyle { integral, fixed, scientific };

struct FloatFormat {
  FloatStyle style = FloatStyle::fixed;

  std::string format(double v) const {
    char buf[64];
    if (std::isnan(v)) {
      return "nan";
    } else if (std::isinf(v)) {
      return v > 0 ? "inf" : "-inf";
    } else if (style == FloatStyle::integral) {
      std::snprintf(buf, sizeof buf, "%.0f.", v);
    } else if (style == FloatStyle::fixed) {
      std::snprintf(buf, sizeof buf, "%.4f", v);
    } else {
      std::snprintf(buf, sizeof buf, "%.4e", v);
    }
    return buf;
  }
};

// The elements a summary shows: the first and last kEdgeItems of every long axis, gathered
// into a small tensor on the same device, so printing a huge tensor formats (and, for cuda,
// copies to the host) only these.
Tensor edge_elements(const Tensor& t) {
  Tensor cur = t;
  for (int d = 0; d < t.ndim(); ++d) {
    if (cur.shape()[d] <= 2 * kEdgeItems) continue;
    Shape s = cur.shape();
    s[d] = 2 * kEdgeItems;
    Tensor out = empty(s, {.dtype = t.dtype(), .device = t.device()});
    out.slice(d, 0, kEdgeItems).copy_(cur.slice(d, 0, kEdgeItems));
    out.slice(d, kEdgeItems, 2 * kEdgeItems).copy_(cur.slice(d, -kEdgeItems));
    cur = out;
  }
  return cur;
}

FloatStyle choose_style(const std::vector<double>& values) {
  bool all_integral = true;
  double max_abs = 0, min_abs = INFINITY;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    all_integral = all_integral && v == std::floor(v);
    max_abs = std::max(max_abs, std::fabs(v));
    if (v != 0) min_abs = std::min(min_abs, std::fabs(v));
  }
  if (all_integral && max_abs < 1e8) return FloatStyle::integral;
  if (max_abs >= 1e8 || (min_abs < 1e-4 && min_abs > 0) || max_abs / min_abs >= 1e8) {
    return FloatStyle::scientific;
  }
  return FloatStyle::fixed;
}

// Every element as text, row-major. Integers are read as int64 so no digit is lost.
std::vector<std::string> format_cells(const Tensor& t) {
  std::vector<std::string> cells;
  if (is_floating(t.dtype())) {
    const std::vector<double> values = t.to_vector<double>();
    const FloatFormat fmt{choose_style(values)};
    for (double v : values) cells.push_back(fmt.format(v));
  } else if (t.dtype() == DType::bool_) {
    for (bool v : t.to_vector<bool>()) cells.emplace_back(v ? "True" : "False");
  } else {
    for (std::int64_t v : t.to_vector<std::int64_t>()) cells.push_back(std::to_string(v));
  }
  return cells;
}

struct Printer {
  const std::vector<std::string>& cells;  // row-major, every shown element
  const Shape& shape;                     // of the shown elements
  const Shape& full_shape;                // of the tensor; longer axes get "..."
  std::size_t width;                      // of the widest cell
  int indent;  // column where the outermost '[' stands
  std::ostringstream& os;

  // Prints the sub-tensor at `axis` starting at row-major element `base`.
  void print(int axis, std::int64_t base, std::int64_t block) {
    const std::int64_t extent = shape[axis];
    const std::int64_t inner = block / (extent ? extent : 1);
    os << '[';
    const bool gap = full_shape[axis] > extent;  // the middle of this axis is elided
    for (std::int64_t i = 0; i < extent; ++i) {
      if (i > 0) separator(axis);
      if (gap && i == kEdgeItems) {
        os << "...";
        separator(axis);
      }
      if (axis + 1 == shape.ndim()) {
        const std::string& s = cells[base + i];
        os << std::string(width - s.size(), ' ') << s;
      } else {
        print(axis + 1, base + i * inner, inner);
      }
    }
    os << ']';
  }

  void separator(int axis) {
    if (axis + 1 == shape.ndim()) {
      os << ", ";
      return;
    }
    os << ',' << std::string(shape.ndim() - axis - 1, '\n')
       << std::string(indent + axis + 1, ' ');
  }
};

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  const std::string head = "tensor(";
  const bool summarize = numel() > kSummarizeOver;
  const Tensor shown = summarize ? edge_elements(*this) : *this;
  const std::vector<std::string> cells = format_cells(shown);
  std::size_t width = 0;
  for (const auto& c : cells) width = std::max(width, c.size());
  if (ndim() == 0) {
    os << head << cells[0];
  } else if (numel() == 0) {
    os << head << "[], shape=" << shape();
  } else {
    os << head;
    Printer p{cells, shown.shape(), shape(), width, static_cast<int>(head.size()), os};
    p.print(0, 0, shown.numel());
    if (summarize) os << ", shape=" << shape();
  }
  os << ", dtype=" << dtype() << ", device=" << device() << ')';
  return os.str();
}

}  // namespace kiln
