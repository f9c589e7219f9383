// The plans of the cuDNN convolution (cudnn_conv_plan.h): dtypes to cuDNN types and math
// types, the problem cuDNN sees, descriptors made once per problem, and the choice of each
// direction's algorithm: from the algorithm cache (memory and disk, conv_algo_cache.h), else
// cuDNN's heuristics (cudnnGet*Algorithm_v7), or, with kiln::cudnn_benchmark() on, timing
// every candidate once (cudnnFind*AlgorithmEx), which then goes into the cache.
//
// Note [Asymmetric padding in cuDNN]
// The legacy descriptor pads both sides alike, and Keras' "same" with an even kernel or a
// stride pads one more row at the bottom. Two cases need no copy: equal pads, and pads whose
// top value, used on both sides, gives the same output size (the odd row is never read, as
// the output size fixes where the last window ends). Otherwise the input is copied once into
// a zero buffer carrying the difference (the smaller pad stays in the descriptor), and
// backward-data computes into such a buffer and crops it. The backend graph API takes pre-
// and post-paddings and would avoid the copy, but needs a second engine-selection and
// caching path beside this one; the copy is one extra pass over x for the layers that need
// it and costs nothing for every other one.
#include "kiln/kernels/cuda/cudnn_conv_plan.h"

#include <algorithm>
#include <cstdio>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/core/allocator.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/matmul.h"

namespace kiln::cuda::cudnn_conv {
namespace {

// Whether an algorithm may run with math type `m` for this dtype: exact float32 (FMA) must
// not turn into TF32, and no dtype may be down-converted to 16 bits behind the caller's back.
bool math_allowed(const TypeInfo& t, int m) {
  if (m < CUDNN_DEFAULT_MATH || m > CUDNN_FMA_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  return !(t.data == CUDNN_DATA_FLOAT && t.math == CUDNN_FMA_MATH) || m == CUDNN_FMA_MATH;
}

int to_int(std::int64_t v) { return static_cast<int>(v); }  // cudnn_conv.cpp's batch chunks keep sizes in range

using PlanKey = std::array<std::int64_t, 21>;
struct PlanKeyHash {
  std::size_t operator()(const PlanKey& k) const {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (std::int64_t v : k) h = (h ^ static_cast<std::uint64_t>(v)) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};
struct Plans {
  std::shared_mutex mutex;
  std::unordered_map<PlanKey, std::shared_ptr<Plan>, PlanKeyHash> by_key;
};
Plans& plans() {
  static Plans* p = new Plans;  // leaked: descriptors outlive every caller, even at exit
  return *p;
}

PlanKey plan_key(int device, const ConvGeometry& g, const TypeInfo& t) {
  return {device,    static_cast<std::int64_t>(g.dtype), g.n,         g.h,        g.w,        g.c_in,  g.c_out,
          g.k_h,     g.k_w,         g.groups,   g.stride_h,  g.stride_w, g.dil_h,    g.dil_w, g.pad_top,
          g.pad_bottom, g.pad_left, g.pad_right, g.out_h,    g.out_w,    static_cast<std::int64_t>(t.math)};
}

// ---- algorithm choice: the three directions' cuDNN calls behind one interface ----

template <ConvDirection D>
struct Calls;

template <>
struct Calls<ConvDirection::forward> {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static constexpr ConvDirection kDir = ConvDirection::forward;
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) { return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n); }
  static cudnnStatus_t heuristic(cudnnHandle_t h, const Plan& p, int n, int* got, Perf* perf) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.conv_of(kDir), p.y.get(), n, got, perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const Plan& p, const Buffers& b, int n, int* got, Perf* perf, void* ws,
                            std::size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(h, p.x.get(), b.a, p.w.get(), b.b, p.conv_of(kDir), p.y.get(), b.out,
                                                  n, got, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Plan& p, int algo, std::size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.conv_of(kDir), p.y.get(),
                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
  }
};

template <>
struct Calls<ConvDirection::backward_data> {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static constexpr ConvDirection kDir = ConvDirection::backward_data;
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t heuristic(cudnnHandle_t h, const Plan& p, int n, int* got, Perf* perf) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), p.conv_of(kDir), p.x.get(), n, got,
                                                       perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const Plan& p, const Buffers& b, int n, int* got, Perf* perf, void* ws,
                            std::size_t bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w.get(), b.a, p.y.get(), b.b, p.conv_of(kDir), p.x.get(),
                                                       b.out, n, got, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Plan& p, int algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.conv_of(kDir), p.x.get(),
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
  }
};

template <>
struct Calls<ConvDirection::backward_filter> {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static constexpr ConvDirection kDir = ConvDirection::backward_filter;
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t heuristic(cudnnHandle_t h, const Plan& p, int n, int* got, Perf* perf) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), p.conv_of(kDir), p.w.get(), n, got,
                                                         perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const Plan& p, const Buffers& b, int n, int* got, Perf* perf, void* ws,
                            std::size_t bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x.get(), b.a, p.y.get(), b.b, p.conv_of(kDir),
                                                         p.w.get(), b.out, n, got, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Plan& p, int algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), p.conv_of(kDir), p.w.get(),
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
  }
};

std::string device_label(int device) {
  const DeviceProperties& p = properties(device);
  return p.name + " sm_" + std::to_string(p.major) + std::to_string(p.minor);
}

ConvAlgoKey algo_key(const Plan& p, ConvDirection d, int device) {
  return {device_label(device), static_cast<std::int64_t>(cudnnGetVersion()), d, p.layout.problem.key(),
          p.type.math_name};
}

bool can_allocate(int device, std::size_t bytes) {
  try {
    const DataPtr probe = allocate(Device::cuda(device), bytes);
    return true;
  } catch (const OutOfMemoryError&) {
    return false;
  }
}

// `algo` with math type `math` on p's direction, if cuDNN accepts the pair: the descriptor
// is left with that math type and the workspace it needs is returned.
template <class C>
std::optional<Choice> accept(const Plan& p, cudnnHandle_t h, int algo, int math, std::size_t reported) {
  if (algo < 0 || algo >= C::kAlgoCount || !math_allowed(p.type, math)) return std::nullopt;
  p.set_math(C::kDir, static_cast<cudnnMathType_t>(math));
  std::size_t bytes = 0;
  if (C::workspace(h, p, algo, &bytes) != CUDNN_STATUS_SUCCESS) {
    forget_cudnn_error();
    return std::nullopt;
  }
  return Choice{algo, static_cast<cudnnMathType_t>(math), std::max(bytes, reported), false};
}

// cudnnFind*AlgorithmEx with as much workspace as the hungriest algorithm asks for, halved
// until the allocator can give it; returns the candidates, fastest first.
template <class C>
std::vector<typename C::Perf> time_candidates(const Plan& p, cudnnHandle_t h, const Buffers& b, int device, int count) {
  std::size_t bytes = 0;
  for (int algo = 0; algo < C::kAlgoCount; ++algo) {
    std::size_t need = 0;
    if (C::workspace(h, p, algo, &need) == CUDNN_STATUS_SUCCESS) {
      bytes = std::max(bytes, need);
    } else {
      forget_cudnn_error();  // an algorithm that does not apply to this problem
    }
  }
  DataPtr ws;
  while (bytes > 0) {
    try {
      ws = allocate(Device::cuda(device), bytes);
      break;
    } catch (const OutOfMemoryError&) {
      bytes /= 2;
    }
  }
  std::vector<typename C::Perf> perf(static_cast<std::size_t>(count));
  int got = 0;
  KILN_LIB_CHECK(CudnnResult, C::find(h, p, b, count, &got, perf.data(), ws.get(), bytes));
  perf.resize(static_cast<std::size_t>(got));
  return perf;
}

template <class C>
Choice choose_algorithm(const Plan& p, cudnnHandle_t h, const Buffers& b, int device) {
  const ConvAlgoKey key = algo_key(p, C::kDir, device);
  const std::shared_ptr<ConvAlgoCache> cache = conv_algo_cache();
  if (const std::optional<ConvAlgoChoice> hit = cache->lookup(key)) {
    if (auto c = accept<C>(p, h, hit->algo, hit->math_type, static_cast<std::size_t>(hit->workspace_bytes))) {
      ++stats().cached;
      return *c;
    }
  }
  p.set_math(C::kDir, p.type.math);  // heuristics and timing consider what this math type allows
  int count = 0;
  KILN_LIB_CHECK(CudnnResult, C::max_count(h, &count));
  const bool timed = cudnn_benchmark();
  std::vector<typename C::Perf> perf;
  if (timed) {
    perf = time_candidates<C>(p, h, b, device, count);
  } else {
    perf.resize(static_cast<std::size_t>(count));
    int got = 0;
    KILN_LIB_CHECK(CudnnResult, C::heuristic(h, p, count, &got, perf.data()));
    perf.resize(static_cast<std::size_t>(got));
  }
  for (const auto& candidate : perf) {
    if (candidate.status != CUDNN_STATUS_SUCCESS) continue;
    // The math type the candidate was ranked with (Note [behavior of cudnnFind and cudnnGet]
    // in PyTorch: running it with another one picks a slower kernel), unless this dtype
    // forbids it; then the one asked for.
    const int math = math_allowed(p.type, candidate.mathType) ? candidate.mathType : p.type.math;
    std::optional<Choice> c = accept<C>(p, h, static_cast<int>(candidate.algo), math, candidate.memory);
    if (!c || (!timed && !can_allocate(device, c->workspace))) continue;
    if (timed) {
      cache->insert(key, {c->algo, static_cast<int>(c->math), static_cast<std::int64_t>(c->workspace)});
      ++stats().timed;
    } else {
      ++stats().heuristic;
    }
    return *c;
  }
  ++stats().native;
  std::fprintf(stderr, "kiln: cuDNN offers no %s algorithm for conv2d %s; kiln's native convolution runs it\n",
               direction_name(C::kDir), p.layout.problem.key().c_str());
  return Choice{.native = true};
}

}  // namespace

TypeInfo type_info(DType dt) {
  switch (dt) {
    case DType::float32:
      return allow_tf32() ? TypeInfo{CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_DEFAULT_MATH, "tf32"}
                          : TypeInfo{CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH, "fma"};
    case DType::float64: return {CUDNN_DATA_DOUBLE, CUDNN_DATA_DOUBLE, CUDNN_DEFAULT_MATH, "default"};
    case DType::float16: return {CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, "tensor_op"};
    case DType::bfloat16: return {CUDNN_DATA_BFLOAT16, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, "tensor_op"};
    default: KILN_THROW(InternalError, "cuDNN conv2d: non-floating dtype ", dt);
  }
}

Layout layout_of(const ConvGeometry& g) {
  Layout l{g};
  // One axis: the symmetric pad `sym`, and the zero rows the copy adds before and after.
  const auto axis = [&](std::int64_t in, std::int64_t before, std::int64_t after, std::int64_t k, std::int64_t d,
                        std::int64_t s, std::int64_t out, std::int64_t& sym, std::int64_t& extra_before,
                        std::int64_t& extra_after) {
    const std::int64_t k_eff = (k - 1) * d + 1;
    sym = before;
    if (before == after || (in + 2 * before >= k_eff && (in + 2 * before - k_eff) / s + 1 == out)) return;
    sym = std::min(before, after);
    extra_before = before - sym, extra_after = after - sym;
    l.padded_copy = true;
  };
  std::int64_t pad_h = 0, pad_w = 0, extra_bottom = 0, extra_right = 0;
  axis(g.h, g.pad_top, g.pad_bottom, g.k_h, g.dil_h, g.stride_h, g.out_h, pad_h, l.extra_top, extra_bottom);
  axis(g.w, g.pad_left, g.pad_right, g.k_w, g.dil_w, g.stride_w, g.out_w, pad_w, l.extra_left, extra_right);
  l.problem.h = g.h + l.extra_top + extra_bottom;
  l.problem.w = g.w + l.extra_left + extra_right;
  l.problem.pad_top = l.problem.pad_bottom = pad_h;
  l.problem.pad_left = l.problem.pad_right = pad_w;
  return l;
}

Plan::Plan(const ConvGeometry& g, const TypeInfo& t) : chunk(g), layout(layout_of(g)), type(t) {
  const ConvGeometry& q = layout.problem;
  const auto set4d = [&](const TensorDescriptor& d, std::int64_t n, std::int64_t c, std::int64_t height,
                         std::int64_t width) {
    // NHWC: cuDNN takes the dims in (n, c, h, w) order and works out the NHWC strides.
    KILN_LIB_CHECK(CudnnResult, cudnnSetTensor4dDescriptor(d.get(), CUDNN_TENSOR_NHWC, t.data, to_int(n), to_int(c),
                                                           to_int(height), to_int(width)));
  };
  set4d(x, q.n, q.c_in, q.h, q.w);
  set4d(y, q.n, q.c_out, q.out_h, q.out_w);
  set4d(bias, 1, q.c_out, 1, 1);
  // OHWI is cuDNN's NHWC filter layout (KRSC); per group C is C_in / groups.
  KILN_LIB_CHECK(CudnnResult, cudnnSetFilter4dDescriptor(w.get(), t.data, CUDNN_TENSOR_NHWC, to_int(q.c_out),
                                                         to_int(q.c_in_per_group()), to_int(q.k_h), to_int(q.k_w)));
  for (const ConvolutionDescriptor& c : conv) {
    // Cross-correlation (no kernel flip): what kiln, Keras and every framework call conv2d.
    KILN_LIB_CHECK(CudnnResult, cudnnSetConvolution2dDescriptor(c.get(), to_int(q.pad_top), to_int(q.pad_left),
                                                                to_int(q.stride_h), to_int(q.stride_w), to_int(q.dil_h),
                                                                to_int(q.dil_w), CUDNN_CROSS_CORRELATION, t.compute));
    KILN_LIB_CHECK(CudnnResult, cudnnSetConvolutionGroupCount(c.get(), to_int(q.groups)));
    KILN_LIB_CHECK(CudnnResult, cudnnSetConvolutionMathType(c.get(), t.math));
  }
  int n = 0, c = 0, h = 0, w_out = 0;  // cuDNN's own output size must be kiln's
  KILN_LIB_CHECK(CudnnResult,
                 cudnnGetConvolution2dForwardOutputDim(conv[0].get(), x.get(), w.get(), &n, &c, &h, &w_out));
  KILN_ASSERT(n == q.n && c == q.c_out && h == q.out_h && w_out == q.out_w, "cuDNN computes an output of (", n,
              ", ", h, ", ", w_out, ", ", c, ") for ", q.key(), " (from ", g.key(), ")");
}

void Plan::set_math(ConvDirection d, cudnnMathType_t m) const {
  KILN_LIB_CHECK(CudnnResult, cudnnSetConvolutionMathType(conv_of(d), m));
}

std::shared_ptr<Plan> find_plan(int device, const ConvGeometry& g) {
  const TypeInfo t = type_info(g.dtype);
  const PlanKey key = plan_key(device, g, t);
  Plans& p = plans();
  {
    std::shared_lock lock(p.mutex);
    if (auto it = p.by_key.find(key); it != p.by_key.end()) return it->second;
  }
  auto fresh = std::make_shared<Plan>(g, t);  // outside the lock: descriptors take microseconds
  std::unique_lock lock(p.mutex);
  auto [it, inserted] = p.by_key.try_emplace(key, std::move(fresh));
  if (inserted) ++stats().plans;
  return it->second;
}

void clear_plans() {
  Plans& p = plans();
  std::unique_lock lock(p.mutex);
  p.by_key.clear();
}

Choice choose(Plan& p, ConvDirection d, cudnnHandle_t handle, const Buffers& buffers, int device) {
  switch (d) {
    case ConvDirection::forward: return choose_algorithm<Calls<ConvDirection::forward>>(p, handle, buffers, device);
    case ConvDirection::backward_data:
      return choose_algorithm<Calls<ConvDirection::backward_data>>(p, handle, buffers, device);
    case ConvDirection::backward_filter:
      return choose_algorithm<Calls<ConvDirection::backward_filter>>(p, handle, buffers, device);
  }
  KILN_THROW(InternalError, "cuDNN conv2d: unknown direction ", static_cast<int>(d));
}

Stats& stats() {
  static Stats* s = new Stats;
  return *s;
}

}  // namespace kiln::cuda::cudnn_conv
