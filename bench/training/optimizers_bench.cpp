// Optimizer step bandwidth over 10M float32 parameters, beside the device's copy
// bandwidth (a 2-thread memcpy on cpu, a device-to-device copy on cuda; bench_util.h):
//   Fused/<device>/<optimizer>  the one fused update over the flat buffers alone
//                               (training/optimizer_math.h entry points, as
//                               Optimizer::apply runs them; clipping adds its norm pass)
//   Apply/<device>/<optimizer>  Optimizer::apply_gradients on 10 parameters of 1M: the
//                               gradient gather (one copy per parameter) plus the above
// Counters: "GB/s" (bytes the step must move: parameters read and written, gradients
// read, each slot read and written; Apply adds the gather's read and write of each
// gradient; global_clipnorm adds one more read of the gradients) and "ratio_to_limit".
//   training_optimizers_bench --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kiln/kernels/device_dispatch.h"
#include "kiln/training/optimizer_math.h"
#include "kiln/training/optimizers.h"

namespace kiln {
namespace {

using namespace bench;

constexpr std::int64_t kParams = 10'000'000;  // a multiple of kChunk, as a flat buffer is
constexpr int kTensors = 10;

using optimizers::detail::StepScalars;
using optimizers::detail::UpdateKind;

// An optimizer, and the kernel variant its step launches (kind and flags; the scalar values
// are plausible first-step ones: they do not change the work).
struct Spec {
  const char* name;
  std::function<std::shared_ptr<optimizers::Optimizer>()> make;
  StepScalars scalars;
  bool global_clip = false;
};

StepScalars scalars(UpdateKind kind, std::function<void(StepScalars&)> more = {}) {
  StepScalars s;
  s.kind = kind;
  s.lr = 1e-3;
  s.momentum = 0.9;
  s.one_minus_beta_1 = 0.1;
  s.one_minus_beta_2 = 1e-3;
  s.rho = 0.9;
  s.one_minus_rho = 0.1;
  s.epsilon = 1e-7;
  s.alpha = 1e-3;
  s.u_t_1 = 0.9;
  s.one_minus_u_t = 0.5;
  s.one_minus_u_product_t = 0.5;
  s.one_minus_u_product_t_1 = 0.6;
  s.one_minus_beta_2_power = 1e-3;
  if (more) more(s);
  return s;
}

const std::vector<Spec>& specs() {
  using namespace optimizers;
  static const std::vector<Spec> all = {
      {"sgd", [] { return std::make_shared<SGD>(); }, scalars(UpdateKind::sgd)},
      {"sgd_momentum", [] { return std::make_shared<SGD>(SGDOptions{.momentum = 0.9}); },
       scalars(UpdateKind::sgd, [](StepScalars& s) { s.momentum_on = true; })},
      {"adam", [] { return std::make_shared<Adam>(); }, scalars(UpdateKind::adam)},
      {"adamw", [] { return std::make_shared<AdamW>(); },
       scalars(UpdateKind::adam, [](StepScalars& s) { s.decay = true, s.weight_decay = 0.004; })},
      {"adam_global_clipnorm", [] { return std::make_shared<Adam>(AdamOptions{.global_clipnorm = 1.0}); },
       scalars(UpdateKind::adam, [](StepScalars& s) { s.clipnorm = 1.0; }), true},
      {"rmsprop", [] { return std::make_shared<RMSprop>(); }, scalars(UpdateKind::rmsprop)},
      {"adagrad", [] { return std::make_shared<Adagrad>(); }, scalars(UpdateKind::adagrad)},
      {"adadelta", [] { return std::make_shared<Adadelta>(); }, scalars(UpdateKind::adadelta)},
      {"nadam", [] { return std::make_shared<Nadam>(); }, scalars(UpdateKind::nadam)},
  };
  return all;
}

double limit_gbs(Device device, std::int64_t bytes) {
  return device.is_cpu() ? cpu_copy_gbs(bytes) : cuda_copy_gbs(bytes);
}

// Bytes one fused step moves per parameter (float32 parameters and slots).
double fused_bytes(const Spec& s) {
  const auto slots = static_cast<double>(s.make()->slot_specs().size());
  return 4.0 * (3 + 2 * slots) + (s.global_clip ? 4.0 : 0.0);
}

void BM_Fused(benchmark::State& state, Device device, const Spec& spec) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  auto opt = spec.make();
  const std::size_t nslots = opt->slot_specs().size();
  const TensorOptions on{.dtype = float32, .device = device};
  const Tensor param = full({kParams}, 0.5, on), grad = full({kParams}, 0.01, on);
  std::vector<Tensor> slots;
  for (std::size_t j = 0; j < nslots; ++j) slots.push_back(full({kParams}, 0.1, on));
  const std::int64_t chunks = kParams / optimizers::kChunk;
  const Tensor chunk_member = zeros({chunks}, {.dtype = int32, .device = device});
  const Tensor member_chunks = from_vector(std::vector<std::int32_t>{0, static_cast<std::int32_t>(chunks)},
                                           {.device = device});
  const Tensor partials = empty({chunks}, {.dtype = float64, .device = device});
  const Tensor norm = empty({2}, {.dtype = float64, .device = device});
  optimizers::detail::FlatArgs a;
  a.param = param.data_ptr();
  a.grad = grad.data_ptr();
  a.nslots = static_cast<int>(nslots);
  for (std::size_t j = 0; j < nslots; ++j) a.slots[j] = slots[j].data_ptr();
  a.numel = kParams;
  a.chunk = optimizers::kChunk;
  optimizers::detail::NormArgs n{.grad = grad.data_ptr(), .numel = kParams, .chunk = optimizers::kChunk,
                                 .member_chunks = member_chunks.data<std::int32_t>(), .members = 1,
                                 .partials = partials.data<double>(), .mode = optimizers::detail::NormMode::global,
                                 .clipnorm = 1.0, .norm = norm.data<double>()};
  if (spec.global_clip) {
    a.norm_mode = optimizers::detail::NormMode::global;
    a.norm = norm.data<double>();
    a.chunk_member = chunk_member.data<std::int32_t>();
  }
  const StepScalars s = spec.scalars;
  auto step = [&] {
    if (spec.global_clip) {
      KILN_ON_DEVICE(device, "clip_norms", optimizers::cpu::clip_norms(n), optimizers::cuda::clip_norms(n, device.index()));
    }
    KILN_ON_DEVICE(device, "fused_step", optimizers::cpu::fused_step(a, s),
                   optimizers::cuda::fused_step(a, s, device.index()));
  };
  step();  // warm-up
  const double seconds = timed_iterations(state, device, [&](std::size_t) { step(); });
  set_bandwidth_counters(state, fused_bytes(spec) * kParams, seconds, limit_gbs(device, 4 * kParams));
}

void BM_Apply(benchmark::State& state, Device device, const Spec& spec) {
  if (skip_device(state, device)) return;
  omp_set_num_threads(kCpuThreads);
  auto opt = spec.make();
  std::vector<Tensor> params;
  for (int k = 0; k < kTensors; ++k) {
    Tensor p = full({kParams / kTensors}, 0.5, {.dtype = float32, .device = device});
    p.requires_grad_(true);
    p.set_grad(full({kParams / kTensors}, 0.01, {.dtype = float32, .device = device}));
    params.push_back(p);
  }
  opt->apply_gradients(params);  // warm-up: packs the flat buffers
  const double seconds = timed_iterations(state, device, [&](std::size_t) { opt->apply_gradients(params); });
  set_bandwidth_counters(state, (fused_bytes(spec) + 8.0) * kParams, seconds, limit_gbs(device, 4 * kParams));
}

const bool kRegistered = [] {
  for (const Spec& s : specs()) {
    for (const Device d : {Device::cpu(), Device::cuda(0)}) {
      const std::string dev = d.is_cpu() ? "cpu" : "cuda";
      benchmark::RegisterBenchmark(("Fused/" + dev + "/" + s.name).c_str(), BM_Fused, d, s)
          ->UseManualTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("Apply/" + dev + "/" + s.name).c_str(), BM_Apply, d, s)
          ->UseManualTime()->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace kiln
