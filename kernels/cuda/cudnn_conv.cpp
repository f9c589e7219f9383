// conv2d on cuDNN 9 (the legacy cudnnConvolution* API), KILN_CUDA=ON builds only: the entry
// points of kernels/conv_impl.h's vendor path. Tensors are NHWC (x, y, dy, dx) and OHWI
// filters (cuDNN's NHWC filter layout, KRSC); each call finds its problem's plan
// (cudnn_conv_plan.h: descriptors made once, algorithms chosen once and cached), takes this
// thread's handle bound to the current stream, and a workspace from the caching allocator
// on that stream.
//
// Note [Batch chunks]
// The legacy descriptors hold int dims and strides, so a problem whose x or y has 2^31 or
// more elements runs in batch chunks (each one its own plan); backward-filter and the bias
// gradient accumulate the chunks with beta = 1.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/allocator.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/cuda/cudnn.h"
#include "kiln/kernels/cuda/cudnn_conv_plan.h"
#include "kiln/kernels/reduce.h"

namespace kiln::cuda {
namespace {

using namespace cudnn_conv;

// (first image, chunk geometry) of each batch chunk (Note [Batch chunks]).
std::vector<std::pair<std::int64_t, ConvGeometry>> batch_chunks(const ConvGeometry& g) {
  const Layout l = layout_of(g);
  const std::int64_t per_x = l.problem.h * l.problem.w * g.c_in, per_y = g.out_h * g.out_w * g.c_out;
  const std::int64_t per_sample = std::max(per_x, per_y);
  const std::int64_t filter = g.c_out * g.k_h * g.k_w * g.c_in_per_group();
  KILN_CHECK(per_sample <= INT_MAX && filter <= INT_MAX, ValueError, "conv2d: ", g.key(), " has ", per_sample,
             " elements per image and ", filter, " weights, past cuDNN's 32-bit descriptors; use "
             "set_conv_backend(ConvBackend::native) (or KILN_CONV=native)");
  const std::int64_t step = std::max<std::int64_t>(1, std::min(g.n, INT_MAX / std::max<std::int64_t>(per_sample, 1)));
  std::vector<std::pair<std::int64_t, ConvGeometry>> chunks;
  for (std::int64_t n0 = 0; n0 < g.n; n0 += step) {
    ConvGeometry c = g;
    c.n = std::min(step, g.n - n0);
    chunks.emplace_back(n0, c);
  }
  return chunks;
}

Tensor batch_slice(const Tensor& t, const std::pair<std::int64_t, ConvGeometry>& chunk, std::int64_t total_n) {
  return chunk.second.n == total_n ? t : t.slice(0, chunk.first, chunk.first + chunk.second.n);
}

// x copied into the zero-padded input the plan's x descriptor describes.
Tensor padded_input(const Plan& p, const Tensor& x) {
  const ConvGeometry& q = p.layout.problem;
  Tensor xp = zeros({q.n, q.h, q.w, q.c_in}, {.dtype = x.dtype(), .device = x.device()});
  xp.slice(1, p.layout.extra_top, p.layout.extra_top + x.size(1))
      .slice(2, p.layout.extra_left, p.layout.extra_left + x.size(2))
      .copy_(x);
  return xp;
}

// The device (made current), this thread's handle bound to the device's current stream,
// and workspaces from the caching allocator on that stream.
struct Run {
  int device;
  DeviceGuard guard;
  cudnnHandle_t handle;
  explicit Run(const Tensor& t)
      : device(t.device().index()), guard(device), handle(cudnn_handle(device, current_stream(device).native())) {}
  DataPtr workspace(std::size_t bytes) const { return bytes > 0 ? allocate(Device::cuda(device), bytes) : DataPtr(); }
};

// Runs body(); a cuDNN failure gains the problem and the algorithm it happened on.
template <class Body>
void with_context(Plan& p, ConvDirection d, Body&& body) {
  try {
    body();
  } catch (const CudaError& e) {
    std::optional<Choice> c;
    {
      std::lock_guard<std::mutex> lock(p.mutex);
      c = p.choice[index_of(d)];
    }
    KILN_THROW(CudaError, e.message(), "\n  in cuDNN conv2d ", direction_name(d), " of ", p.layout.problem.key(),
               " (the caller's ", p.chunk.key(), ")", c ? ", algorithm " + std::to_string(c->algo) : std::string(),
               c ? ", math type " + std::to_string(static_cast<int>(c->math)) : std::string());
  }
}

// Runs the cuDNN calls of a chosen algorithm; true when they ran. When cuDNN rejects them
// (an algorithm its heuristics offered but cannot run, a layout it turns down), the plan's
// direction falls back to the native path for good, loudly, and false says run it now.
// Allocation failures (OutOfMemoryError) are not cuDNN's to forgive and pass through.
template <class Calls>
bool ran_on_cudnn(Plan& p, ConvDirection d, const Choice& c, Calls&& calls) {
  if (c.native) return false;
  try {
    calls();
    return true;
  } catch (const CudaError& e) {
    {
      std::lock_guard<std::mutex> lock(p.mutex);
      p.choice[index_of(d)]->native = true;
    }
    ++stats().native;
    std::fprintf(stderr,
                 "kiln: cuDNN could not run conv2d %s of %s with algorithm %d (math type %d): %s\n"
                 "kiln: kiln's native convolution runs this problem from now on\n",
                 direction_name(d), p.layout.problem.key().c_str(), c.algo, static_cast<int>(c.math),
                 e.message().c_str());
    return false;
  }
}

}  // namespace

void conv2d_forward_cudnn(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                          const Tensor& y) {
  if (g.n == 0) return;
  const Run run(x);
  constexpr ConvDirection kDir = ConvDirection::forward;
  for (const auto& chunk : batch_chunks(g)) {
    const ConvGeometry& cg = chunk.second;
    Plan& p = *find_plan(run.device, cg);
    const Tensor xc = batch_slice(x, chunk, g.n), yc = batch_slice(y, chunk, g.n);
    with_context(p, kDir, [&] {
      const Tensor xin = p.layout.padded_copy ? padded_input(p, xc) : xc;
      const Choice c = choice_for(p, kDir, run.handle, run.device, [&] {
        return Buffers{xin.data_ptr(), w.data_ptr(), yc.data_ptr()};
      });
      const bool ran = ran_on_cudnn(p, kDir, c, [&] {
        const DataPtr ws = run.workspace(c.workspace);
        const TypeInfo& t = p.type;
        KILN_LIB_CHECK(CudnnResult, cudnnConvolutionForward(run.handle, kOne.for_type(t), p.x.get(), xin.data_ptr(),
                                                            p.w.get(), w.data_ptr(), p.conv_of(kDir),
                                                            static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws.get(),
                                                            c.workspace, kZero.for_type(t), p.y.get(), yc.data_ptr()));
        if (!bias.defined()) return;
        if (t.data == CUDNN_DATA_BFLOAT16) {
          Tensor out = yc;  // cudnnAddTensor documents no bfloat16: kiln's broadcast add (float32 math)
          add_(out, bias);
        } else {
          KILN_LIB_CHECK(CudnnResult, cudnnAddTensor(run.handle, kOne.for_type(t), p.bias.get(), bias.data_ptr(),
                                                     kOne.for_type(t), p.y.get(), yc.data_ptr()));
        }
      });
      if (!ran) conv2d_forward_native(cg, xc, w, bias, yc);
    });
  }
}

void conv2d_backward_data_cudnn(const ConvGeometry& g, const Tensor& dy, const Tensor& w, const Tensor& dx) {
  if (g.n == 0) return;
  const Run run(dy);
  constexpr ConvDirection kDir = ConvDirection::backward_data;
  for (const auto& chunk : batch_chunks(g)) {
    const ConvGeometry& cg = chunk.second;
    Plan& p = *find_plan(run.device, cg);
    const Tensor dyc = batch_slice(dy, chunk, g.n);
    Tensor dxc = batch_slice(dx, chunk, g.n);
    with_context(p, kDir, [&] {
      const ConvGeometry& q = p.layout.problem;
      // With a padded copy, cuDNN writes the padded input's gradient and the crop is dx.
      const Tensor dxin =
          p.layout.padded_copy ? empty({q.n, q.h, q.w, q.c_in}, {.dtype = dx.dtype(), .device = dx.device()}) : dxc;
      const Choice c = choice_for(p, kDir, run.handle, run.device, [&] {
        return Buffers{w.data_ptr(), dyc.data_ptr(), dxin.data_ptr()};
      });
      const bool ran = ran_on_cudnn(p, kDir, c, [&] {
        const DataPtr ws = run.workspace(c.workspace);
        const TypeInfo& t = p.type;
        KILN_LIB_CHECK(CudnnResult,
                       cudnnConvolutionBackwardData(run.handle, kOne.for_type(t), p.w.get(), w.data_ptr(), p.y.get(),
                                                    dyc.data_ptr(), p.conv_of(kDir),
                                                    static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws.get(),
                                                    c.workspace, kZero.for_type(t), p.x.get(), dxin.data_ptr()));
      });
      if (!ran) return conv2d_backward_data_native(cg, dyc, w, dxc);
      if (p.layout.padded_copy) {
        dxc.copy_(dxin.slice(1, p.layout.extra_top, p.layout.extra_top + g.h)
                      .slice(2, p.layout.extra_left, p.layout.extra_left + g.w));
      }
    });
  }
}

void conv2d_backward_filter_cudnn(const ConvGeometry& g, const Tensor& x, const Tensor& dy, const Tensor& dw,
                                  const Tensor& db) {
  Tensor dw_out = dw, db_out = db;
  if (g.n == 0) {
    dw_out.zero_();
    if (db.defined()) db_out.zero_();
    return;
  }
  const Run run(x);
  constexpr ConvDirection kDir = ConvDirection::backward_filter;
  // db per chunk, unless bfloat16: cudnnConvolutionBackwardBias documents no bfloat16, so
  // kiln's reduction (float32 sums) computes it after the loop.
  const bool db_per_chunk = db.defined() && g.dtype != DType::bfloat16;
  const auto chunks = batch_chunks(g);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const ConvGeometry& cg = chunks[i].second;
    const bool accumulate = i > 0;  // later chunks add into dw and db (beta = 1)
    Plan& p = *find_plan(run.device, cg);
    const Tensor xc = batch_slice(x, chunks[i], g.n), dyc = batch_slice(dy, chunks[i], g.n);
    with_context(p, kDir, [&] {
      const Tensor xin = p.layout.padded_copy ? padded_input(p, xc) : xc;
      Tensor scratch;  // timing overwrites its output: a scratch dw when dw holds earlier chunks
      const Choice c = choice_for(p, kDir, run.handle, run.device, [&] {
        if (accumulate) scratch = empty_like(dw);
        return Buffers{xin.data_ptr(), dyc.data_ptr(), (accumulate ? scratch : dw).data_ptr()};
      });
      const bool ran = ran_on_cudnn(p, kDir, c, [&] {
        const DataPtr ws = run.workspace(c.workspace);
        const TypeInfo& t = p.type;
        const void* beta = (accumulate ? kOne : kZero).for_type(t);
        KILN_LIB_CHECK(CudnnResult,
                       cudnnConvolutionBackwardFilter(run.handle, kOne.for_type(t), p.x.get(), xin.data_ptr(),
                                                      p.y.get(), dyc.data_ptr(), p.conv_of(kDir),
                                                      static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws.get(),
                                                      c.workspace, beta, p.w.get(), dw.data_ptr()));
        if (!db_per_chunk) return;
        KILN_LIB_CHECK(CudnnResult, cudnnConvolutionBackwardBias(run.handle, kOne.for_type(t), p.y.get(),
                                                                 dyc.data_ptr(), beta, p.bias.get(), db.data_ptr()));
      });
      if (ran) return;
      // Native: it overwrites its outputs, so later chunks compute into parts and add them.
      const Tensor part_w = accumulate ? empty_like(dw) : dw;
      const Tensor part_b = db_per_chunk ? (accumulate ? empty_like(db) : db) : Tensor();
      conv2d_backward_filter_native(cg, xc, dyc, part_w, part_b);
      if (accumulate) {
        add_(dw_out, part_w);
        if (part_b.defined()) add_(db_out, part_b);
      }
    });
  }
  if (db.defined() && !db_per_chunk) db_out.copy_(sum(dy, {0, 1, 2}));
}

CudnnConvStats cudnn_conv_stats() {
  const Stats& s = stats();
  return {s.plans.load(), s.heuristic.load(), s.timed.load(), s.cached.load(), s.native.load()};
}

void reset_cudnn_conv_plans() { clear_plans(); }

std::optional<ConvAlgoChoice> cudnn_conv_choice(const ConvGeometry& g, ConvDirection direction, int device) {
  if (g.n == 0) return std::nullopt;
  const std::shared_ptr<Plan> p = find_plan(device, batch_chunks(g).front().second);
  std::lock_guard<std::mutex> lock(p->mutex);
  const std::optional<Choice>& c = p->choice[index_of(direction)];
  if (!c || c->native) return std::nullopt;
  return ConvAlgoChoice{c->algo, static_cast<int>(c->math), static_cast<std::int64_t>(c->workspace)};
}

}  // namespace kiln::cuda
