// Internal to the cuDNN convolution (kernels/cuda/cudnn_conv.cpp, cudnn_conv_plan.cpp): the
// plan of one problem (device, batch-chunk geometry, math type), which holds its descriptors,
// made once, and each direction's algorithm, chosen on first use. KILN_CUDA=ON builds only.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "kiln/kernels/conv_impl.h"
#include "kiln/kernels/cuda/conv_algo_cache.h"
#include "kiln/kernels/cuda/cudnn.h"

namespace kiln::cuda::cudnn_conv {

struct TypeInfo {
  cudnnDataType_t data;
  cudnnDataType_t compute;  // the convolution descriptor's accumulation type
  cudnnMathType_t math;     // asked for; an algorithm may come back ranked with another
  const char* math_name;    // the algorithm cache's spelling of `math`
};
// float32: FMA math, TF32 (default math) when kiln::allow_tf32(); float16 and bfloat16:
// tensor-op math, float32 compute; float64: default math, float64 compute.
TypeInfo type_info(DType dt);

// alpha/beta: double for float64 data, float for every other type (cuDNN's rule).
struct Scale {
  float f;
  double d;
  explicit Scale(double v) : f(static_cast<float>(v)), d(v) {}
  const void* for_type(const TypeInfo& t) const {
    return t.data == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&d) : static_cast<const void*>(&f);
  }
};
inline const Scale kZero(0.0), kOne(1.0);

// The problem cuDNN sees (Note [Asymmetric padding in cuDNN] in cudnn_conv_plan.cpp).
struct Layout {
  ConvGeometry problem;                        // symmetric pads; h, w of the padded copy if any
  std::int64_t extra_top = 0, extra_left = 0;  // zero rows / columns before x in the copy
  bool padded_copy = false;
};
Layout layout_of(const ConvGeometry& g);

struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  std::size_t workspace = 0;
  bool native = false;  // cuDNN offered no algorithm: kiln's native path runs this direction
};

inline int index_of(ConvDirection d) { return static_cast<int>(d); }

struct Plan {
  ConvGeometry chunk;  // the caller's geometry of this batch chunk
  Layout layout;
  TypeInfo type;
  TensorDescriptor x, y, bias;  // x: the (padded) input; y: the output; bias: (1, C_out, 1, 1)
  FilterDescriptor w;
  std::array<ConvolutionDescriptor, 3> conv;  // per direction: each carries its algorithm's math type
  std::mutex mutex;                           // guards `choice` and the math types of `conv`
  std::array<std::optional<Choice>, 3> choice;

  Plan(const ConvGeometry& g, const TypeInfo& t);
  cudnnConvolutionDescriptor_t conv_of(ConvDirection d) const { return conv[index_of(d)].get(); }
  void set_math(ConvDirection d, cudnnMathType_t m) const;
};

// The plan of chunk geometry `g` on `device` with the current math settings, made on first use.
std::shared_ptr<Plan> find_plan(int device, const ConvGeometry& g);
void clear_plans();

// What cudnnFind*AlgorithmEx runs on: two inputs and the output it overwrites
// (forward: x, w -> y; backward-data: w, dy -> dx; backward-filter: x, dy -> dw).
struct Buffers {
  const void* a;
  const void* b;
  void* out;
};

// Direction d's algorithm for p: from the algorithm cache, cuDNN's heuristics or timing
// (kiln::cudnn_benchmark()); leaves p.conv_of(d) with the chosen math type. Call with
// p.mutex held.
Choice choose(Plan& p, ConvDirection d, cudnnHandle_t handle, const Buffers& buffers, int device);

// p's choice for direction d, made on first use under p's lock, so a problem is timed once
// even when threads race to it; buffers() gives what timing runs on (only called then).
template <class MakeBuffers>
Choice choice_for(Plan& p, ConvDirection d, cudnnHandle_t handle, int device, MakeBuffers&& buffers) {
  std::lock_guard<std::mutex> lock(p.mutex);
  std::optional<Choice>& slot = p.choice[index_of(d)];
  if (!slot) slot = choose(p, d, handle, buffers(), device);
  return *slot;
}

struct Stats {
  std::atomic<std::int64_t> plans{0}, heuristic{0}, timed{0}, cached{0}, native{0};
};
Stats& stats();

}  // namespace kiln::cuda::cudnn_conv
