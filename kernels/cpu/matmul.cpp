// cpu GEMM: oneDNN's matmul primitive (float32, bfloat16, and float16 where this CPU's
// oneDNN has it) with strided and transposed operands and the bias fused; a 16-bit GEMM
// that oneDNN lacks here runs in float32 (inputs widened exactly, C rounded once), and
// float64, which oneDNN has no matmul for, is a blocked OpenMP loop (cpu/matmul_fallback.cpp).
// Primitives are cached by problem layout (Note [oneDNN primitive cache]).
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <optional>
#include <unordered_map>
#include <vector>

#include "kiln/kernels/cpu/matmul_fallback.h"
#include "kiln/kernels/cpu/onednn.h"
#include "kiln/kernels/matmul_impl.h"

namespace kiln::cpu {
namespace {

using dnnl::memory;

using onednn::engine;
using onednn::stream;

memory::data_type dnnl_type(DType dtype) { return onednn::data_type(dtype, "cpu gemm"); }

// Note [oneDNN primitive cache]
// Creating a matmul primitive (choosing and JIT-compiling a kernel) costs far more than a
// small GEMM, so primitives are kept, keyed by everything their memory descriptors encode:
// dtype, sizes, leading dimensions, transposes, batch strides and whether a bias is
// fused. Data pointers are not part of a primitive and are bound at each execution. The
// cache is a bounded LRU; a layout this oneDNN cannot compute is cached as "none" so the
// float32 fallback is chosen without asking again.
struct Key {
  DType dtype;
  std::int64_t batch, m, n, k;
  std::int64_t lda, ldb, stride_a, stride_b;
  bool trans_a, trans_b, bias;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  std::size_t operator()(const Key& k) const {
    std::size_t h = static_cast<std::size_t>(k.dtype);
    for (std::int64_t v : {k.batch, k.m, k.n, k.k, k.lda, k.ldb, k.stride_a, k.stride_b}) {
      h = h * 1000003u ^ static_cast<std::size_t>(v);
    }
    return h * 8u + (k.trans_a ? 4u : 0u) + (k.trans_b ? 2u : 0u) + (k.bias ? 1u : 0u);
  }
};

using PrimitiveCache = onednn::LruCache<Key, dnnl::matmul, KeyHash>;

PrimitiveCache& cache() {
  static PrimitiveCache* c = new PrimitiveCache;  // lives past static destruction
  return *c;
}

// (batch or 1, rows, cols) with the operand's strides; a broadcast batch is extent 1.
memory::desc operand_desc(const GemmOperand& op, std::int64_t batch, std::int64_t rows,
                          std::int64_t cols, memory::data_type type) {
  const std::int64_t b = op.batch_stride == 0 ? 1 : batch;
  const std::int64_t s_rows = op.transposed ? 1 : op.ld, s_cols = op.transposed ? op.ld : 1;
  const std::int64_t s_batch = op.batch_stride == 0 ? rows * cols : op.batch_stride;
  return memory::desc({b, rows, cols}, type, {s_batch, s_rows, s_cols});
}

struct Descs {
  memory::desc a, b, c, bias;
};

Descs descs(const GemmProblem& p) {
  const auto type = dnnl_type(p.dtype);
  return {operand_desc(p.a, p.batch, p.m, p.k, type), operand_desc(p.b, p.batch, p.k, p.n, type),
          memory::desc({p.batch, p.m, p.n}, type, {p.m * p.n, p.n, 1}),
          p.bias ? memory::desc({1, 1, p.n}, type, {p.n, p.n, 1}) : memory::desc()};
}

std::optional<dnnl::matmul> make_primitive(const GemmProblem& p) {
  const Descs d = descs(p);
  try {
    const dnnl::matmul::desc desc(d.a, d.b, d.bias, d.c);
    return dnnl::matmul(dnnl::matmul::primitive_desc(desc, engine()));
  } catch (const dnnl::error& e) {
    if (e.status == dnnl_unimplemented) return std::nullopt;
    KILN_THROW(InternalError, "cpu gemm: oneDNN rejected a ", p.dtype, " matmul of batch ", p.batch,
               ", (", p.m, ", ", p.k, ") x (", p.k, ", ", p.n, "), lda ", p.a.ld,
               p.a.transposed ? " transposed" : "", ", ldb ", p.b.ld, p.b.transposed ? " transposed" : "",
               ", batch strides ", p.a.batch_stride, " and ", p.b.batch_stride, ": ", e.what());
  }
}

void execute(const dnnl::matmul& prim, const GemmProblem& p) {
  const Descs d = descs(p);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(d.a, engine(), const_cast<void*>(p.a.data))},
      {DNNL_ARG_WEIGHTS, memory(d.b, engine(), const_cast<void*>(p.b.data))},
      {DNNL_ARG_DST, memory(d.c, engine(), p.c)}};
  if (p.bias) args.emplace(DNNL_ARG_BIAS, memory(d.bias, engine(), const_cast<void*>(p.bias)));
  // Note [Small GEMMs on one thread]: oneDNN opens an OpenMP region of every thread for
  // each matmul; below ~2^18 multiply-adds (a batch-32 Dense layer) the fork and join cost
  // more than the arithmetic, so those run on the calling thread alone. omp_set_num_threads
  // changes only this thread's setting, and it is restored right after.
  constexpr double kSerialMacs = 1 << 18;
  struct OneThread {  // restores the thread count even when execute throws
    int threads;
    explicit OneThread(bool on) : threads(on ? omp_get_max_threads() : 0) {
      if (threads > 1) omp_set_num_threads(1);
    }
    ~OneThread() {
      if (threads > 1) omp_set_num_threads(threads);
    }
  } serial(static_cast<double>(p.batch) * p.m * p.n * p.k < kSerialMacs);
  prim.execute(stream(), args);
  stream().wait();
}

}  // namespace

void gemm(const GemmProblem& p) {
  if (p.dtype == DType::float64) return gemm_f64(p);
  KILN_ASSERT(p.dtype == DType::float32 || p.dtype == DType::float16 || p.dtype == DType::bfloat16,
              "cpu gemm: unexpected dtype ", p.dtype);
  const Key key{p.dtype, p.batch, p.m, p.n, p.k, p.a.ld, p.b.ld, p.a.batch_stride,
                p.b.batch_stride, p.a.transposed, p.b.transposed, p.bias != nullptr};
  std::optional<dnnl::matmul> prim = cache().get(key, [&] { return make_primitive(p); });
  if (prim) return execute(*prim, p);
  KILN_ASSERT(p.dtype != DType::float32, "cpu gemm: oneDNN has no float32 matmul for this layout");
  gemm_via_float32(p);
}

}  // namespace kiln::cpu
