// Private to backend/cuda/attention*.cu: the launch parameters shared by the attention kernels,
// the bf16/f16 tensor-core MMA (mma.sync m16n8k16, PTX ISA §9.7.14.5.8), and tile loaders.
//
// Fragment layouts of mma.m16n8k16 (.bf16/.f16 inputs, .f32 accumulators), for lane l of a
// warp with g = l / 4 and t = l % 4 (PTX ISA "Matrix Fragments for mma.m16n8k16"):
//   A (16 x 16, row-major), 4 x .b32, each two 16-bit elements, lower column in the low half:
//     a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]   a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   B (16 x 8, "col"): b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   C (16 x 8, f32):   c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// So the C fragments of two adjacent 8-column tiles (columns 16kk..16kk+15) are exactly the A
// fragment of a 16 x 16 block whose k index is those columns (FlashAttention-2's register reuse
// of P: see pack_c_as_a).
#pragma once

#include <cstdint>
#include <type_traits>

#include "lmforge/backend/cuda/cuda_common.h"

namespace lmf::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kThreads = 128;  // 4 warps per block in every attention kernel

// Everything a kernel may need; unused fields are left zero. Token t of head h of a q/k/v view
// is at base + t * st + h * sh (elements, unit stride along head_dim). out, dout, dq, dk, dv,
// lse and Di are contiguous ([N, H, D] / [N, H]).
struct Params {
  const void *q, *k, *v;
  int64_t q_st, q_sh, k_st, k_sh, v_st, v_sh;
  void* out;         // forward output [N, Hq, D]
  float* lse;        // forward: natural-log lse [N, Hq] (written)
  const void* dout;  // backward
  const float* lse_in;
  const float* Di;   // rowsum(dO * O) [N, Hq]
  void *dq, *dk, *dv;
  float* dq_acc;      // LMF_ATTN_BWD=atomic: zeroed fp32 [N, Hq, D] scratch for dQ (else null)
  int64_t N;          // tokens in the stream
  const int32_t* cu;  // [S + 1] on the device
  int seq_offset;     // blockIdx.z + seq_offset = sequence index (grids of > 65535 sequences)
  int Hq, Hkv, group, D;
  float scale, scale_log2;  // scale and scale * log2(e) (scores are exponentiated with exp2)
  int causal, wl, wr;       // windows: -1 = unlimited (clamped below max_seqlen by the host)
  int vec;                  // 1 when every q/k/v/dout row may be read in 16-byte packs
};

// Visible keys of local query r in a sequence of length L: [lo, hi] (empty when lo > hi).
__device__ __forceinline__ int key_lo(const Params& p, int r) { return p.wl >= 0 ? max(0, r - p.wl) : 0; }
__device__ __forceinline__ int key_hi(const Params& p, int r, int L) {
  int hi = L - 1;
  if (p.causal) hi = min(hi, r);
  if (p.wr >= 0) hi = min(hi, r + p.wr);
  return hi;
}
// Queries that see local key j: [lo, hi] (the same predicate solved for the query).
__device__ __forceinline__ int query_lo(const Params& p, int j) {
  int lo = 0;
  if (p.causal) lo = max(lo, j);
  if (p.wr >= 0) lo = max(lo, j - p.wr);
  return lo;
}
__device__ __forceinline__ int query_hi(const Params& p, int j, int L) {
  return p.wl >= 0 ? min(L - 1, j + p.wl) : L - 1;
}

// ---- tensor cores (the only inline PTX of the attention kernels) -----------------------------
// D += A B for one 16 x 8 x 16 tile (fragments as described at the top), fp32 accumulation.
template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// 2^x with the MUFU.EX2 approximation (PTX ISA "ex2": max relative error 2^-22.5, subnormal
// results flushed to 0, ex2(-inf) = +0). exp2f() adds a subnormal fix-up around the same
// instruction; softmax weights below 2^-126 do not matter next to the row maximum's 1.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ldmatrix.x4 (PTX ISA "ldmatrix"): four 8 x 8 matrices of 16-bit elements from shared memory.
// Lane l passes the address of row (l % 8) of matrix (l / 8) (8 contiguous elements, 16-byte
// aligned). Lane l receives, for matrix i, r[i] = M_i[l/4][2(l%4), 2(l%4)+1] (ldsm_x4), or the
// transposed pair r[i] = M_i[2(l%4), 2(l%4)+1][l/4] (ldsm_x4_t: B fragments of a row-major
// [k][n] tile, e.g. V[key][d]).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const uint16_t* row) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const uint16_t* row) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
// cp.async (PTX ISA "cp.async"): 16 bytes global -> shared without a register round trip;
// committed in groups, cp_async_wait<N> waits until at most N groups of this thread are pending.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
// 4-byte variant (.ca: sizes below 16 bytes), for per-row statistics (lse, D_i).
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
// ---- end of PTX --------------------------------------------------------------------------------

// Row addresses for ldsm_x4 / ldsm_x4_t covering the 16 x 16 block at (r0, c0) of a row-major
// tile with row stride ld, in two matrix orders:
//  frag_a_rows: (r0, c0), (r0+8, c0), (r0, c0+8), (r0+8, c0+8)
//    ldsm_x4 of A[m][k]   -> the A fragment a[0..3] of rows r0.., k c0..
//    ldsm_x4_t of X[k][n] -> B fragments of n-tiles c0 ({r[0], r[1]}) and c0+8 ({r[2], r[3]})
//  frag_b_rows: (r0, c0), (r0, c0+8), (r0+8, c0), (r0+8, c0+8)
//    ldsm_x4 of X[n][k]   -> B fragments of n-tiles r0 ({r[0], r[1]}) and r0+8 ({r[2], r[3]})
//    ldsm_x4_t of X[k][m] -> the A fragment of X^T (m = c0.., k = r0..)
__device__ __forceinline__ const uint16_t* frag_a_rows(const uint16_t* tile, int ld, int r0, int c0, int lane) {
  return tile + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + c0 + (lane >> 4) * 8;
}
__device__ __forceinline__ const uint16_t* frag_b_rows(const uint16_t* tile, int ld, int r0, int c0, int lane) {
  return tile + (r0 + (lane & 7) + (lane >> 4) * 8) * ld + c0 + ((lane >> 3) & 1) * 8;
}

// Two floats rounded to T, `lo` in the low 16 bits (the lower-indexed element of a pair).
template <class T>
__device__ __forceinline__ uint32_t pack_f2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// Two 16-bit values from anywhere, `lo` in the low half.
__device__ __forceinline__ uint32_t pack_u16(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// The A fragment (rows of c, k = the 16 columns of tiles c0 and c1) from two C accumulators.
template <class T>
__device__ __forceinline__ void pack_c_as_a(const float (&c0)[4], const float (&c1)[4], uint32_t (&a)[4]) {
  a[0] = pack_f2<T>(c0[0], c0[1]);
  a[1] = pack_f2<T>(c0[2], c0[3]);
  a[2] = pack_f2<T>(c1[0], c1[1]);
  a[3] = pack_f2<T>(c1[2], c1[3]);
}

// ---- tiles ----------------------------------------------------------------------------------
// dst[r][c] (row stride lds elements) = element c of local token (row0 + r) of a [N, H, D] view
// whose token 0 / head is at `base` (token stride st); zero for tokens >= L and columns >= D.
// Called by all kThreads threads of the block (no synchronisation inside).
template <int kD>
__device__ __forceinline__ void load_tile(uint16_t* dst, int lds, const uint16_t* base, int64_t st, int row0,
                                          int nrows, int L, int D, bool vec) {
  if (vec) {  // 16-byte packs: D % 8 == 0, st % 8 == 0 and base 16-byte aligned (host-checked)
    constexpr int kChunks = kD / 8;
    for (int idx = threadIdx.x; idx < nrows * kChunks; idx += kThreads) {
      const int r = idx / kChunks, c = (idx % kChunks) * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (row0 + r < L && c < D) val = *reinterpret_cast<const uint4*>(base + int64_t(row0 + r) * st + c);
      *reinterpret_cast<uint4*>(dst + r * lds + c) = val;
    }
  } else {
    for (int idx = threadIdx.x; idx < nrows * kD; idx += kThreads) {
      const int r = idx / kD, c = idx % kD;
      dst[r * lds + c] = (row0 + r < L && c < D) ? base[int64_t(row0 + r) * st + c] : uint16_t(0);
    }
  }
}

// load_tile, asynchronously where rows may be read in 16-byte packs (the caller commits the
// group and waits for it, then synchronises the block); zero padding is stored directly.
template <int kD>
__device__ __forceinline__ void load_tile_async(uint16_t* dst, int lds, const uint16_t* base, int64_t st, int row0,
                                                int nrows, int L, int D, bool vec) {
  if (!vec) {
    load_tile<kD>(dst, lds, base, st, row0, nrows, L, D, false);
    return;
  }
  constexpr int kChunks = kD / 8;
  for (int idx = threadIdx.x; idx < nrows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = (idx % kChunks) * 8;
    uint16_t* d = dst + r * lds + c;
    if (row0 + r < L && c < D) cp_async16(d, base + int64_t(row0 + r) * st + c);
    else *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
  }
}

// load_tile_async for a tile of exactly kRows rows, with the index math of a fixed-size tile:
// kThreads is a multiple of the 16-byte chunks per row, so each thread keeps one column and
// walks rows r0, r0 + kStep, ... (no division per chunk, one bounds test per row).
template <int kD, int kRows>
__device__ __forceinline__ void load_rows_async(uint16_t* dst, int lds, const uint16_t* base, int64_t st, int row0,
                                                int L, int D, bool vec) {
  if (!vec) {
    load_tile<kD>(dst, lds, base, st, row0, kRows, L, D, false);
    return;
  }
  constexpr int kChunks = kD / 8, kStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kRows % kStep == 0, "load_rows_async: tile shape");
  const int tid = int(threadIdx.x), c = (tid % kChunks) * 8, r0 = tid / kChunks;
  const bool col_ok = c < D;
  const uint16_t* src = base + int64_t(row0 + r0) * st + c;
  uint16_t* d = dst + r0 * lds + c;
#pragma unroll
  for (int k = 0; k < kRows / kStep; k++) {
    if (col_ok && row0 + r0 + k * kStep < L) cp_async16(d + k * kStep * lds, src + int64_t(k) * kStep * st);
    else *reinterpret_cast<uint4*>(d + k * kStep * lds) = make_uint4(0, 0, 0, 0);
  }
}

// ---- warp reductions ------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// ---- launchers (attention_fwd.cu, attention_bwd.cu) -----------------------------------------
// grid: x = tiles of max_seqlen, y = heads, z = sequences (chunks of 65535, seq_offset set).
void launch_forward(const Params& p, DType dtype, int num_seqs, int max_seqlen);
// Di must be computed by the caller (attention.cu). With p.dq_acc set (only where
// use_atomic_dq), dQ is accumulated there with fp32 atomics and then written to p.dq.
void launch_backward(const Params& p, DType dtype, int num_seqs, int max_seqlen);
// LMF_ATTN_BWD=atomic (read per call): FlashAttention-2's single-pass backward for the
// tensor-core cases (non-deterministic dQ summation order); otherwise the deterministic
// two-kernel backward. See docs/attention.md.
bool use_atomic_dq(DType dtype, int D);
// Whether the tensor-core kernels handle this case (bf16/f16 and D <= 128).
inline bool use_tensor_cores(DType dtype, int D) { return dtype != DType::f32 && D <= 128; }

}  // namespace lmf::cuda::attn
