// conv2d through cuDNN (KILN_CUDA=ON builds on a real GPU; skips elsewhere) against kiln's cpu
// path run in float64 on the same rounded inputs: forward, backward-data, backward-filter and
// the bias gradient for every problem of conv_ref.h's table (groups, depthwise, dilation,
// Keras "same" with even kernels and strides, which pads asymmetrically, explicit asymmetric
// pads) in float32 and float16, bfloat16 and float64 on a subset, TF32, autograd, streams and
// threads, and the algorithm cache: heuristic choices stay in memory, timed ones reach the
// disk, and a second run (a fresh load of the file, as a new process does) times nothing.
// The first tests need no GPU (descriptors and padding layouts are host-side cuDNN calls),
// so they also run on GPU-less machines with a KILN_CUDA=ON build.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conv_ref.h"
#include "kiln/core/cuda/runtime.h"
#include "kiln/core/random.h"
#include "kiln/kernels/autograd/engine.h"
#include "kiln/kernels/conv.h"
#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cuda/cudnn.h"
#include "kiln/kernels/cuda/cudnn_conv_plan.h"
#include "kiln/kernels/matmul.h"
#include "kiln_test.h"
#include "op_test_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using test::ConvSpec;
using test::kCpu;

const Device kGpu = Device::cuda(0);

// Against a float64 result from the same rounded inputs: the dtype's rounding of the output
// (and of 16-bit intermediates some algorithms keep), for sums of up to a few hundred terms
// of size 1. An indexing mistake is off by O(1).
test::Tolerance tolerance(DType dt) {
  switch (dt) {
    case DType::float64: return {1e-10, 1e-10};
    case DType::float32: return {2e-4, 2e-4};
    case DType::float16: return {2e-2, 1e-2};
    default: return {8e-2, 3e-2};  // bfloat16
  }
}

// The three passes of one problem: inputs drawn once (float64 on the cpu), outputs.
struct Passes {
  Tensor y, dx, dw, db;
};

struct Inputs {
  Tensor x, w, b, dy;  // float64, cpu
  Inputs(const ConvSpec& s, std::uint64_t seed) {
    Generator gen(seed);
    const TensorOptions f64{.dtype = float64, .device = kCpu};
    x = uniform(s.x_shape(), -1, 1, f64, &gen);
    w = uniform(s.w_shape(), -1, 1, f64, &gen);
    b = s.bias ? uniform({s.c_out}, -1, 1, f64, &gen) : Tensor();
    dy = uniform(test::resolve(s).y_shape(), -1, 1, f64, &gen);
  }
};

Tensor nan_filled(const Shape& shape, DType dt, Device dev) {
  Tensor t = empty(shape, {.dtype = dt, .device = dev});
  t.fill_(std::nan(""));  // cuDNN with beta = 0 never reads its output: every element must be written
  return t;
}

// Runs the entry points on `dev` in `dt` (the backend in force: cuDNN on the GPU, oneDNN on cpu).
Passes run(const ConvSpec& s, const Inputs& in, DType dt, Device dev) {
  const auto on = [&](const Tensor& t) { return t.defined() ? t.to(dev, dt).contiguous() : t; };
  const Tensor x = on(in.x), w = on(in.w), b = on(in.b), dy = on(in.dy);
  const ConvGeometry g = detail::conv2d_geometry(x, w, b, s.options());
  Passes p{nan_filled(dy.shape(), dt, dev), nan_filled(x.shape(), dt, dev), nan_filled(w.shape(), dt, dev),
           b.defined() ? nan_filled(b.shape(), dt, dev) : Tensor()};
  detail::conv2d_forward(g, x, w, b, p.y);
  detail::conv2d_backward_data(g, dy, w, p.dx);
  detail::conv2d_backward_filter(g, x, dy, p.dw, p.db);
  return p;
}

// cuDNN in `dt` against the cpu path in float64 on the inputs rounded to `dt`.
void expect_matches_cpu(const ConvSpec& s, DType dt, std::uint64_t seed) {
  SCOPED_TRACE(std::string(s.name) + " in " + std::string(name(dt)));
  Inputs in(s, seed);
  for (Tensor* t : {&in.x, &in.w, &in.b, &in.dy}) {
    if (t->defined()) *t = t->to(dt).to(float64);
  }
  const Passes gpu = run(s, in, dt, kGpu), cpu = run(s, in, float64, kCpu);
  EXPECT_EQ(gpu.y.device(), kGpu);
  EXPECT_TRUE(test::all_close(gpu.y, cpu.y, tolerance(dt))) << "y";
  EXPECT_TRUE(test::all_close(gpu.dx, cpu.dx, tolerance(dt))) << "dx";
  EXPECT_TRUE(test::all_close(gpu.dw, cpu.dw, tolerance(dt))) << "dw";
  if (s.bias) {
    EXPECT_TRUE(test::all_close(gpu.db, cpu.db, tolerance(dt))) << "db";
  }
}

const ConvSpec& spec(const char* name) {
  for (const ConvSpec& s : test::kConvSpecs) {
    if (std::string(s.name) == name) return s;
  }
  throw std::runtime_error(std::string("no conv spec ") + name);
}

// Explicit pads where using the top pad on both sides reads no extra row (H), and where it
// would (W: a padded copy), beside the table's problems.
const std::vector<ConvSpec> kPadSpecs = {
    {.name = "pads_unread_both", .n = 2, .h = 8, .w = 8, .c_in = 3, .c_out = 4, .k_h = 3, .k_w = 3, .stride_h = 2,
     .stride_w = 2, .pads = {1, 0, 1, 0}},
    {.name = "pads_unread_h_copied_w", .n = 2, .h = 8, .w = 7, .c_in = 3, .c_out = 4, .k_h = 3, .k_w = 3,
     .stride_h = 2, .stride_w = 2, .pads = {1, 0, 1, 0}},
};

ConvGeometry geometry(const ConvSpec& s, DType dt = float32) {
  const TensorOptions opts{.dtype = dt, .device = kCpu};
  return detail::conv2d_geometry(empty(s.x_shape(), opts), empty(s.w_shape(), opts),
                                 s.bias ? empty({s.c_out}, opts) : Tensor(), s.options());
}

TEST(CudnnConvLayout, AsymmetricPadsBecomeSymmetricWithACopyOnlyWhereNeeded) {
  using cuda::cudnn_conv::layout_of;
  // Keras "same", 3x3 stride 2 on 8x8: pads (0, 1); the top pad on both sides gives 3 rows, not 4.
  const auto same = layout_of(geometry(spec("stride2_same")));  // h 9 (1, 1), w 8 (0, 1)
  EXPECT_TRUE(same.padded_copy);
  EXPECT_EQ(same.problem.h, 9);
  EXPECT_EQ(same.problem.w, 9);
  EXPECT_EQ(same.problem.pad_top, 1);
  EXPECT_EQ(same.problem.pad_left, 0);
  EXPECT_EQ(same.extra_top, 0);
  EXPECT_EQ(same.extra_left, 0);
  const auto top_heavy = layout_of(geometry(spec("explicit_asymmetric_pads")));  // h (2, 0), w (0, 3)
  EXPECT_TRUE(top_heavy.padded_copy);
  EXPECT_EQ(top_heavy.extra_top, 2);
  EXPECT_EQ(top_heavy.problem.h, 5 + 2);
  EXPECT_EQ(top_heavy.problem.w, 6 + 3);
  EXPECT_EQ(top_heavy.problem.pad_top + top_heavy.problem.pad_left, 0);
  const auto unread = layout_of(geometry(kPadSpecs[0]));
  EXPECT_FALSE(unread.padded_copy) << "the odd bottom/right pad is never read";
  EXPECT_EQ(unread.problem.pad_top, 1);
  EXPECT_EQ(unread.problem.pad_bottom, 1);
  EXPECT_EQ(unread.problem.h, 8);
  const auto mixed = layout_of(geometry(kPadSpecs[1]));
  EXPECT_TRUE(mixed.padded_copy);
  EXPECT_EQ(mixed.problem.h, 8);
  EXPECT_EQ(mixed.problem.pad_top, 1);
  EXPECT_EQ(mixed.problem.w, 8);
  EXPECT_EQ(mixed.problem.pad_left, 0);
  EXPECT_FALSE(layout_of(geometry(spec("odd_3x3_valid"))).padded_copy);
  for (const ConvSpec& s : test::kConvSpecs) {
    const ConvGeometry g = geometry(s);
    const auto l = layout_of(g);
    const ConvGeometry& q = l.problem;
    SCOPED_TRACE(s.name);
    EXPECT_EQ(q.pad_top, q.pad_bottom);
    EXPECT_EQ(q.pad_left, q.pad_right);
    // The symmetric problem has the caller's output size, and x sits inside the copy.
    EXPECT_EQ((q.h + 2 * q.pad_top - ((q.k_h - 1) * q.dil_h + 1)) / q.stride_h + 1, g.out_h);
    EXPECT_EQ((q.w + 2 * q.pad_left - ((q.k_w - 1) * q.dil_w + 1)) / q.stride_w + 1, g.out_w);
    EXPECT_LE(l.extra_top + g.h, q.h);
    EXPECT_LE(l.extra_left + g.w, q.w);
    EXPECT_EQ(l.padded_copy, q.h != g.h || q.w != g.w);
  }
}

TEST(CudnnConvPlan, CudnnAcceptsTheDescriptorsOfEveryProblemAndAgreesOnTheOutput) {
  // Plans are host-side cuDNN calls (no handle, no GPU); the constructor asserts that
  // cuDNN's output size is kiln's. Not cached by device: built directly.
  std::vector<ConvSpec> specs = test::kConvSpecs;
  specs.insert(specs.end(), kPadSpecs.begin(), kPadSpecs.end());
  for (DType dt : {float32, float16, bfloat16, float64}) {
    for (const ConvSpec& s : specs) {
      SCOPED_TRACE(std::string(s.name) + " " + std::string(name(dt)));
      const ConvGeometry g = geometry(s, dt);
      EXPECT_NO_THROW({
        const cuda::cudnn_conv::Plan plan(g, cuda::cudnn_conv::type_info(dt));
        EXPECT_EQ(plan.layout.problem.out_h, g.out_h);
      });
    }
  }
}

// cuDNN on, benchmark mode and TF32 off, the algorithm cache in a fresh file of the test's
// own, no plans from earlier tests; every setting restored afterwards.
class CudnnConv : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_REQUIRE_CUDA();
    if (!cuda::cudnn_available()) GTEST_SKIP() << "cuDNN is not usable on this machine (kiln printed why)";
    backend_ = conv_backend();
    benchmark_ = cudnn_benchmark();
    tf32_ = allow_tf32();
    set_conv_backend(ConvBackend::vendor);
    set_cudnn_benchmark(false);
    set_allow_tf32(false);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kiln_cudnn_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    file_ = dir_ / "cudnn_algos.txt";
    cuda::set_conv_algo_cache_file(file_);
    cuda::reset_cudnn_conv_plans();
  }
  void TearDown() override {
    if (!backend_) return;  // skipped
    set_conv_backend(*backend_);
    set_cudnn_benchmark(benchmark_);
    set_allow_tf32(tf32_);
    cuda::set_conv_algo_cache_file(fs::path());
    cuda::reset_cudnn_conv_plans();
    fs::remove_all(dir_);
  }

  fs::path dir_, file_;

 private:
  std::optional<ConvBackend> backend_;
  bool benchmark_ = false, tf32_ = false;
};

TEST_F(CudnnConv, EveryProblemMatchesCpuInFloat32) {
  const std::int64_t fallbacks = cuda::cudnn_conv_stats().native_fallbacks;
  std::uint64_t seed = 1;
  for (const ConvSpec& s : test::kConvSpecs) expect_matches_cpu(s, float32, seed++);
  for (const ConvSpec& s : kPadSpecs) expect_matches_cpu(s, float32, seed++);
  EXPECT_EQ(cuda::cudnn_conv_stats().native_fallbacks, fallbacks) << "cuDNN had no algorithm for some problem";
}

TEST_F(CudnnConv, EveryProblemMatchesCpuInFloat16) {
  const std::int64_t fallbacks = cuda::cudnn_conv_stats().native_fallbacks;
  std::uint64_t seed = 100;
  for (const ConvSpec& s : test::kConvSpecs) expect_matches_cpu(s, float16, seed++);
  EXPECT_EQ(cuda::cudnn_conv_stats().native_fallbacks, fallbacks) << "cuDNN had no algorithm for some problem";
}

TEST_F(CudnnConv, BFloat16AndFloat64OnGroupedDilatedAndAsymmetricProblems) {
  std::uint64_t seed = 200;
  for (DType dt : {bfloat16, float64}) {
    for (const char* name : {"groups3_stride2", "depthwise", "dilation2_same", "even_kernel_stride2_same",
                             "explicit_asymmetric_pads", "pointwise_1x1"}) {
      expect_matches_cpu(spec(name), dt, seed++);
    }
  }
}

TEST_F(CudnnConv, LargerChannelsAndBatchMatchCpu) {
  // Past the table's toy sizes, where cuDNN's heuristics pick tensor-core and Winograd-class kernels.
  const ConvSpec big{.name = "resnet_like", .n = 4, .h = 14, .w = 14, .c_in = 64, .c_out = 96, .k_h = 3,
                     .k_w = 3, .stride_h = 2, .stride_w = 2, .padding = "same"};
  expect_matches_cpu(big, float32, 300);
  expect_matches_cpu(big, float16, 301);
}

TEST_F(CudnnConv, AutogradRunsThroughCudnn) {
  const ConvSpec& s = spec("even_kernel_stride2_same");
  const Inputs in(s, 400);
  const std::int64_t plans_before = cuda::cudnn_conv_stats().plans;
  Tensor x = in.x.to(kGpu, float32), w = in.w.to(kGpu, float32), b = in.b.to(kGpu, float32);
  for (Tensor* t : {&x, &w, &b}) t->requires_grad_();
  const Tensor y = conv2d(x, w, b, s.options());
  backward(y, in.dy.to(kGpu, float32));
  EXPECT_GT(cuda::cudnn_conv_stats().plans, plans_before);
  const Passes cpu = run(s, in, float64, kCpu);
  EXPECT_TRUE(test::all_close(y, cpu.y, tolerance(float32)));
  EXPECT_TRUE(test::all_close(x.grad(), cpu.dx, tolerance(float32)));
  EXPECT_TRUE(test::all_close(w.grad(), cpu.dw, tolerance(float32)));
  EXPECT_TRUE(test::all_close(b.grad(), cpu.db, tolerance(float32)));
}

TEST_F(CudnnConv, Tf32IsItsOwnPlanAndStaysClose) {
  const ConvSpec& s = spec("wide_channels_5x5");
  const Inputs in(s, 500);
  run(s, in, float32, kGpu);
  const std::int64_t plans = cuda::cudnn_conv_stats().plans;
  set_allow_tf32(true);
  const Passes tf32 = run(s, in, float32, kGpu), cpu = run(s, in, float64, kCpu);
  EXPECT_EQ(cuda::cudnn_conv_stats().plans, plans + 1) << "the math type is part of the problem";
  const test::Tolerance loose{2e-2, 1e-2};  // TF32 keeps 10 mantissa bits of each input
  EXPECT_TRUE(test::all_close(tf32.y, cpu.y, loose));
  EXPECT_TRUE(test::all_close(tf32.dw, cpu.dw, loose));
}

TEST_F(CudnnConv, HeuristicChoicesStayInMemory) {
  const cuda::CudnnConvStats before = cuda::cudnn_conv_stats();
  expect_matches_cpu(spec("stride2_same"), float32, 600);
  const cuda::CudnnConvStats after = cuda::cudnn_conv_stats();
  EXPECT_EQ(after.heuristic_choices - before.heuristic_choices, 3);
  EXPECT_EQ(after.timed_choices, before.timed_choices);
  EXPECT_FALSE(fs::exists(file_)) << "only timed choices are worth a file";
  expect_matches_cpu(spec("stride2_same"), float32, 601);  // same problem: the plan's choices
  EXPECT_EQ(cuda::cudnn_conv_stats().heuristic_choices, after.heuristic_choices);
}

TEST_F(CudnnConv, BenchmarkModeTimesOnceAndASecondRunFindsTheDiskCache) {
  set_cudnn_benchmark(true);
  const ConvSpec& s = spec("groups2");
  const cuda::CudnnConvStats start = cuda::cudnn_conv_stats();
  expect_matches_cpu(s, float32, 700);
  const cuda::CudnnConvStats timed = cuda::cudnn_conv_stats();
  EXPECT_EQ(timed.timed_choices - start.timed_choices, 3) << "forward, backward-data, backward-filter";
  ASSERT_TRUE(fs::exists(file_));
  EXPECT_EQ(cuda::ConvAlgoCache(file_).size(), 3u) << "what a new process would load";

  const Inputs in(s, 701);
  const ConvGeometry g = detail::conv2d_geometry(in.x.to(kGpu, float32), in.w.to(kGpu, float32),
                                                 in.b.to(kGpu, float32), s.options());
  std::vector<std::optional<cuda::ConvAlgoChoice>> first;
  for (auto d : {cuda::ConvDirection::forward, cuda::ConvDirection::backward_data,
                 cuda::ConvDirection::backward_filter}) {
    first.push_back(cuda::cudnn_conv_choice(g, d));
    EXPECT_TRUE(first.back().has_value());
  }

  // A second run: plans forgotten and the file loaded afresh, as in a new process.
  cuda::reset_cudnn_conv_plans();
  cuda::set_conv_algo_cache_file(file_);
  expect_matches_cpu(s, float32, 702);
  const cuda::CudnnConvStats second = cuda::cudnn_conv_stats();
  EXPECT_EQ(second.timed_choices, timed.timed_choices) << "the second run timed again";
  EXPECT_EQ(second.cached_choices - timed.cached_choices, 3);
  int i = 0;
  for (auto d : {cuda::ConvDirection::forward, cuda::ConvDirection::backward_data,
                 cuda::ConvDirection::backward_filter}) {
    EXPECT_EQ(cuda::cudnn_conv_choice(g, d), first[static_cast<std::size_t>(i++)]) << direction_name(d);
  }
}

TEST_F(CudnnConv, RunsOnTheCurrentStreamAndFromTwoThreads) {
  const ConvSpec& s = spec("wide_channels_5x5");
  const Inputs in(s, 800);
  const Passes cpu = run(s, in, float64, kCpu);
  const auto on_own_stream = [&](Passes* out) {
    const cuda::Stream stream = cuda::Stream::create(0);
    cuda::StreamGuard guard(stream);
    for (int rep = 0; rep < 3; ++rep) *out = run(s, in, float32, kGpu);
    stream.synchronize();
  };
  Passes main_thread, other_thread;
  std::thread worker(on_own_stream, &other_thread);
  on_own_stream(&main_thread);
  worker.join();
  for (const Passes* p : {&main_thread, &other_thread}) {
    EXPECT_TRUE(test::all_close(p->y, cpu.y, tolerance(float32)));
    EXPECT_TRUE(test::all_close(p->dx, cpu.dx, tolerance(float32)));
    EXPECT_TRUE(test::all_close(p->dw, cpu.dw, tolerance(float32)));
    EXPECT_TRUE(test::all_close(p->db, cpu.db, tolerance(float32)));
  }
}

TEST(CudnnResult, FailuresNameTheLibraryTheCallAndTheStatus) {
  // A bad descriptor reaches cuDNN's checks: the error is kiln's CudaError naming cuDNN.
  cuda::TensorDescriptor desc;
  try {
    KILN_LIB_CHECK(cuda::CudnnResult, cudnnSetTensor4dDescriptor(desc.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT,
                                                                 -1, 3, 4, 5));
    ADD_FAILURE() << "cuDNN accepted a negative batch";
  } catch (const CudaError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cuDNN"), std::string::npos) << what;
    EXPECT_NE(what.find("cudnnSetTensor4dDescriptor"), std::string::npos) << what;
    EXPECT_NE(what.find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace kiln
