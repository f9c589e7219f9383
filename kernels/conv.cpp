// conv2d and conv2d_transpose: options -> ConvGeometry (Keras' "same" padding and
// Conv2DTranspose output sizes), the checks, the backend choice (cpu: oneDNN; cuda: cuDNN or
// the native im2col + GEMM), and the recorded backwards. A convolution is three passes over
// one geometry: forward, backward-data (= the transposed convolution) and backward-filter.
// conv2d's input gradient runs the transposed convolution, conv2d_transpose's runs conv2d.
#include "kiln/kernels/conv.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "kiln/kernels/autograd/node.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/kernels/reduce.h"

namespace kiln {
namespace {

// -1: no override; else the ConvBackend's value. Benchmark mode: -1 unset (read the env).
std::atomic<int> g_backend_override{-1};
std::atomic<int> g_cudnn_benchmark{-1};

ConvBackend backend_from_env() {
#if KILN_CUDA_SIM
  return ConvBackend::native;  // SIM has no cuDNN
#else
  const char* env = std::getenv("KILN_CONV");
  if (env == nullptr || *env == '\0') return ConvBackend::vendor;
  const std::string_view value(env);
  if (value == "native") return ConvBackend::native;
  KILN_CHECK(value == "vendor" || value == "cudnn", ValueError,
             "KILN_CONV must be 'native' or 'vendor' (or 'cudnn'), got '", value, "'");
  return ConvBackend::vendor;
#endif
}

bool cudnn_benchmark_from_env() {
  const char* env = std::getenv("KILN_CUDNN_BENCHMARK");
  return env != nullptr && (std::string_view(env) == "1" || std::string_view(env) == "true");
}

// ---- checks and geometry ----

std::int64_t dilated(std::int64_t k, std::int64_t d) { return (k - 1) * d + 1; }

// Keras (TensorFlow) "same": output ceil(in / stride), the padding total split with the
// extra row or column at the bottom or right.
std::pair<std::int64_t, std::int64_t> same_pads(std::int64_t in, std::int64_t k_eff, std::int64_t stride) {
  const std::int64_t out = (in + stride - 1) / stride;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * stride + k_eff - in, 0);
  return {total / 2, total - total / 2};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string describe(const Tensor& x, const Tensor& w) {
  std::ostringstream os;
  os << "x " << x.shape() << " and weight " << w.shape();
  return os.str();
}

void check_tensors(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias) {
  KILN_CHECK(x.defined() && w.defined(), ValueError, op, ": ", x.defined() ? "weight" : "x",
             " is an undefined tensor");
  detail::check_same_device(op, {&x, &w, &bias});
  KILN_CHECK(is_floating(x.dtype()) && w.dtype() == x.dtype(), TypeError, op,
             ": expects floating x and weight of one dtype, got x ", x.dtype(), " ", x.shape(),
             " and weight ", w.dtype(), " ", w.shape());
  KILN_CHECK(!bias.defined() || bias.dtype() == x.dtype(), TypeError, op, ": bias has dtype ",
             bias.dtype(), ", x and weight have ", x.dtype());
  KILN_CHECK(x.ndim() == 4, ShapeError, op, ": expected x of rank 4 (N, H, W, C) in NHWC, got shape ",
             x.shape(), " (rank ", x.ndim(), ")");
  KILN_CHECK(w.ndim() == 4, ShapeError, op,
             ": expected a weight of rank 4 (out, KH, KW, in / groups), got shape ", w.shape());
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  KILN_CHECK(xs[1] > 0 && xs[2] > 0 && xs[3] > 0, ShapeError, op, ": x ", xs,
             " has a zero-sized dimension; H, W and C must be at least 1 (only the batch may be 0)");
  KILN_CHECK(ws[0] > 0 && ws[1] > 0 && ws[2] > 0 && ws[3] > 0, ShapeError, op, ": weight ", ws,
             " has a zero-sized dimension (x ", xs, ")");
}

void check_hyper(const char* op, const std::array<std::int64_t, 2>& strides,
                 const std::array<std::int64_t, 2>& dilation, std::int64_t groups) {
  KILN_CHECK(strides[0] >= 1 && strides[1] >= 1, ValueError, op, ": strides must be >= 1, got (",
             strides[0], ", ", strides[1], ")");
  KILN_CHECK(dilation[0] >= 1 && dilation[1] >= 1, ValueError, op, ": dilation must be >= 1, got (",
             dilation[0], ", ", dilation[1], ")");
  KILN_CHECK(groups >= 1, ValueError, op, ": groups must be >= 1, got ", groups);
}

// The channel count `want` x's last dim must have; suggests NHWC when dim 1 has it instead.
void check_channels(const char* op, const Tensor& x, const Tensor& w, std::int64_t want,
                    const char* rule, std::int64_t groups) {
  const auto& xs = x.shape();
  if (xs[3] == want) return;
  const bool nchw = xs[1] == want;
  KILN_THROW(ShapeError, op, ": x has ", xs[3], " channels in its last dimension but ", describe(x, w),
             " with groups = ", groups, " need ", rule, " = ", want,
             nchw ? "; x looks like NCHW (dim 1 has that many): kiln's images are NHWC (channels "
                    "last), transpose with x.permute({0, 2, 3, 1})"
                  : "");
}

void check_bias(const char* op, const Tensor& bias, std::int64_t c_out, const Tensor& w) {
  if (!bias.defined()) return;
  KILN_CHECK(bias.ndim() == 1 && bias.size(0) == c_out, ShapeError, op, ": expected a bias of shape (",
             c_out, ",) for weight ", w.shape(), ", got ", bias.shape());
}

// Output extent of a convolution along one axis; the kernel must fit the padded input.
std::int64_t conv_out(const char* op, const char* axis, std::int64_t in, std::int64_t pad_a,
                      std::int64_t pad_b, std::int64_t k, std::int64_t d, std::int64_t s,
                      const Tensor& x, const Tensor& w) {
  const std::int64_t padded = in + pad_a + pad_b, k_eff = dilated(k, d);
  KILN_CHECK(padded >= k_eff, ShapeError, op, ": the kernel is larger than the padded input along ", axis,
             ": ", k, (d > 1 ? " dilated to " + std::to_string(k_eff) : std::string()), " > ", in, " + ",
             pad_a, " + ", pad_b, " padding, for ", describe(x, w));
  return (padded - k_eff) / s + 1;
}

void finish(const char* op, ConvGeometry& g, const Tensor& x, const Tensor& w) {
  g.out_h = conv_out(op, "H", g.h, g.pad_top, g.pad_bottom, g.k_h, g.dil_h, g.stride_h, x, w);
  g.out_w = conv_out(op, "W", g.w, g.pad_left, g.pad_right, g.k_w, g.dil_w, g.stride_w, x, w);
}

// Keras' deconv_output_length: the transposed convolution's output extent.
std::int64_t transpose_length(std::int64_t in, std::int64_t k_eff, bool same, std::int64_t out_pad,
                              std::int64_t s) {
  if (out_pad < 0) return same ? in * s : in * s + std::max<std::int64_t>(k_eff - s, 0);
  const std::int64_t pad = same ? k_eff / 2 : 0;
  return (in - 1) * s + k_eff - 2 * pad + out_pad;
}

// ---- the three passes, recorded ----

Tensor empty_nhwc(const ConvGeometry& g, std::int64_t h, std::int64_t w, std::int64_t c, Device device) {
  return empty({g.n, h, w, c}, {.dtype = g.dtype, .device = device});
}

Tensor contiguous_detached(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

Tensor transposed_conv(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& bias);

// (dw, db) of the convolution g given its input x and output gradient dy (both contiguous);
// each only when asked (x is needed, and may be undefined, only for dw).
std::vector<Tensor> filter_grads(const ConvGeometry& g, const Tensor& x, const Tensor& dy, bool need_w,
                                 bool need_b) {
  if (!need_w) return {Tensor(), need_b ? sum(dy, {0, 1, 2}) : Tensor()};
  const TensorOptions opts{.dtype = g.dtype, .device = dy.device()};
  Tensor dw = empty({g.c_out, g.k_h, g.k_w, g.c_in_per_group()}, opts);
  Tensor db = need_b ? empty({g.c_out}, opts) : Tensor();
  if (g.n == 0) {
    dw.zero_();
    if (need_b) db.zero_();
  } else {
    detail::conv2d_backward_filter(g, x, dy, dw, db);
  }
  return {dw, db};
}

// y (N, OH, OW, C_out) = conv(x, w) + bias.
Tensor conv(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias) {
  const Tensor xc = contiguous_detached(x), wc = contiguous_detached(w), bc = contiguous_detached(bias);
  Tensor y = empty_nhwc(g, g.out_h, g.out_w, g.c_out, x.device());
  if (g.n > 0) detail::conv2d_forward(g, xc, wc, bc, y);
  if (needs_grad({&x, &w, &bias})) {
    // Saved: x for the weight gradient, w for the input gradient, each only when needed.
    const bool need_x = x.requires_grad(), need_w = w.requires_grad();
    record("Conv2dBackward", {x, w, bias}, {y},
           [g, xc = need_w ? xc : Tensor(), wc = need_x ? wc : Tensor(), need_x, need_w,
            need_b = bias.defined() && bias.requires_grad()](std::vector<Tensor>& grads) {
             const Tensor dy = grads[0].to(g.dtype).contiguous();
             std::vector<Tensor> out = filter_grads(g, xc, dy, need_w, need_b);
             const Tensor dx = need_x ? transposed_conv(g, dy, wc, Tensor()) : Tensor();
             return std::vector<Tensor>{dx, out[0], out[1]};
           });
  }
  return y;
}

// dx (N, H, W, C_in) = convᵀ(dy, w) + bias: the backward-data pass of g as an op.
Tensor transposed_conv(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& bias) {
  const Tensor dyc = contiguous_detached(dy), wc = contiguous_detached(w);
  Tensor dx = empty_nhwc(g, g.h, g.w, g.c_in, dy.device());
  if (g.n > 0) detail::conv2d_backward_data(g, dyc, wc, dx);
  if (bias.defined()) dx = add(dx, bias.detach());
  if (needs_grad({&dy, &w, &bias})) {
    // <dx, v> = <dy, conv(v, w)> = <w, filter(v, dy)>: dy's gradient is the forward pass,
    // w's the filter pass with v in the input's place and dy in the output gradient's.
    const bool need_dy = dy.requires_grad(), need_w = w.requires_grad();
    record("Conv2dTransposeBackward", {dy, w, bias}, {dx},
           [g, dyc = need_w ? dyc : Tensor(), wc = need_dy ? wc : Tensor(), need_dy, need_w,
            need_b = bias.defined() && bias.requires_grad()](std::vector<Tensor>& grads) {
             const Tensor v = grads[0].to(g.dtype).contiguous();
             const Tensor ddy = need_dy ? conv(g, v, wc, Tensor()) : Tensor();
             const Tensor dw = need_w ? filter_grads(g, v, dyc, true, false)[0] : Tensor();
             const Tensor db = need_b ? sum(v, {0, 1, 2}) : Tensor();
             return std::vector<Tensor>{ddy, dw, db};
           });
  }
  return dx;
}

#if KILN_HAS_CUDA
#if !KILN_CUDA_SIM
bool use_cudnn() { return conv_backend() == ConvBackend::vendor && cuda::cudnn_available(); }
#endif

void cuda_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) {
#if !KILN_CUDA_SIM
  if (use_cudnn()) return cuda::conv2d_forward_cudnn(g, x, w, b, y);
#endif
  cuda::conv2d_forward_native(g, x, w, b, y);
}
void cuda_backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& dx) {
#if !KILN_CUDA_SIM
  if (use_cudnn()) return cuda::conv2d_backward_data_cudnn(g, dy, w, dx);
#endif
  cuda::conv2d_backward_data_native(g, dy, w, dx);
}
void cuda_backward_filter(const ConvGeometry& g, const Tensor& x, const Tensor& dy, const Tensor& dw,
                          const Tensor& db) {
#if !KILN_CUDA_SIM
  if (use_cudnn()) return cuda::conv2d_backward_filter_cudnn(g, x, dy, dw, db);
#endif
  cuda::conv2d_backward_filter_native(g, x, dy, dw, db);
}
#endif

}  // namespace

std::string ConvGeometry::key() const {
  std::ostringstream os;
  os << name(dtype) << " n" << n << " h" << h << " w" << w << " c" << c_in << " o" << c_out << " k" << k_h
     << "x" << k_w << " g" << groups << " s" << stride_h << "x" << stride_w << " d" << dil_h << "x" << dil_w
     << " p" << pad_top << "," << pad_bottom << "," << pad_left << "," << pad_right << " out" << out_h << "x"
     << out_w;
  return os.str();
}

ConvBackend conv_backend() {
  const int override_value = g_backend_override.load(std::memory_order_relaxed);
  if (override_value >= 0) return static_cast<ConvBackend>(override_value);
  static const ConvBackend from_env = backend_from_env();
  return from_env;
}

void set_conv_backend(ConvBackend backend) {
  g_backend_override.store(static_cast<int>(backend), std::memory_order_relaxed);
}

void set_cudnn_benchmark(bool on) { g_cudnn_benchmark.store(on ? 1 : 0, std::memory_order_relaxed); }

bool cudnn_benchmark() {
  const int value = g_cudnn_benchmark.load(std::memory_order_relaxed);
  if (value >= 0) return value == 1;
  static const bool from_env = cudnn_benchmark_from_env();
  return from_env;
}

namespace detail {

ConvGeometry conv2d_geometry(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o) {
  constexpr const char* op = "conv2d";
  check_tensors(op, x, w, bias);
  check_hyper(op, o.strides, o.dilation, o.groups);
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  KILN_CHECK(ws[0] % o.groups == 0, ShapeError, op, ": the weight's ", ws[0], " output channels (",
             describe(x, w), ") are not divisible by groups = ", o.groups);
  check_channels(op, x, w, ws[3] * o.groups, "weight dim 3 x groups", o.groups);
  check_bias(op, bias, ws[0], w);
  ConvGeometry g;
  g.dtype = x.dtype();
  g.n = xs[0], g.h = xs[1], g.w = xs[2], g.c_in = xs[3];
  g.c_out = ws[0], g.k_h = ws[1], g.k_w = ws[2], g.groups = o.groups;
  g.stride_h = o.strides[0], g.stride_w = o.strides[1];
  g.dil_h = o.dilation[0], g.dil_w = o.dilation[1];
  const auto& p = o.pads;
  const bool explicit_pads = p[0] >= 0 || p[1] >= 0 || p[2] >= 0 || p[3] >= 0;
  if (explicit_pads) {
    KILN_CHECK(p[0] >= 0 && p[1] >= 0 && p[2] >= 0 && p[3] >= 0, ValueError, op,
               ": explicit pads {top, bottom, left, right} must all be >= 0 (or all -1 for `padding`), got {",
               p[0], ", ", p[1], ", ", p[2], ", ", p[3], "}");
    g.pad_top = p[0], g.pad_bottom = p[1], g.pad_left = p[2], g.pad_right = p[3];
  } else {
    const std::string padding = lower(o.padding);
    KILN_CHECK(padding == "valid" || padding == "same", ValueError, op,
               ": padding must be 'valid' or 'same', got '", o.padding, "'");
    if (padding == "same") {
      std::tie(g.pad_top, g.pad_bottom) = same_pads(g.h, dilated(g.k_h, g.dil_h), g.stride_h);
      std::tie(g.pad_left, g.pad_right) = same_pads(g.w, dilated(g.k_w, g.dil_w), g.stride_w);
    }
  }
  finish(op, g, x, w);
  return g;
}

ConvGeometry conv2d_transpose_geometry(const Tensor& x, const Tensor& w, const Tensor& bias,
                                       const Conv2dTransposeOptions& o) {
  constexpr const char* op = "conv2d_transpose";
  check_tensors(op, x, w, bias);
  check_hyper(op, o.strides, o.dilation, o.groups);
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  check_channels(op, x, w, ws[0], "weight dim 0", o.groups);
  KILN_CHECK(ws[0] % o.groups == 0, ShapeError, op, ": the input's ", ws[0], " channels (", describe(x, w),
             ") are not divisible by groups = ", o.groups);
  check_bias(op, bias, ws[3] * o.groups, w);
  const std::string padding = lower(o.padding);
  KILN_CHECK(padding == "valid" || padding == "same", ValueError, op,
             ": padding must be 'valid' or 'same', got '", o.padding, "'");
  const bool same = padding == "same";
  const auto& op_pad = o.output_padding;
  KILN_CHECK((op_pad[0] == -1 && op_pad[1] == -1) ||
                 (op_pad[0] >= 0 && op_pad[1] >= 0 && op_pad[0] < o.strides[0] && op_pad[1] < o.strides[1]),
             ValueError, op, ": output_padding must be {-1, -1} (none) or each in [0, stride); got (", op_pad[0],
             ", ", op_pad[1], ") with strides (", o.strides[0], ", ", o.strides[1], ")");
  ConvGeometry g;  // the convolution whose backward-data this is
  g.dtype = x.dtype();
  g.n = xs[0], g.c_in = ws[3] * o.groups, g.c_out = ws[0];
  g.k_h = ws[1], g.k_w = ws[2], g.groups = o.groups;
  g.stride_h = o.strides[0], g.stride_w = o.strides[1];
  g.dil_h = o.dilation[0], g.dil_w = o.dilation[1];
  const std::int64_t keh = dilated(g.k_h, g.dil_h), kew = dilated(g.k_w, g.dil_w);
  g.h = transpose_length(xs[1], keh, same, op_pad[0], g.stride_h);
  g.w = transpose_length(xs[2], kew, same, op_pad[1], g.stride_w);
  KILN_CHECK(g.h >= 1 && g.w >= 1, ShapeError, op, ": ", describe(x, w), " with padding '", o.padding,
             "' and output_padding (", op_pad[0], ", ", op_pad[1], ") give an empty output (", g.h, ", ", g.w, ")");
  if (same) {
    std::tie(g.pad_top, g.pad_bottom) = same_pads(g.h, keh, g.stride_h);
    std::tie(g.pad_left, g.pad_right) = same_pads(g.w, kew, g.stride_w);
  }
  g.out_h = g.h + g.pad_top + g.pad_bottom >= keh ? (g.h + g.pad_top + g.pad_bottom - keh) / g.stride_h + 1 : 0;
  g.out_w = g.w + g.pad_left + g.pad_right >= kew ? (g.w + g.pad_left + g.pad_right - kew) / g.stride_w + 1 : 0;
  KILN_CHECK(g.out_h == xs[1] && g.out_w == xs[2], ShapeError, op, ": ", describe(x, w), " with padding '",
             o.padding, "', strides (", g.stride_h, ", ", g.stride_w, ") and output_padding (", op_pad[0], ", ",
             op_pad[1], ") give an output of ", g.h, " x ", g.w, ", whose convolution has ", g.out_h, " x ",
             g.out_w, " positions, not the input's ", xs[1], " x ", xs[2], "; change output_padding");
  return g;
}

void conv2d_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y) {
  KILN_ON_DEVICE(x.device(), "conv2d", cpu::conv2d_forward(g, x, w, bias, y), cuda_forward(g, x, w, bias, y));
}

void conv2d_backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& dx) {
  KILN_ON_DEVICE(dy.device(), "conv2d backward-data", cpu::conv2d_backward_data(g, dy, w, dx),
                 cuda_backward_data(g, dy, w, dx));
}

void conv2d_backward_filter(const ConvGeometry& g, const Tensor& x, const Tensor& dy, const Tensor& dw,
                            const Tensor& db) {
  KILN_ON_DEVICE(x.device(), "conv2d backward-filter", cpu::conv2d_backward_filter(g, x, dy, dw, db),
                 cuda_backward_filter(g, x, dy, dw, db));
}

}  // namespace detail

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  const ConvGeometry g = detail::conv2d_geometry(x, weight, bias, options);
  return conv(g, x, weight, bias);
}

Tensor conv2d_transpose(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Conv2dTransposeOptions& options) {
  const ConvGeometry g = detail::conv2d_transpose_geometry(x, weight, bias, options);
  return transposed_conv(g, x, weight, bias);
}

}  // namespace kiln
