// kiln's native GEMM: a shared-memory tiled kernel with register blocking, the path that
// runs under SIM, with KILN_GEMM=native on a GPU, and in the benchmarks beside cuBLAS.
//   C[b] (m, n) = alpha * A[b] (m, k) · B[b] (k, n) + beta * C[b] + bias (n)
// Each block computes a BM x BN tile of C, stepping through k in BK-wide slices that are
// double-buffered in shared memory: while the block multiplies slice t out of one buffer,
// every thread already holds its share of slice t + 1 in registers, stored into the other
// buffer afterwards, so one __syncthreads per slice suffices. Each thread owns a TM x TN
// micro-tile of C made of 4 x 4 fragments 4·(BM/TM) rows (and 4·(BN/TN) columns) apart,
// so a warp's shared-memory reads are 16-byte vectors without bank conflicts. Global loads
// are 4-element vectors along whichever axis of the operand is contiguous (row-major or
// transposed) when aligned, scalar and masked at the edges of m, n and k. 16-bit types
// compute in float; float64 in double. Include only from .cu files.
#pragma once

#include <cstdint>

#include "kiln/core/convert.h"
#include "kiln/core/cuda/kernel.h"
#include "kiln/kernels/math.h"

namespace kiln::cuda {

template <int BM_, int BN_, int BK_, int TM_, int TN_, int kMinBlocks_>
struct GemmTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  // Blocks per SM the compiler must fit (caps registers per thread: 2 x 256 threads -> 128).
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr int kThreadsM = BM / TM, kThreadsN = BN / TN;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  // 4-element vectors per thread per slice of A (BM x BK) and of B (BK x BN).
  static constexpr int kVecsA = BM * BK / 4 / kThreads, kVecsB = BK * BN / 4 / kThreads;
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "fragments are 4-element vectors");
  static_assert(kVecsA * kThreads * 4 == BM * BK && kVecsB * kThreads * 4 == BK * BN,
                "every thread loads the same number of vectors");
};
// 256 threads each: the large tile for GEMMs with enough tiles to fill the GPU, the small
// one for the rest (fewer wasted rows and columns, more blocks).
using LargeGemmTile = GemmTile<128, 128, 8, 8, 8, 2>;
using SmallGemmTile = GemmTile<64, 64, 16, 4, 4, 2>;

template <class T>
struct NativeGemmArgs {
  using Acc = math::compute_t<T>;
  const T* a = nullptr;
  const T* b = nullptr;
  T* c = nullptr;
  const T* bias = nullptr;  // (n) or null
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0;                        // see GemmOperand
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // batch strides, elements
  std::int64_t batch = 1;  // launches split it into grids of at most 65535
  Acc alpha = 1, beta = 0;
  // 4-element vector accesses are aligned for every tile (base, ld and batch stride).
  bool vec_a = false, vec_b = false, vec_c = false;
};

namespace detail {

// Four consecutive elements of p into out, widened to Acc (one or two vector loads).
template <class T, class Acc>
__device__ __forceinline__ void load4(const T* p, Acc (&out)[4]) {
  if constexpr (sizeof(T) == 4) {
    const float4 v = load_vector<float4>(p);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else if constexpr (sizeof(T) == 8) {
    const double2 lo = load_vector<double2>(p), hi = load_vector<double2>(p + 2);
    out[0] = lo.x, out[1] = lo.y, out[2] = hi.x, out[3] = hi.y;
  } else {
    // Four 16-bit values in two 32-bit words, element 0 in the low half (little-endian).
    const uint2 v = load_vector<uint2>(p);
    const unsigned words[2] = {v.x, v.y};
    KILN_UNROLL
    for (int e = 0; e < 4; ++e) {
      const auto bits = static_cast<std::uint16_t>(words[e / 2] >> (16 * (e % 2)));
      out[e] = convert<Acc>(T::from_bits(bits));
    }
  }
}

template <class T, class Acc>
__device__ __forceinline__ void store4(T* p, const Acc (&in)[4]) {
  if constexpr (sizeof(T) == 4) {
    store_vector(p, float4{in[0], in[1], in[2], in[3]});
  } else if constexpr (sizeof(T) == 8) {
    store_vector(p, double2{in[0], in[1]});
    store_vector(p + 2, double2{in[2], in[3]});
  } else {
    unsigned words[2] = {0, 0};
    KILN_UNROLL
    for (int e = 0; e < 4; ++e) words[e / 2] |= unsigned{convert<T>(in[e]).bits} << (16 * (e % 2));
    store_vector(p, uint2{words[0], words[1]});
  }
}

// Four Acc values from shared memory (16-byte aligned).
template <class Acc>
__device__ __forceinline__ void smem_load4(const Acc* p, Acc (&out)[4]) {
  if constexpr (sizeof(Acc) == 4) {
    const float4 v = load_vector<float4>(p);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else {
    const double2 lo = load_vector<double2>(p), hi = load_vector<double2>(p + 2);
    out[0] = lo.x, out[1] = lo.y, out[2] = hi.x, out[3] = hi.y;
  }
}

// The first `count` of p[0..3] (the rest read as zero, never dereferenced).
template <class T, class Acc>
__device__ __forceinline__ void load4_masked(const T* p, int count, Acc (&out)[4]) {
  KILN_UNROLL
  for (int e = 0; e < 4; ++e) out[e] = e < count ? convert<Acc>(p[e]) : Acc(0);
}

__device__ __forceinline__ int clamp4(std::int64_t left) {
  return left < 0 ? 0 : (left > 4 ? 4 : static_cast<int>(left));
}

// One thread's share of the slices of one operand. A slice is BK rows of k by kX
// columns of x (x = m for A, n for B), stored in shared memory as sm[k][x]. The thread
// moves kVecs 4-element vectors per slice, along the operand's contiguous axis: along k
// (kAlongK: row-major A, transposed B) or along x (transposed A, row-major B). Element
// (x, k) of the operand is at x * sx + k * sk, one of the two strides being 1.
template <class T, int kX, int BK, int kThreads, int kVecs, bool kAlongK>
struct SliceLoader {
  using Acc = math::compute_t<T>;
  const T* p[kVecs];  // the vector's first element in the current slice
  int x[kVecs], k[kVecs];  // its position in the slice
  int x_count[kVecs];  // elements of the vector within the operand's x extent (0..4)

  // `base` is the operand at (x0, k = 0); x_extent its m or n.
  __device__ SliceLoader(const T* base, std::int64_t sx, std::int64_t sk, std::int64_t x0,
                         std::int64_t x_extent, int tid) {
    KILN_UNROLL
    for (int i = 0; i < kVecs; ++i) {
      const int v = tid + i * kThreads;
      x[i] = kAlongK ? v / (BK / 4) : (v % (kX / 4)) * 4;
      k[i] = kAlongK ? (v % (BK / 4)) * 4 : v / (kX / 4);
      p[i] = base + x[i] * sx + k[i] * sk;
      const std::int64_t x_left = x_extent - x0 - x[i];
      x_count[i] = kAlongK ? (x_left > 0 ? 4 : 0) : clamp4(x_left);
    }
  }

  // Loads the slice starting at k0 (masked past K; vectors only where `vec` says aligned).
  __device__ void load(int k0, int K, bool vec, Acc (&r)[kVecs][4]) const {
    KILN_UNROLL
    for (int i = 0; i < kVecs; ++i) {
      const int k_left = K - k0 - k[i];
      const int k_count = kAlongK ? clamp4(k_left) : (k_left > 0 ? 4 : 0);
      const int count = x_count[i] < k_count ? x_count[i] : k_count;
      if (count == 4 && vec) {
        load4(p[i], r[i]);
      } else {
        load4_masked(p[i], count, r[i]);
      }
    }
  }

  // Moves to the next slice: BK steps along k.
  __device__ void advance(std::int64_t sk) {
    KILN_UNROLL
    for (int i = 0; i < kVecs; ++i) p[i] += BK * sk;
  }

  __device__ void store(const Acc (&r)[kVecs][4], Acc (*sm)[kX]) const {
    KILN_UNROLL
    for (int i = 0; i < kVecs; ++i) {
      KILN_UNROLL
      for (int e = 0; e < 4; ++e) {
        if (kAlongK) {
          sm[k[i] + e][x[i]] = r[i][e];
        } else {
          sm[k[i]][x[i] + e] = r[i][e];
        }
      }
    }
  }
};

// Writes the thread's micro-tile: C = alpha * acc + beta * C + bias, masked at the edges.
template <class T, class Tile>
__device__ __forceinline__ void store_tile(const NativeGemmArgs<T>& g, T* c, std::int64_t m0,
                                           std::int64_t n0, int ty, int tx,
                                           const math::compute_t<T> (&acc)[Tile::TM][Tile::TN]) {
  using Acc = math::compute_t<T>;
  const std::int64_t rows_left = g.m - m0, cols_left = g.n - n0;
  KILN_UNROLL
  for (int r = 0; r < Tile::TM; ++r) {
    const int row = (r / 4) * 4 * Tile::kThreadsM + ty * 4 + r % 4;  // in the tile
    if (row >= rows_left) continue;
    T* c_row = c + (m0 + row) * g.n + n0;
    KILN_UNROLL
    for (int f = 0; f < Tile::TN / 4; ++f) {
      const int col = f * 4 * Tile::kThreadsN + tx * 4;
      const int count = clamp4(cols_left - col);
      Acc v[4], old[4] = {0, 0, 0, 0};
      if (g.beta != Acc(0)) {
        if (count == 4 && g.vec_c) {
          load4(c_row + col, old);
        } else {
          load4_masked(c_row + col, count, old);
        }
      }
      KILN_UNROLL
      for (int e = 0; e < 4; ++e) {
        v[e] = g.alpha * acc[r][f * 4 + e] + g.beta * old[e];
        if (g.bias != nullptr && e < count) v[e] += convert<Acc>(g.bias[n0 + col + e]);
      }
      if (count == 4 && g.vec_c) {
        store4(c_row + col, v);
      } else {
        KILN_UNROLL
        for (int e = 0; e < 4; ++e) {
          if (e < count) c_row[col + e] = convert<T>(v[e]);
        }
      }
    }
  }
}

}  // namespace detail

// grid: (m tiles, n tiles, batch <= 65535); block: Tile::kThreads. See the file comment.
// (Batches beyond grid z are separate launches: a loop over them here would cost the
// registers that let two blocks share an SM.)
template <class T, class Tile, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    native_gemm_kernel(NativeGemmArgs<T> g) {
  using Acc = math::compute_t<T>;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, TM = Tile::TM, TN = Tile::TN;
  using ALoader = detail::SliceLoader<T, BM, BK, Tile::kThreads, Tile::kVecsA, !kTransA>;
  using BLoader = detail::SliceLoader<T, BN, BK, Tile::kThreads, Tile::kVecsB, kTransB>;
  __shared__ __align__(16) Acc as[2][BK][BM];  // A slices, k-major: as[k][m]
  __shared__ __align__(16) Acc bs[2][BK][BN];  // B slices: bs[k][n]
  const int tid = static_cast<int>(threadIdx.x);
  const int ty = tid / Tile::kThreadsN, tx = tid % Tile::kThreadsN;
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.x) * BM;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.y) * BN;
  const int K = static_cast<int>(g.k);  // the launcher checked that k fits
  // (x, k) strides of A (x = m) and of B (x = n); see GemmOperand.
  const std::int64_t a_sx = kTransA ? 1 : g.lda, a_sk = kTransA ? g.lda : 1;
  const std::int64_t b_sx = kTransB ? g.ldb : 1, b_sk = kTransB ? 1 : g.ldb;
  {
    const std::int64_t batch = blockIdx.z;
    ALoader a_loader(g.a + batch * g.stride_a + m0 * a_sx, a_sx, a_sk, m0, g.m, tid);
    BLoader b_loader(g.b + batch * g.stride_b + n0 * b_sx, b_sx, b_sk, n0, g.n, tid);
    Acc acc[TM][TN] = {};
    Acc ra[Tile::kVecsA][4], rb[Tile::kVecsB][4];
    a_loader.load(0, K, g.vec_a, ra);
    b_loader.load(0, K, g.vec_b, rb);
    a_loader.store(ra, as[0]);
    b_loader.store(rb, bs[0]);
    __syncthreads();
    for (int k0 = 0, cur = 0; k0 < K; k0 += BK, cur ^= 1) {
      const bool more = k0 + BK < K;
      if (more) {  // the next slice travels to registers while this one is multiplied
        a_loader.advance(a_sk);
        b_loader.advance(b_sk);
        a_loader.load(k0 + BK, K, g.vec_a, ra);
        b_loader.load(k0 + BK, K, g.vec_b, rb);
      }
      KILN_UNROLL
      for (int kk = 0; kk < BK; ++kk) {
        Acc af[TM / 4][4], bf[TN / 4][4];
        KILN_UNROLL
        for (int f = 0; f < TM / 4; ++f) {
          detail::smem_load4(&as[cur][kk][f * 4 * Tile::kThreadsM + ty * 4], af[f]);
        }
        KILN_UNROLL
        for (int f = 0; f < TN / 4; ++f) {
          detail::smem_load4(&bs[cur][kk][f * 4 * Tile::kThreadsN + tx * 4], bf[f]);
        }
        KILN_UNROLL
        for (int i = 0; i < TM; ++i) {
          KILN_UNROLL
          for (int j = 0; j < TN; ++j) acc[i][j] += af[i / 4][i % 4] * bf[j / 4][j % 4];
        }
      }
      if (more) {  // the other buffer was last read before the previous barrier
        a_loader.store(ra, as[cur ^ 1]);
        b_loader.store(rb, bs[cur ^ 1]);
      }
      __syncthreads();
    }
    detail::store_tile<T, Tile>(g, g.c + batch * g.stride_c, m0, n0, ty, tx, acc);
  }
}

namespace detail {

inline constexpr std::int64_t kMaxGridY = 65535, kMaxGridZ = 65535, kMaxGridX = 2147483647;

template <class T, class Tile, bool kTransA, bool kTransB>
void launch_tile(const NativeGemmArgs<T>& g, cudaStream_t stream) {
  const std::int64_t tiles_m = (g.m + Tile::BM - 1) / Tile::BM;
  const std::int64_t tiles_n = (g.n + Tile::BN - 1) / Tile::BN;
  KILN_CHECK(tiles_m <= kMaxGridX && tiles_n <= kMaxGridY, ValueError, "native gemm: C of ", g.m,
             " x ", g.n, " needs more ", Tile::BM, " x ", Tile::BN, " tiles than a grid holds");
  for (std::int64_t done = 0; done < g.batch; done += kMaxGridZ) {
    NativeGemmArgs<T> part = g;
    part.a += done * g.stride_a;
    part.b += done * g.stride_b;
    part.c += done * g.stride_c;
    part.batch = g.batch - done < kMaxGridZ ? g.batch - done : kMaxGridZ;
    const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n),
                    static_cast<unsigned>(part.batch));
    KILN_LAUNCH(native_gemm_kernel<T, Tile, kTransA, kTransB>, grid, dim3(Tile::kThreads), 0,
                stream)(part);
  }
}

template <class T, class Tile>
void launch_layout(const NativeGemmArgs<T>& g, bool trans_a, bool trans_b, cudaStream_t stream) {
  if (trans_a && trans_b) return launch_tile<T, Tile, true, true>(g, stream);
  if (trans_a) return launch_tile<T, Tile, true, false>(g, stream);
  if (trans_b) return launch_tile<T, Tile, false, true>(g, stream);
  launch_tile<T, Tile, false, false>(g, stream);
}

}  // namespace detail

// Queues the GEMM on `stream`. trans_a / trans_b: the operand is stored column-major
// (GemmOperand::transposed). The large tile is used once it gives every SM a block, and
// never for float64 (an 8 x 8 micro-tile of doubles does not fit the registers).
template <class T>
void launch_native_gemm(const NativeGemmArgs<T>& g, bool trans_a, bool trans_b, cudaStream_t stream,
                        int sm_count) {
  KILN_CHECK(g.k <= 2147483647 - 64, ValueError, "native gemm: k = ", g.k, " does not fit 32 bits");
  using L = LargeGemmTile;
  const std::int64_t large_tiles = ((g.m + L::BM - 1) / L::BM) * ((g.n + L::BN - 1) / L::BN) * g.batch;
  if constexpr (sizeof(math::compute_t<T>) == 4) {
    if (large_tiles >= sm_count) {
      return detail::launch_layout<T, LargeGemmTile>(g, trans_a, trans_b, stream);
    }
  }
  detail::launch_layout<T, SmallGemmTile>(g, trans_a, trans_b, stream);
}

}  // namespace kiln::cuda
