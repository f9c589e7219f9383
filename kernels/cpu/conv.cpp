// cpu convolution: oneDNN's convolution primitives (forward, backward-data, backward-weights
// with the bias gradient fused) on NHWC activations, for float32 and bfloat16 (and float16
// where this CPU's oneDNN has it; otherwise computed in float32 and rounded once). float64,
// which oneDNN lacks, is direct OpenMP loops (it serves gradient checks and references).
// Primitives are cached per (geometry, pass) (Note [Convolution primitive cache]).
#include <oneapi/dnnl/dnnl.hpp>

#include <optional>
#include <string>
#include <unordered_map>

#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cpu/onednn.h"

namespace kiln::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

using onednn::engine;
using onednn::stream;

memory::data_type dnnl_type(DType dtype) { return onednn::data_type(dtype, "cpu conv2d"); }

enum class Pass { forward, backward_data, backward_filter };

// The memory descriptors of a geometry, in oneDNN's logical dimension order: activations
// (N, C, H, W) stored NHWC; weights (O, I, KH, KW) stored OHWI, or with groups
// (G, O/G, I/G, KH, KW) stored GOHWI, which is the same bytes as kiln's (C_out, KH, KW, C_in/G).
struct Descs {
  memory::desc src, weights, bias, dst;
};

Descs descs(const ConvGeometry& g, bool bias) {
  const auto type = dnnl_type(g.dtype);
  memory::desc weights =
      g.groups == 1
          ? memory::desc({g.c_out, g.c_in, g.k_h, g.k_w}, type, Tag::ohwi)
          : memory::desc({g.groups, g.c_out_per_group(), g.c_in_per_group(), g.k_h, g.k_w}, type, Tag::gohwi);
  return {memory::desc({g.n, g.c_in, g.h, g.w}, type, Tag::nhwc), weights,
          bias ? memory::desc({g.c_out}, type, Tag::a) : memory::desc(),
          memory::desc({g.n, g.c_out, g.out_h, g.out_w}, type, Tag::nhwc)};
}

// Note [Convolution primitive cache]
// Making a convolution primitive (choosing and JIT-compiling a kernel) costs far more than a
// small convolution, so each (geometry, pass, bias) keeps its primitive. The weights are
// described as `any`, so oneDNN picks its fast blocked layout; when that differs from OHWI
// the plan also holds a reorder, run on every call (the weights change between calls): from
// the caller's OHWI into a buffer for forward and backward-data, from a buffer into the
// caller's dw for backward-filter. Activations stay NHWC (no reorders of the large tensors).
// A geometry this oneDNN cannot compute in the dtype is cached as "none" (float32 route).
struct Plan {
  dnnl::primitive primitive;
  Descs user;                          // the caller's layouts
  memory::desc weights;                // the primitive's weights (or diff_weights) layout
  std::optional<dnnl::reorder> reorder;  // between user.weights and weights, when they differ
};

struct Key {
  std::string geometry;
  Pass pass;
  bool bias;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  std::size_t operator()(const Key& k) const {
    return std::hash<std::string>()(k.geometry) * 4u + static_cast<std::size_t>(k.pass) * 2u + (k.bias ? 1u : 0u);
  }
};

using PlanCache = onednn::LruCache<Key, Plan, KeyHash>;

PlanCache& cache() {
  static PlanCache* c = new PlanCache;  // lives past static destruction
  return *c;
}

dnnl::convolution_forward::desc forward_desc(const ConvGeometry& g, const Descs& d, const memory::desc& w) {
  return {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, d.src, w, d.bias, d.dst,
          {g.stride_h, g.stride_w}, {g.dil_h - 1, g.dil_w - 1}, {g.pad_top, g.pad_left},
          {g.pad_bottom, g.pad_right}};
}

// The forward primitive descriptor (also the hint the backward passes need); empty when
// this oneDNN has no implementation.
dnnl::convolution_forward::primitive_desc forward_pd(const ConvGeometry& g, const Descs& d) {
  const memory::desc any(d.weights.dims(), d.weights.data_type(), Tag::any);
  return {forward_desc(g, d, any), engine(), /*allow_empty=*/true};
}

Plan finish(dnnl::primitive primitive, const Descs& d, const memory::desc& weights, bool into_user) {
  Plan plan{std::move(primitive), d, weights, std::nullopt};
  if (weights != d.weights) {
    plan.reorder = into_user ? dnnl::reorder(dnnl::reorder::primitive_desc(engine(), weights, engine(), d.weights))
                             : dnnl::reorder(dnnl::reorder::primitive_desc(engine(), d.weights, engine(), weights));
  }
  return plan;
}

std::optional<Plan> make_plan(const ConvGeometry& g, Pass pass, bool bias) {
  const Descs d = descs(g, bias);
  const memory::desc any(d.weights.dims(), d.weights.data_type(), Tag::any);
  const auto fwd = forward_pd(g, d);
  if (!fwd) return std::nullopt;
  const memory::dims strides{g.stride_h, g.stride_w}, dil{g.dil_h - 1, g.dil_w - 1};
  const memory::dims pad_l{g.pad_top, g.pad_left}, pad_r{g.pad_bottom, g.pad_right};
  switch (pass) {
    case Pass::forward:
      return finish(dnnl::convolution_forward(fwd), d, fwd.weights_desc(), false);
    case Pass::backward_data: {
      const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, d.src, any, d.dst,
                                                       strides, dil, pad_l, pad_r);
      const dnnl::convolution_backward_data::primitive_desc pd(desc, engine(), fwd, true);
      if (!pd) return std::nullopt;
      return finish(dnnl::convolution_backward_data(pd), d, pd.weights_desc(), false);
    }
    case Pass::backward_filter: {
      const dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, d.src, any, d.bias,
                                                          d.dst, strides, dil, pad_l, pad_r);
      const dnnl::convolution_backward_weights::primitive_desc pd(desc, engine(), fwd, true);
      if (!pd) return std::nullopt;
      return finish(dnnl::convolution_backward_weights(pd), d, pd.diff_weights_desc(), true);
    }
  }
  return std::nullopt;
}

std::optional<Plan> plan_for(const ConvGeometry& g, Pass pass, bool bias) {
  return cache().get(Key{g.key(), pass, bias}, [&] { return make_plan(g, pass, bias); });
}

memory user_memory(const memory::desc& desc, const Tensor& t) {
  return memory(desc, engine(), t.data_ptr());
}

// The weights as the primitive reads them: the caller's, or a reordered copy.
memory weights_in(const Plan& plan, const Tensor& w) {
  memory user = user_memory(plan.user.weights, w);
  if (!plan.reorder) return user;
  memory blocked(plan.weights, engine());
  plan.reorder->execute(stream(), user, blocked);
  return blocked;
}

void run_forward(const Plan& plan, const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y) {
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, user_memory(plan.user.src, x)},
                                       {DNNL_ARG_WEIGHTS, weights_in(plan, w)},
                                       {DNNL_ARG_DST, user_memory(plan.user.dst, y)}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, user_memory(plan.user.bias, bias));
  plan.primitive.execute(stream(), args);
  stream().wait();
}

void run_backward_data(const Plan& plan, const Tensor& dy, const Tensor& w, const Tensor& dx) {
  plan.primitive.execute(stream(), {{DNNL_ARG_DIFF_DST, user_memory(plan.user.dst, dy)},
                                    {DNNL_ARG_WEIGHTS, weights_in(plan, w)},
                                    {DNNL_ARG_DIFF_SRC, user_memory(plan.user.src, dx)}});
  stream().wait();
}

void run_backward_filter(const Plan& plan, const Tensor& x, const Tensor& dy, const Tensor& dw,
                         const Tensor& db) {
  memory user_dw = user_memory(plan.user.weights, dw);
  memory out_dw = plan.reorder ? memory(plan.weights, engine()) : user_dw;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, user_memory(plan.user.src, x)},
                                       {DNNL_ARG_DIFF_DST, user_memory(plan.user.dst, dy)},
                                       {DNNL_ARG_DIFF_WEIGHTS, out_dw}};
  if (db.defined()) args.emplace(DNNL_ARG_DIFF_BIAS, user_memory(plan.user.bias, db));
  plan.primitive.execute(stream(), args);
  if (plan.reorder) plan.reorder->execute(stream(), out_dw, user_dw);
  stream().wait();
}

// ---- 16-bit types oneDNN lacks here: float32 compute, rounded once ----

Tensor widened(const Tensor& t) { return t.defined() ? t.to(DType::float32) : t; }
Tensor empty_f32(const Tensor& like) {
  return like.defined() ? empty(like.shape(), {.dtype = DType::float32, .device = like.device()}) : like;
}
ConvGeometry as_float32(ConvGeometry g) {
  g.dtype = DType::float32;
  return g;
}

// ---- float64: direct loops ----

// y[n, oh, ow, co] = bias[co] + Σ_{kh, kw, ci} x[n, oh·s - pad + kh·d, ..., g·Cg + ci] · w[co, kh, kw, ci]
void forward_f64(const ConvGeometry& g, const double* x, const double* w, const double* bias, double* y) {
  const std::int64_t cg = g.c_in_per_group(), og = g.c_out_per_group();
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t n = 0; n < g.n; ++n) {
    for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
      for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
        double* out = y + ((n * g.out_h + oh) * g.out_w + ow) * g.c_out;
        for (std::int64_t co = 0; co < g.c_out; ++co) {
          const std::int64_t c0 = (co / og) * cg;
          double acc = bias ? bias[co] : 0.0;
          for (std::int64_t kh = 0; kh < g.k_h; ++kh) {
            const std::int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dil_h;
            if (ih < 0 || ih >= g.h) continue;
            for (std::int64_t kw = 0; kw < g.k_w; ++kw) {
              const std::int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dil_w;
              if (iw < 0 || iw >= g.w) continue;
              const double* xp = x + ((n * g.h + ih) * g.w + iw) * g.c_in + c0;
              const double* wp = w + ((co * g.k_h + kh) * g.k_w + kw) * cg;
              for (std::int64_t ci = 0; ci < cg; ++ci) acc += xp[ci] * wp[ci];
            }
          }
          out[co] = acc;
        }
      }
    }
  }
}

// The output position along one axis that input position `i` meets through kernel tap k,
// or -1 when none (between strides, or outside the output).
inline std::int64_t tap_output(std::int64_t i, std::int64_t k, std::int64_t pad, std::int64_t dil,
                               std::int64_t stride, std::int64_t out) {
  const std::int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0 || t / stride >= out) return -1;
  return t / stride;
}

// dx[n, ih, iw, ci] = Σ over the (kh, kw, co) that read it of dy[n, oh, ow, co] · w[co, kh, kw, ci mod Cg]
void backward_data_f64(const ConvGeometry& g, const double* dy, const double* w, double* dx) {
  const std::int64_t cg = g.c_in_per_group(), og = g.c_out_per_group();
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t n = 0; n < g.n; ++n) {
    for (std::int64_t ih = 0; ih < g.h; ++ih) {
      for (std::int64_t iw = 0; iw < g.w; ++iw) {
        double* out = dx + ((n * g.h + ih) * g.w + iw) * g.c_in;
        for (std::int64_t ci = 0; ci < g.c_in; ++ci) {
          const std::int64_t o0 = (ci / cg) * og, cig = ci % cg;
          double acc = 0.0;
          for (std::int64_t kh = 0; kh < g.k_h; ++kh) {
            const std::int64_t oh = tap_output(ih, kh, g.pad_top, g.dil_h, g.stride_h, g.out_h);
            if (oh < 0) continue;
            for (std::int64_t kw = 0; kw < g.k_w; ++kw) {
              const std::int64_t ow = tap_output(iw, kw, g.pad_left, g.dil_w, g.stride_w, g.out_w);
              if (ow < 0) continue;
              const double* dyp = dy + ((n * g.out_h + oh) * g.out_w + ow) * g.c_out;
              for (std::int64_t co = o0; co < o0 + og; ++co) {
                acc += dyp[co] * w[((co * g.k_h + kh) * g.k_w + kw) * cg + cig];
              }
            }
          }
          out[ci] = acc;
        }
      }
    }
  }
}

// dw[co, kh, kw, ci] = Σ_{n, oh, ow} x[n, ih, iw, g·Cg + ci] · dy[n, oh, ow, co]; db[co] = Σ dy[..., co]
void backward_filter_f64(const ConvGeometry& g, const double* x, const double* dy, double* dw, double* db) {
  const std::int64_t cg = g.c_in_per_group(), og = g.c_out_per_group();
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t co = 0; co < g.c_out; ++co) {
    for (std::int64_t kh = 0; kh < g.k_h; ++kh) {
      const std::int64_t c0 = (co / og) * cg;
      for (std::int64_t kw = 0; kw < g.k_w; ++kw) {
        double* out = dw + ((co * g.k_h + kh) * g.k_w + kw) * cg;
        for (std::int64_t ci = 0; ci < cg; ++ci) out[ci] = 0.0;
        for (std::int64_t n = 0; n < g.n; ++n) {
          for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
            const std::int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dil_h;
            if (ih < 0 || ih >= g.h) continue;
            for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
              const std::int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dil_w;
              if (iw < 0 || iw >= g.w) continue;
              const double d = dy[((n * g.out_h + oh) * g.out_w + ow) * g.c_out + co];
              const double* xp = x + ((n * g.h + ih) * g.w + iw) * g.c_in + c0;
              for (std::int64_t ci = 0; ci < cg; ++ci) out[ci] += xp[ci] * d;
            }
          }
        }
      }
    }
  }
  if (db == nullptr) return;
  const std::int64_t rows = g.n * g.out_h * g.out_w;
  for (std::int64_t co = 0; co < g.c_out; ++co) db[co] = 0.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t co = 0; co < g.c_out; ++co) db[co] += dy[r * g.c_out + co];
  }
}

const double* f64(const Tensor& t) { return t.defined() ? static_cast<const double*>(t.data_ptr()) : nullptr; }
double* f64_out(const Tensor& t) { return t.defined() ? static_cast<double*>(t.data_ptr()) : nullptr; }

void check_dtype(const ConvGeometry& g) {
  KILN_ASSERT(g.dtype == DType::float32 || g.dtype == DType::bfloat16 || g.dtype == DType::float16,
              "cpu conv2d: unexpected dtype ", g.dtype);
}

}  // namespace

void conv2d_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y) {
  if (g.dtype == DType::float64) return forward_f64(g, f64(x), f64(w), f64(bias), f64_out(y));
  check_dtype(g);
  if (const auto plan = plan_for(g, Pass::forward, bias.defined())) return run_forward(*plan, x, w, bias, y);
  KILN_ASSERT(g.dtype != DType::float32, "cpu conv2d: oneDNN has no float32 forward for ", g.key());
  const Tensor y32 = empty_f32(y);
  conv2d_forward(as_float32(g), widened(x), widened(w), widened(bias), y32);
  Tensor(y).copy_(y32);
}

void conv2d_backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& dx) {
  if (g.dtype == DType::float64) return backward_data_f64(g, f64(dy), f64(w), f64_out(dx));
  check_dtype(g);
  if (const auto plan = plan_for(g, Pass::backward_data, false)) return run_backward_data(*plan, dy, w, dx);
  KILN_ASSERT(g.dtype != DType::float32, "cpu conv2d: oneDNN has no float32 backward-data for ", g.key());
  const Tensor dx32 = empty_f32(dx);
  conv2d_backward_data(as_float32(g), widened(dy), widened(w), dx32);
  Tensor(dx).copy_(dx32);
}

void conv2d_backward_filter(const ConvGeometry& g, const Tensor& x, const Tensor& dy, const Tensor& dw,
                            const Tensor& db) {
  if (g.dtype == DType::float64) return backward_filter_f64(g, f64(x), f64(dy), f64_out(dw), f64_out(db));
  check_dtype(g);
  if (const auto plan = plan_for(g, Pass::backward_filter, db.defined())) {
    return run_backward_filter(*plan, x, dy, dw, db);
  }
  KILN_ASSERT(g.dtype != DType::float32, "cpu conv2d: oneDNN has no float32 backward-filter for ", g.key());
  const Tensor dw32 = empty_f32(dw), db32 = empty_f32(db);
  conv2d_backward_filter(as_float32(g), widened(x), widened(dy), dw32, db32);
  Tensor(dw).copy_(dw32);
  if (db.defined()) Tensor(db).copy_(db32);
}

}  // namespace kiln::cpu
