// kiln's cuDNN convolution path against calling cuDNN directly (KILN_CUDA=ON builds, a real
// GPU): the target is kiln within 2% of the direct calls. The direct side sets up its own
// handle, descriptors and workspace once, outside the timed loop, and runs the algorithm (and
// math type) kiln chose for the same problem, so the difference is kiln's per-call cost:
// geometry and checks, the plan lookup, the handle, the workspace from the caching allocator,
// and (forward) the output allocation of kiln::conv2d.
//   forward          kiln::conv2d(x, w, b) (no autograd)  vs  cudnnConvolutionForward + cudnnAddTensor
//   backward_data    detail::conv2d_backward_data         vs  cudnnConvolutionBackwardData
//   backward_filter  detail::conv2d_backward_filter (+db) vs  cudnnConvolutionBackwardFilter + BackwardBias
// Counters: GFLOP/s of kiln (2·MACs per timed second), kiln_ms and direct_ms (medians of 7
// interleaved batches of 20 calls) and ratio = kiln_ms / direct_ms (1.02 is the budget).
// Layers: ResNet-18 (batch 32), VGG-16 (batch 16), a CIFAR ResNet (batch 128), Keras' MNIST
// convnet (batch 128); symmetric pads, as PyTorch's models; float32 (exact FMA math) and
// float16. KILN_CUDNN_BENCHMARK=1 times the algorithms first (heuristics otherwise); timed
// choices are cached on disk (kernels/cuda/conv_algo_cache.h).
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kiln/core/autograd_meta.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/random.h"
#include "kiln/kernels/conv.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cuda/cudnn.h"

namespace kiln {
namespace {

using namespace bench;
using cuda::ConvDirection;

struct Layer {
  const char* name;
  std::int64_t n, h, w, c_in, c_out, k, stride, pad;
};

const std::array<Layer, 16> kLayers = {{
    {"resnet18_conv1", 32, 224, 224, 3, 64, 7, 2, 3},
    {"resnet18_layer1", 32, 56, 56, 64, 64, 3, 1, 1},
    {"resnet18_layer2_down", 32, 56, 56, 64, 128, 3, 2, 1},
    {"resnet18_layer2", 32, 28, 28, 128, 128, 3, 1, 1},
    {"resnet18_layer3", 32, 14, 14, 256, 256, 3, 1, 1},
    {"resnet18_layer4", 32, 7, 7, 512, 512, 3, 1, 1},
    {"resnet18_shortcut_1x1", 32, 56, 56, 64, 128, 1, 2, 0},
    {"vgg16_conv1_1", 16, 224, 224, 3, 64, 3, 1, 1},
    {"vgg16_conv1_2", 16, 224, 224, 64, 64, 3, 1, 1},
    {"vgg16_conv3", 16, 56, 56, 256, 256, 3, 1, 1},
    {"vgg16_conv5", 16, 14, 14, 512, 512, 3, 1, 1},
    {"cifar_stage1", 128, 32, 32, 16, 16, 3, 1, 1},
    {"cifar_stage2", 128, 16, 16, 32, 32, 3, 1, 1},
    {"cifar_stage3", 128, 8, 8, 64, 64, 3, 1, 1},
    {"mnist_conv1", 128, 28, 28, 1, 32, 3, 1, 0},
    {"mnist_conv2", 128, 26, 26, 32, 64, 3, 1, 0},
}};

const std::array<std::pair<ConvDirection, const char*>, 3> kPasses = {{
    {ConvDirection::forward, "forward"},
    {ConvDirection::backward_data, "backward_data"},
    {ConvDirection::backward_filter, "backward_filter"},
}};

cudnnDataType_t cudnn_type(DType dt) { return dt == float16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

// One layer's tensors on cuda:0 and the same problem set up for direct cuDNN calls.
struct Problem {
  Layer layer;
  DType dtype;
  Conv2dOptions options;
  ConvGeometry g;
  Tensor x, w, b, y, dy, dx, dw, db;
  cudnnHandle_t handle = nullptr;
  cuda::TensorDescriptor x_desc, y_desc, b_desc;
  cuda::FilterDescriptor w_desc;
  cuda::ConvolutionDescriptor conv_desc;
  std::optional<cuda::ConvAlgoChoice> choice;
  DataPtr workspace;

  Problem(const Layer& l, DType dt) : layer(l), dtype(dt) {
    Generator gen(11);
    const TensorOptions opts{.dtype = dt, .device = Device::cuda(0)};
    x = uniform({l.n, l.h, l.w, l.c_in}, -1, 1, opts, &gen);
    w = uniform({l.c_out, l.k, l.k, l.c_in}, -0.1, 0.1, opts, &gen);
    b = uniform({l.c_out}, -0.1, 0.1, opts, &gen);
    options = {.strides = {l.stride, l.stride}, .pads = {l.pad, l.pad, l.pad, l.pad}};
    g = detail::conv2d_geometry(x, w, b, options);
    y = empty({g.n, g.out_h, g.out_w, g.c_out}, opts);
    dy = uniform(y.shape(), -1, 1, opts, &gen);
    dx = empty(x.shape(), opts);
    dw = empty(w.shape(), opts);
    db = empty(b.shape(), opts);
  }

  ~Problem() {
    if (handle != nullptr) (void)cudnnDestroy(handle);
  }
  Problem(const Problem&) = delete;
  Problem& operator=(const Problem&) = delete;

  void run_kiln(ConvDirection d) {
    switch (d) {
      case ConvDirection::forward: {
        const NoGradGuard no_grad;
        y = conv2d(x, w, b, options);
        return;
      }
      case ConvDirection::backward_data: return detail::conv2d_backward_data(g, dy, w, dx);
      case ConvDirection::backward_filter: return detail::conv2d_backward_filter(g, x, dy, dw, db);
    }
  }

  // Descriptors, handle and workspace for direction d, with the algorithm kiln chose (after
  // a kiln call has run). False when kiln runs d on its native path.
  bool set_up_direct(ConvDirection d) {
    choice = cuda::cudnn_conv_choice(g, d);
    if (!choice) return false;
    if (handle == nullptr) KILN_LIB_CHECK(cuda::CudnnResult, cudnnCreate(&handle));
    KILN_LIB_CHECK(cuda::CudnnResult,
                   cudnnSetStream(handle, static_cast<cudaStream_t>(cuda::current_stream(0).native())));
    const cudnnDataType_t t = cudnn_type(dtype);
    const auto i = [](std::int64_t v) { return static_cast<int>(v); };
    KILN_LIB_CHECK(cuda::CudnnResult,
                   cudnnSetTensor4dDescriptor(x_desc.get(), CUDNN_TENSOR_NHWC, t, i(g.n), i(g.c_in), i(g.h), i(g.w)));
    KILN_LIB_CHECK(cuda::CudnnResult, cudnnSetTensor4dDescriptor(y_desc.get(), CUDNN_TENSOR_NHWC, t, i(g.n),
                                                                 i(g.c_out), i(g.out_h), i(g.out_w)));
    KILN_LIB_CHECK(cuda::CudnnResult,
                   cudnnSetTensor4dDescriptor(b_desc.get(), CUDNN_TENSOR_NHWC, t, 1, i(g.c_out), 1, 1));
    KILN_LIB_CHECK(cuda::CudnnResult, cudnnSetFilter4dDescriptor(w_desc.get(), t, CUDNN_TENSOR_NHWC, i(g.c_out),
                                                                 i(g.c_in), i(g.k_h), i(g.k_w)));
    KILN_LIB_CHECK(cuda::CudnnResult,
                   cudnnSetConvolution2dDescriptor(conv_desc.get(), i(g.pad_top), i(g.pad_left), i(g.stride_h),
                                                   i(g.stride_w), 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    KILN_LIB_CHECK(cuda::CudnnResult,
                   cudnnSetConvolutionMathType(conv_desc.get(), static_cast<cudnnMathType_t>(choice->math_type)));
    workspace = choice->workspace_bytes > 0
                    ? allocate(Device::cuda(0), static_cast<std::size_t>(choice->workspace_bytes))
                    : DataPtr();
    return true;
  }

  void run_direct(ConvDirection d) const {
    const float one = 1.0f, zero = 0.0f;
    const auto ws_bytes = static_cast<std::size_t>(choice->workspace_bytes);
    switch (d) {
      case ConvDirection::forward:
        KILN_LIB_CHECK(cuda::CudnnResult,
                       cudnnConvolutionForward(handle, &one, x_desc.get(), x.data_ptr(), w_desc.get(), w.data_ptr(),
                                               conv_desc.get(), static_cast<cudnnConvolutionFwdAlgo_t>(choice->algo),
                                               workspace.get(), ws_bytes, &zero, y_desc.get(), y.data_ptr()));
        KILN_LIB_CHECK(cuda::CudnnResult, cudnnAddTensor(handle, &one, b_desc.get(), b.data_ptr(), &one,
                                                         y_desc.get(), y.data_ptr()));
        return;
      case ConvDirection::backward_data:
        KILN_LIB_CHECK(cuda::CudnnResult,
                       cudnnConvolutionBackwardData(handle, &one, w_desc.get(), w.data_ptr(), y_desc.get(),
                                                    dy.data_ptr(), conv_desc.get(),
                                                    static_cast<cudnnConvolutionBwdDataAlgo_t>(choice->algo),
                                                    workspace.get(), ws_bytes, &zero, x_desc.get(), dx.data_ptr()));
        return;
      case ConvDirection::backward_filter:
        KILN_LIB_CHECK(cuda::CudnnResult,
                       cudnnConvolutionBackwardFilter(handle, &one, x_desc.get(), x.data_ptr(), y_desc.get(),
                                                      dy.data_ptr(), conv_desc.get(),
                                                      static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice->algo),
                                                      workspace.get(), ws_bytes, &zero, w_desc.get(), dw.data_ptr()));
        KILN_LIB_CHECK(cuda::CudnnResult, cudnnConvolutionBackwardBias(handle, &one, y_desc.get(), dy.data_ptr(),
                                                                       &zero, b_desc.get(), db.data_ptr()));
        return;
    }
  }

  double gflop() const { return 2.0 * static_cast<double>(g.macs()) / 1e9; }
};

void BM_CudnnConv(benchmark::State& state, const Layer& layer, ConvDirection d, DType dt) {
  if (skip_without_cuda(state, "speed")) return;
  if (!cuda::cudnn_available()) {
    state.SkipWithError("cuDNN is not usable here");
    return;
  }
  set_conv_backend(ConvBackend::vendor);
  Problem p(layer, dt);
  cuda_seconds([&] { p.run_kiln(d); }, 3);  // chooses (or times) the algorithm, warms up
  if (!p.set_up_direct(d)) {
    state.SkipWithError("kiln runs this problem on its native path (cuDNN offered no algorithm)");
    return;
  }
  cuda_seconds([&] { p.run_direct(d); }, 3);
  const double seconds = timed_iterations(state, Device::cuda(0), [&](std::size_t) { p.run_kiln(d); });
  state.counters["GFLOP/s"] = p.gflop() * static_cast<double>(state.iterations()) / seconds;
  // Interleaved batches, so clock and thermal drift hit both sides alike.
  constexpr int kCalls = 20;
  std::vector<double> kiln_ms, direct_ms;
  for (int rep = 0; rep < 7; ++rep) {
    kiln_ms.push_back(cuda_seconds([&] { p.run_kiln(d); }, kCalls) * 1e3 / kCalls);
    direct_ms.push_back(cuda_seconds([&] { p.run_direct(d); }, kCalls) * 1e3 / kCalls);
  }
  const double k = median(kiln_ms), c = median(direct_ms);
  state.counters["kiln_ms"] = k;
  state.counters["direct_ms"] = c;
  state.counters["ratio"] = k / c;
  state.counters["algo"] = p.choice->algo;
  state.counters["workspace_MiB"] = static_cast<double>(p.choice->workspace_bytes) / (1 << 20);
}

// BM_CudnnConv/<float32|float16>/<layer>/<pass>.
const bool kRegistered = [] {
  for (DType dt : {float32, float16}) {
    for (const Layer& layer : kLayers) {
      for (const auto& [d, pass_name] : kPasses) {
        const std::string name = "BM_CudnnConv/" + std::string(kiln::name(dt)) + "/" + layer.name + "/" + pass_name;
        benchmark::RegisterBenchmark(name.c_str(), BM_CudnnConv, layer, d, dt)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace kiln
