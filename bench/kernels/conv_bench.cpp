// Convolution throughput of the three passes (forward, backward-data, backward-filter) on
// the conv layers of the models kiln's users train, float32 NHWC. Counter "GFLOP/s" is
// 2·N·OH·OW·C_out·KH·KW·C_in/groups per second of timed calls (each pass does that many
// multiply-adds); outputs are allocated once, so rows time the backend (primitive cached).
//   cpu (host clock): oneDNN on OpenMP's threads (OMP_NUM_THREADS; all cores by default, 2
//     on the dev machines: pass conv_torch.py the same --threads).
//   cuda (cuda events): the native im2col + tiled GEMM and cuDNN ("ratio_to_cudnn" = native
//     over cuDNN, measured in the same run; cuDNN rows only in KILN_CUDA=ON builds). Skipped
//     without a GPU and under SIM.
// Layers (batch small, PyTorch's symmetric padding, so conv_torch.py runs the same shapes):
//   mnist_conv1/2      Keras' MNIST convnet, batch 128: 28x28x1 -> 32 3x3, 13x13x32 -> 64 3x3
//   cifar_3x3          ResNet-on-CIFAR stage 3x3, 32x32x64 -> 64, batch 32
//   resnet18_conv1     224x224x3 -> 64 7x7 stride 2 pad 3, batch 4
//   resnet18_3x3       56x56x64 -> 64 3x3 pad 1, batch 4
//   vgg16_conv1_2      224x224x64 -> 64 3x3 pad 1, batch 1
//   vgg16_conv3        56x56x256 -> 256 3x3 pad 1, batch 1
//   mobilenet_dw3x3    MobileNet's depthwise 3x3 at 56x56x128 (groups 128), batch 8: the
//                      native path's direct depthwise kernels (kernels/cuda/conv_depthwise.cuh)
// conv_torch.py reads this benchmark's JSON and times PyTorch on the same rows:
//   kernels_conv_bench --benchmark_filter=Cpu --benchmark_out=conv.json --benchmark_out_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/random.h"
#include "kiln/kernels/conv.h"
#include "kiln/kernels/conv_impl.h"

namespace kiln {
namespace {

using namespace bench;

struct Layer {
  const char* name;
  std::int64_t n, h, w, c_in, c_out, k, stride, pad;
  std::int64_t groups = 1;
};

const std::array<Layer, 8> kLayers = {{
    {"mnist_conv1", 128, 28, 28, 1, 32, 3, 1, 0},
    {"mnist_conv2", 128, 13, 13, 32, 64, 3, 1, 0},
    {"cifar_3x3", 32, 32, 32, 64, 64, 3, 1, 1},
    {"resnet18_conv1", 4, 224, 224, 3, 64, 7, 2, 3},
    {"resnet18_3x3", 4, 56, 56, 64, 64, 3, 1, 1},
    {"vgg16_conv1_2", 1, 224, 224, 64, 64, 3, 1, 1},
    {"vgg16_conv3", 1, 56, 56, 256, 256, 3, 1, 1},
    {"mobilenet_dw3x3", 8, 56, 56, 128, 128, 3, 1, 1, 128},
}};

enum class Pass { forward, backward_data, backward_filter };
constexpr std::array<std::pair<Pass, const char*>, 3> kPasses = {
    {{Pass::forward, "forward"}, {Pass::backward_data, "backward_data"}, {Pass::backward_filter, "backward_filter"}}};

// The tensors of one layer on one device: x, w, bias, y (and dy, dx, dw, db for the backward).
struct Problem {
  ConvGeometry g;
  Tensor x, w, bias, y, dy, dx, dw, db;

  Problem(const Layer& l, Device device) {
    Generator gen(7);
    const TensorOptions opts{.device = device};
    x = uniform({l.n, l.h, l.w, l.c_in}, -1, 1, opts, &gen);
    w = uniform({l.c_out, l.k, l.k, l.c_in / l.groups}, -0.1, 0.1, opts, &gen);
    bias = uniform({l.c_out}, -0.1, 0.1, opts, &gen);
    g = detail::conv2d_geometry(
        x, w, bias,
        {.strides = {l.stride, l.stride}, .pads = {l.pad, l.pad, l.pad, l.pad}, .groups = l.groups});
    y = empty({g.n, g.out_h, g.out_w, g.c_out}, opts);
    dy = uniform(y.shape(), -1, 1, opts, &gen);
    dx = empty(x.shape(), opts);
    dw = empty(w.shape(), opts);
    db = empty(bias.shape(), opts);
  }

  void run(Pass pass) const {
    switch (pass) {
      case Pass::forward: return detail::conv2d_forward(g, x, w, bias, y);
      case Pass::backward_data: return detail::conv2d_backward_data(g, dy, w, dx);
      case Pass::backward_filter: return detail::conv2d_backward_filter(g, x, dy, dw, db);
    }
  }
  double gflop() const { return 2.0 * static_cast<double>(g.macs()) / 1e9; }
};

void set_counters(benchmark::State& state, const Problem& p, double seconds) {
  state.counters["GFLOP/s"] = p.gflop() * static_cast<double>(state.iterations()) / seconds;
  state.counters["GFLOP"] = p.gflop();
}

// ---- cpu ----

// "GFLOP/s" over the mean call; "best_GFLOP/s" over the fastest call, the steadier figure on
// a shared machine (another process's threads stall OpenMP's barriers), which conv_torch.py
// compares with PyTorch's fastest call.
void BM_CpuConv(benchmark::State& state, const Layer& layer, Pass pass) {
  const Problem p(layer, Device::cpu());
  p.run(pass);  // warm-up: creates and caches the primitive
  double best = 1e30;
  const double seconds = timed_iterations(state, Device::cpu(), [&](std::size_t) {
    const double t0 = omp_get_wtime();
    p.run(pass);
    best = std::min(best, omp_get_wtime() - t0);
  });
  set_counters(state, p, seconds);
  state.counters["best_GFLOP/s"] = p.gflop() / best;
}

// ---- cuda ----

// GFLOP/s of `backend` on (layer, pass): warmed up, then the median of 5 timed batches;
// measured once per key so every native row's ratio uses the same cuDNN figure.
double cuda_gflops(ConvBackend backend, const Layer& layer, Pass pass) {
  static std::map<std::string, double> cache;
  const std::string key = std::string(layer.name) + (backend == ConvBackend::native ? "/n/" : "/v/") +
                          std::to_string(static_cast<int>(pass));
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  set_conv_backend(backend);
  const Problem p(layer, Device::cuda(0));
  cuda_seconds([&] { p.run(pass); }, 2);
  std::vector<double> samples;
  for (int rep = 0; rep < 5; ++rep) samples.push_back(p.gflop() * 10 / cuda_seconds([&] { p.run(pass); }, 10));
  return cache[key] = median(samples);
}

bool cudnn_built() {
#if KILN_HAS_CUDA && !KILN_CUDA_SIM
  return cuda::cudnn_available();
#else
  return false;
#endif
}

void BM_CudaConv(benchmark::State& state, ConvBackend backend, const Layer& layer, Pass pass) {
  if (skip_without_cuda(state, "speed")) return;
  if (backend == ConvBackend::vendor && !cudnn_built()) {
    state.SkipWithError("cuDNN is not available in this build (KILN_CUDA=ON with cuDNN only)");
    return;
  }
  const double cudnn = cudnn_built() ? cuda_gflops(ConvBackend::vendor, layer, pass) : 0.0;
  set_conv_backend(backend);
  const Problem p(layer, Device::cuda(0));
  cuda_seconds([&] { p.run(pass); }, 2);
  const double seconds = timed_iterations(state, Device::cuda(0), [&](std::size_t) { p.run(pass); });
  set_counters(state, p, seconds);
  if (cudnn > 0) {
    state.counters["cudnn_GFLOP/s"] = cudnn;
    state.counters["ratio_to_cudnn"] = state.counters["GFLOP/s"] / cudnn;
  }
}

// BM_CpuConv/<layer>/<pass>, BM_CudaConv/<native|cudnn>/<layer>/<pass>.
const bool kRegistered = [] {
  for (const Layer& layer : kLayers) {
    for (const auto& [pass, pass_name] : kPasses) {
      const std::string suffix = std::string(layer.name) + "/" + pass_name;
      benchmark::RegisterBenchmark(("BM_CpuConv/" + suffix).c_str(), BM_CpuConv, layer, pass)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5);
      for (const auto& [backend, backend_name] :
           {std::pair{ConvBackend::native, "native"}, std::pair{ConvBackend::vendor, "cudnn"}}) {
        benchmark::RegisterBenchmark(("BM_CudaConv/" + std::string(backend_name) + "/" + suffix).c_str(),
                                     BM_CudaConv, backend, layer, pass)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace kiln
