// CUDA attention backward (contract in backend/kernel_list.inc). Both paths need, per query
// row, the saved lse and D_i = rowsum(dO_i * O_i) (attention.cu computes D first), and
// recompute P_ij = exp(scale q_i.k_j - lse_i) instead of storing it.
//
// Tensor-core path (bf16/f16, D <= 128; FlashAttention-2 backward, Dao 2023, Algorithm 2, by
// default with dQ in its own pass instead of FA2's fp32 atomics). Two kernels, each writing its
// rows once:
//  dkdv_tc_kernel: one block of 4 warps per (64 KT-key tile, kv head, sequence); warp w owns
//   16 KT keys and keeps their dK, dV accumulators in registers for the whole kernel, so
//   grouped heads cost nothing extra: the block loops over the q heads of its kv head and over
//   the query tiles that can see its keys (causal / window bounds); Q / dO tiles, lse and D are
//   double-buffered (cp.async copies the next item while this one is used). Per item, keys as
//   the M dimension:
//     S^T = K Q^T, dP^T = V dO^T  ->  P^T = exp2(S^T scale log2e - lse log2e), dS^T = P^T (dP^T - D)
//     dV += P^T dO,  dK += dS^T Q  (P^T, dS^T reused from registers as A fragments)
//  dq_tc_kernel: one block of 4 warps per (64 MT-query tile, q head, sequence), shaped like the
//   forward: Q and dO fragments stay in registers, K / V tiles are double-buffered, and per key
//   tile S = Q K^T, dP = dO V^T, dS = P (dP - D), dQ += dS K.
// The dQ pass recomputes S and dP (7 tile products instead of 5) and keeps dQ deterministic.
// LMF_ATTN_BWD=atomic instead runs dkdv_tc_kernel<..., kDq = true> alone: it stages dS^T in
// shared memory and adds dQ = dS K per item into an fp32 scratch with atomics (FA2's pass).
// Both kernels decide per warp and tile, warp-uniformly: skip (no row sees the tile), full (no
// mask work) or edge (masked scores set to -inf before the exponential).
//
// Generic path (f32, or D > 128): no atomics. dq_kernel: one warp per query row (like the
// forward); dkdv_kernel: one warp per key row, looping over the queries that see it (the
// visibility predicate solved for i is an interval too).
#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "lmforge/backend/cuda/attention_common.cuh"

namespace lmf::cuda::attn {

namespace {

// ---- dK, dV: one block per (64 KT-key tile, kv head, sequence) ------------------------------
// KT = 16-key MMA tiles per warp: with 2, every Q / dO fragment read from shared memory feeds
// two MMAs (then BQ = 32 keeps the S^T, dP^T registers in bounds).
// kDq (LMF_ATTN_BWD=atomic): the kernel also adds dQ = dS K of every item to the fp32 scratch
// p.dq_acc with atomics (FlashAttention-2's single pass), through dS^T staged in shared memory.
template <int kD, int kKT, bool kDq = false>
struct DkdvShape {
  static constexpr int KT = kKT, BK = 64 * KT, BQ = (kD > 64 || KT > 1) ? 32 : 64, LDS = kD + 8;
  static constexpr int LDSS = BQ + 8;  // sdS^T [BK][LDSS] (16-bit; rows 16 bytes apart mod 128)
  // sK, sV [BK][LDS]; two stages of sQ, sdO [BQ][LDS] (16-bit); two stages of sLse, sDi [BQ] f32;
  // with kDq, sdS^T.
  static constexpr size_t smem_bytes = size_t(2 * BK * LDS + 4 * BQ * LDS) * sizeof(uint16_t) +
                                       size_t(4 * BQ) * sizeof(float) + (kDq ? size_t(BK * LDSS) * sizeof(uint16_t) : 0);
};

// 16 keys per warp at D <= 64 fit in 168 registers: 3 blocks (12 warps) per SM.
template <class T, int kD, int kKT, bool kDq>
__global__ void __launch_bounds__(kThreads, (kKT == 1 && kD <= 64) ? 3 : 2) dkdv_tc_kernel(const Params p) {
  using Sh = DkdvShape<kD, kKT, kDq>;
  constexpr int KT = Sh::KT, BK = Sh::BK, BQ = Sh::BQ, LDS = Sh::LDS;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* const sK = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const sV = sK + BK * LDS;
  uint16_t* const sQ0 = sV + BK * LDS;  // stage st: sQ0 + st * BQ * LDS
  uint16_t* const sdO0 = sQ0 + 2 * BQ * LDS;
  float* const sLse0 = reinterpret_cast<float*>(sdO0 + 2 * BQ * LDS);  // byte offset: a multiple of 16
  float* const sDi0 = sLse0 + 2 * BQ;
  uint16_t* const sdS = reinterpret_cast<uint16_t*>(sDi0 + 2 * BQ);  // kDq only

  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  const int k0 = blockIdx.x * BK;
  if (k0 >= L) return;  // whole block, before any barrier
  const int hk = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int wk = warp * 16 * KT;  // this warp's first key row in the tile
  const int kw0 = k0 + wk, kwlast = kw0 + 16 * KT - 1;
  // Queries that see any key of this warp (empty when the warp's keys are all past L), and the
  // query range that sees every key of the warp (query_lo grows with the key, query_hi too).
  const int wi_lo = query_lo(p, kw0), wi_hi = kw0 < L ? query_hi(p, min(kwlast, L - 1), L) : -1;
  const int full_lo = query_lo(p, kwlast), full_hi = kwlast < L ? query_hi(p, kw0, L) : -1;
  // Masked scores become this before exp2(score * scale_log2 - lse): exp2(-inf) = 0.
  const float masked = p.scale_log2 < 0.f ? INFINITY : -INFINITY;

  const uint16_t* kbase = static_cast<const uint16_t*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const uint16_t* vbase = static_cast<const uint16_t*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;

  // Queries that see any key of the tile, in query tiles of BQ; the work list is every
  // (q head of this kv head, query tile) pair, heads outermost.
  const int k1 = min(k0 + BK, L) - 1;
  const int i_lo = query_lo(p, k0), i_hi = query_hi(p, k1, L);
  const int ntiles = i_hi >= i_lo ? (i_hi - i_lo) / BQ + 1 : 0;
  const int nitems = p.group * ntiles;

  // Stage `st` <- Q, dO rows, lse and D of (q head h, query tile starting at i0), all by
  // cp.async (rows past L: zeros, never visible).
  auto issue = [&](int h, int i0, int st) {
    const uint16_t* qbase = static_cast<const uint16_t*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
    const uint16_t* obase = static_cast<const uint16_t*>(p.dout) + (int64_t(t0) * p.Hq + h) * p.D;
    load_rows_async<kD, BQ>(sQ0 + st * BQ * LDS, LDS, qbase, p.q_st, i0, L, p.D, p.vec);
    load_rows_async<kD, BQ>(sdO0 + st * BQ * LDS, LDS, obase, int64_t(p.Hq) * p.D, i0, L, p.D, p.vec);
    const int r = threadIdx.x;
    if (r < 2 * BQ) {  // threads [0, BQ): lse, [BQ, 2 BQ): D
      const bool is_lse = r < BQ;
      const int rr = is_lse ? r : r - BQ, i = i0 + rr;
      float* dst = (is_lse ? sLse0 : sDi0) + st * BQ + rr;
      if (i < L) cp_async4(dst, (is_lse ? p.lse_in : p.Di) + int64_t(t0 + i) * p.Hq + h);
      else *dst = 0.f;
    }
  };

  load_rows_async<kD, BK>(sK, LDS, kbase, p.k_st, k0, L, p.D, p.vec);
  load_rows_async<kD, BK>(sV, LDS, vbase, p.v_st, k0, L, p.D, p.vec);
  if (nitems > 0) issue(hk * p.group, i_lo, 0);
  cp_async_commit();

  float dk[KT][kD / 8][4], dv[KT][kD / 8][4];
#pragma unroll
  for (int kt = 0; kt < KT; kt++)
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++)
#pragma unroll
      for (int e = 0; e < 4; e++) dk[kt][dt][e] = dv[kt][dt][e] = 0.f;

  // Item it = (q head h, query tile i0); the next one is prefetched while this one is used.
  int h = hk * p.group, i0 = i_lo;
  for (int it = 0, stage = 0; it < nitems; it++, stage ^= 1) {
    const int ilast = i0 + BQ - 1;
    int hn = h, in = i0 + BQ;
    if (in > i_hi) hn++, in = i_lo;
    // Prefetch the next item into the other stage (item it - 1's: free after its end barrier).
    if (it + 1 < nitems) issue(hn, in, stage ^ 1);
    cp_async_commit();   // (possibly empty group: keeps the count uniform)
    cp_async_wait<1>();  // this thread's copies for item it (and sK, sV) have landed
    __syncthreads();     // ... and everyone else's
    const uint16_t* sQ = sQ0 + stage * BQ * LDS;
    const uint16_t* sdO = sdO0 + stage * BQ * LDS;
    const float* sLse = sLse0 + stage * BQ;
    const float* sDi = sDi0 + stage * BQ;
    // Warp-uniform: skip items none of this warp's keys see; mask only partly visible ones.
    const bool active = i0 <= wi_hi && ilast >= wi_lo;
    if (active) {
      // S^T = K Q^T and dP^T = V dO^T: this warp's 16 KT keys x BQ queries.
      float st[KT][BQ / 8][4], dpt[KT][BQ / 8][4];
#pragma unroll
      for (int kt = 0; kt < KT; kt++)
#pragma unroll
        for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
          for (int e = 0; e < 4; e++) st[kt][nt][e] = dpt[kt][nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kD / 16; ks++) {
        uint32_t ka_f[KT][4], va_f[KT][4];  // A[m=key][k=d]: this warp's rows of K and V
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
          ldsm_x4(ka_f[kt], frag_a_rows(sK, LDS, wk + 16 * kt, ks * 16, lane));
          ldsm_x4(va_f[kt], frag_a_rows(sV, LDS, wk + 16 * kt, ks * 16, lane));
        }
#pragma unroll
        for (int nt = 0; nt < BQ / 8; nt += 2) {  // B[k=d][n=query] = Q[query][d], dO[query][d]
          uint32_t bq[4], bo[4];
          ldsm_x4(bq, frag_b_rows(sQ, LDS, nt * 8, ks * 16, lane));
          ldsm_x4(bo, frag_b_rows(sdO, LDS, nt * 8, ks * 16, lane));
#pragma unroll
          for (int kt = 0; kt < KT; kt++) {
            mma16816<T>(st[kt][nt], ka_f[kt], bq[0], bq[1]);
            mma16816<T>(st[kt][nt + 1], ka_f[kt], bq[2], bq[3]);
            mma16816<T>(dpt[kt][nt], va_f[kt], bo[0], bo[1]);
            mma16816<T>(dpt[kt][nt + 1], va_f[kt], bo[2], bo[3]);
          }
        }
      }
      // Element (kt, nt, e): key row kw0 + 16 kt + g (+ 8 for e >= 2), query i0 + col.
      // Only items on a mask edge (causal diagonal, window edges, sequence end) pay for masks.
      if (!(i0 >= full_lo && ilast <= full_hi)) {
#pragma unroll
        for (int kt = 0; kt < KT; kt++)
#pragma unroll
          for (int half = 0; half < 2; half++) {
            // Key row g (+ 8) of MMA tile kt and the queries that see it (query_hi <= L - 1,
            // so query rows past L fall outside).
            const int j = kw0 + 16 * kt + g + 8 * half;
            const int lo = query_lo(p, j), hi = j < L ? query_hi(p, j, L) : -1;
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
              for (int e = 2 * half; e < 2 * half + 2; e++) {
                const int i = i0 + nt * 8 + tq * 2 + (e & 1);
                if (i < lo || i > hi) st[kt][nt][e] = masked;
              }
          }
      }
      // P^T and dS^T in place.
#pragma unroll
      for (int nt = 0; nt < BQ / 8; nt++) {
        const int col = nt * 8 + tq * 2;
        const float2 lse2 = *reinterpret_cast<const float2*>(sLse + col);
        const float2 di2 = *reinterpret_cast<const float2*>(sDi + col);
        const float nl0 = -lse2.x * kLog2e, nl1 = -lse2.y * kLog2e;
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const float P = ex2(fmaf(st[kt][nt][e], p.scale_log2, (e & 1) ? nl1 : nl0));
            st[kt][nt][e] = P;
            dpt[kt][nt][e] = P * (dpt[kt][nt][e] - ((e & 1) ? di2.y : di2.x));
          }
        }
      }

      if constexpr (kDq) {  // dS^T rows of this warp's keys, for the dQ product below
#pragma unroll
        for (int kt = 0; kt < KT; kt++)
#pragma unroll
          for (int nt = 0; nt < BQ / 8; nt++) {
            uint16_t* d = sdS + (wk + 16 * kt + g) * Sh::LDSS + nt * 8 + tq * 2;
            *reinterpret_cast<uint32_t*>(d) = pack_f2<T>(dpt[kt][nt][0], dpt[kt][nt][1]);
            *reinterpret_cast<uint32_t*>(d + 8 * Sh::LDSS) = pack_f2<T>(dpt[kt][nt][2], dpt[kt][nt][3]);
          }
      }
      // dV += P^T dO and dK += dS^T Q (k index = query): B[k=query][n=d] = dO / Q, row-major,
      // through the transposing ldmatrix (two d tiles per load).
#pragma unroll
      for (int kk = 0; kk < BQ / 16; kk++) {
        uint32_t pa[KT][4], da[KT][4];
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
          pack_c_as_a<T>(st[kt][2 * kk], st[kt][2 * kk + 1], pa[kt]);
          pack_c_as_a<T>(dpt[kt][2 * kk], dpt[kt][2 * kk + 1], da[kt]);
        }
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt += 2) {
          uint32_t bo[4], bq[4];
          ldsm_x4_t(bo, frag_a_rows(sdO, LDS, kk * 16, dt * 8, lane));
          ldsm_x4_t(bq, frag_a_rows(sQ, LDS, kk * 16, dt * 8, lane));
#pragma unroll
          for (int kt = 0; kt < KT; kt++) {
            mma16816<T>(dv[kt][dt], pa[kt], bo[0], bo[1]);
            mma16816<T>(dv[kt][dt + 1], pa[kt], bo[2], bo[3]);
            mma16816<T>(dk[kt][dt], da[kt], bq[0], bq[1]);
            mma16816<T>(dk[kt][dt + 1], da[kt], bq[2], bq[3]);
          }
        }
      }
    }
    if constexpr (kDq) {
      if (!active) {  // keys nobody in this item sees: dS^T = 0
#pragma unroll
        for (int r = 0; r < 16 * KT; r++)
          if (lane < BQ / 2) reinterpret_cast<uint32_t*>(sdS + (wk + r) * Sh::LDSS)[lane] = 0u;
      }
      __syncthreads();  // sdS^T complete
      // dQ[i0 + q][d] += sum_k dS[q][k] K[k][d] over the BK keys: warp w computes MMA row tile
      // w % (BQ / 16) and its share of the d tiles.
      constexpr int kMTiles = BQ / 16, kWarpsPerM = (kThreads / 32) / kMTiles, kDT = kD / 8 / kWarpsPerM;
      static_assert(kDT % 2 == 0, "dQ tiles per warp");
      const int mt = warp % kMTiles, d0 = (warp / kMTiles) * kDT * 8;
      float acc[kDT][4];
#pragma unroll
      for (int dt = 0; dt < kDT; dt++) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < BK / 16; ks++) {
        uint32_t a[4];  // A[m=query][k=key] = (dS^T)^T via the transposing ldmatrix
        ldsm_x4_t(a, frag_b_rows(sdS, Sh::LDSS, ks * 16, mt * 16, lane));
#pragma unroll
        for (int dt = 0; dt < kDT; dt += 2) {
          uint32_t b[4];  // B[k=key][n=d] = K[key][d]
          ldsm_x4_t(b, frag_a_rows(sK, LDS, ks * 16, d0 + dt * 8, lane));
          mma16816<T>(acc[dt], a, b[0], b[1]);
          mma16816<T>(acc[dt + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int i = i0 + mt * 16 + g + 8 * half;
        if (i >= L) continue;
        float* row = p.dq_acc + (int64_t(t0 + i) * p.Hq + h) * p.D;
#pragma unroll
        for (int dt = 0; dt < kDT; dt++) {
          const int c = d0 + dt * 8 + tq * 2;
          if (c + 1 < p.D && (p.D & 1) == 0) {
            atomicAdd(reinterpret_cast<float2*>(row + c), make_float2(acc[dt][2 * half], acc[dt][2 * half + 1]));
          } else {
            if (c < p.D) atomicAdd(row + c, acc[dt][2 * half]);
            if (c + 1 < p.D) atomicAdd(row + c + 1, acc[dt][2 * half + 1]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next prefetch overwrites it
    h = hn, i0 = in;
  }
  cp_async_wait<0>();  // nothing in flight at exit (only matters when there was no work item)

  // dK = scale * sum dS^T Q; dV = sum P^T dO. This block owns these key rows.
  T* dkp = static_cast<T*>(p.dk);
  T* dvp = static_cast<T*>(p.dv);
#pragma unroll
  for (int kt = 0; kt < KT; kt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int j = kw0 + 16 * kt + g + 8 * half;
      if (j >= L) continue;
      const int64_t row = (int64_t(t0 + j) * p.Hkv + hk) * p.D;
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt++) {
        const int c = dt * 8 + tq * 2;
        const float k0v = dk[kt][dt][2 * half] * p.scale, k1v = dk[kt][dt][2 * half + 1] * p.scale;
        const float v0v = dv[kt][dt][2 * half], v1v = dv[kt][dt][2 * half + 1];
        if ((p.D & 1) == 0 && c < p.D) {  // even D: 4-byte aligned pairs
          *reinterpret_cast<uint32_t*>(dkp + row + c) = pack_f2<T>(k0v, k1v);
          *reinterpret_cast<uint32_t*>(dvp + row + c) = pack_f2<T>(v0v, v1v);
        } else {
          if (c < p.D) {
            dkp[row + c] = from_f<T>(k0v);
            dvp[row + c] = from_f<T>(v0v);
          }
          if (c + 1 < p.D) {
            dkp[row + c + 1] = from_f<T>(k1v);
            dvp[row + c + 1] = from_f<T>(v1v);
          }
        }
      }
    }
  }
}

// ---- dQ: one block per (64 MT-query tile, q head, sequence), like the forward ---------------
// MT = 16-row MMA tiles per warp: with 2, every K / V fragment read from shared memory feeds
// two MMAs (then BK = 32 keeps the S, dP registers in bounds). kBK > 0 overrides the key tile;
// kQS reads the Q / dO fragments from shared memory per key tile instead of keeping them in
// registers (64 registers fewer at D = 128).
template <int kD, int kMT, int kBK = 0, bool kQS = false>
struct DqShape {
  static constexpr int MT = kMT, BQ = 64 * MT, BK = kBK > 0 ? kBK : (kD > 64 || MT > 1) ? 32 : 64, LDS = kD + 8;
  // Two stages of K and V tiles [BK][LDS]; the Q and dO tiles [BQ][LDS] after them (kQS), or
  // first in stage 1 (read into registers before the first prefetch overwrites them).
  static constexpr int kStage = 2 * BK * LDS;
  static constexpr size_t smem_bytes =
      kQS ? size_t(2 * kStage + 2 * BQ * LDS) * sizeof(uint16_t)
          : size_t(kStage + (kStage > 2 * BQ * LDS ? kStage : 2 * BQ * LDS)) * sizeof(uint16_t);
};

// 16 rows per warp at D <= 64 fit in 168 registers: 3 blocks (12 warps) per SM.
template <class T, int kD, int kMT, int kBK, bool kQS>
__global__ void __launch_bounds__(kThreads, (kMT == 1 && kD <= 64) ? 3 : 2) dq_tc_kernel(const Params p) {
  using Sh = DqShape<kD, kMT, kBK, kQS>;
  constexpr int MT = Sh::MT, BQ = Sh::BQ, BK = Sh::BK, LDS = Sh::LDS, kStage = Sh::kStage;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* const sK0 = reinterpret_cast<uint16_t*>(smem_raw);  // stage st: K at sK0 + st kStage
  uint16_t* const sV0 = sK0 + BK * LDS;                          //           V at sV0 + st kStage

  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  // Causal: the last query tiles have the most keys; hand them out first so that the light
  // ones fill the tail of the grid.
  const int q0 = (p.causal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x)) * BQ;
  if (q0 >= L) return;  // whole block: no barrier has been reached yet
  const int h = blockIdx.y, hk = h / p.group;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int w0 = q0 + warp * 16 * MT, wlast = w0 + 16 * MT - 1;  // this warp's query rows (local)

  const int qlast = min(q0 + BQ, L) - 1;
  const int kbeg = key_lo(p, q0), kend = key_hi(p, qlast, L);
  // Keys that any row of this warp sees, and keys that every row sees (key_lo, key_hi grow
  // with the row).
  const int wbeg = key_lo(p, w0), wend = w0 < L ? key_hi(p, min(wlast, L - 1), L) : -1;
  const int full_lo = key_lo(p, wlast), full_hi = wlast < L ? key_hi(p, w0, L) : -1;
  const float masked = p.scale_log2 < 0.f ? INFINITY : -INFINITY;  // exp2(masked * scale_log2) = 0

  const uint16_t* qbase = static_cast<const uint16_t*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
  const uint16_t* obase = static_cast<const uint16_t*>(p.dout) + (int64_t(t0) * p.Hq + h) * p.D;
  const uint16_t* kbase = static_cast<const uint16_t*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const uint16_t* vbase = static_cast<const uint16_t*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;

  uint16_t* const sQ = sK0 + (kQS ? 2 : 1) * kStage;
  uint16_t* const sdO = sQ + BQ * LDS;
  load_rows_async<kD, BQ>(sQ, LDS, qbase, p.q_st, q0, L, p.D, p.vec);
  load_rows_async<kD, BQ>(sdO, LDS, obase, int64_t(p.Hq) * p.D, q0, L, p.D, p.vec);
  if (kbeg <= kend) {
    load_rows_async<kD, BK>(sK0, LDS, kbase, p.k_st, kbeg, L, p.D, p.vec);
    load_rows_async<kD, BK>(sV0, LDS, vbase, p.v_st, kbeg, L, p.D, p.vec);
  }
  cp_async_commit();
  // Per-row statistics of rows g, g + 8 of each MMA tile: -lse in log2 units and D_i (rows past
  // L: P = 0 through lse = +inf).
  float nlse[MT][2], di[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int r = w0 + mt * 16 + g + 8 * half;
      nlse[mt][half] = r < L ? -p.lse_in[int64_t(t0 + r) * p.Hq + h] * kLog2e : -INFINITY;
      di[mt][half] = r < L ? p.Di[int64_t(t0 + r) * p.Hq + h] : 0.f;
    }
  cp_async_wait<0>();
  __syncthreads();
  // A fragments of this warp's Q and dO rows (kQS: read per key tile instead).
  constexpr int kKS = kQS ? 1 : kD / 16;
  uint32_t qf[MT][kKS][4], of[MT][kKS][4];
  if constexpr (!kQS) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int ks = 0; ks < kD / 16; ks++) {
        ldsm_x4(qf[mt][ks], frag_a_rows(sQ, LDS, w0 - q0 + 16 * mt, ks * 16, lane));
        ldsm_x4(of[mt][ks], frag_a_rows(sdO, LDS, w0 - q0 + 16 * mt, ks * 16, lane));
      }
    __syncthreads();  // stage 1 is free for the first prefetch
  }

  float dq[MT][kD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++) dq[mt][dt][0] = dq[mt][dt][1] = dq[mt][dt][2] = dq[mt][dt][3] = 0.f;

  for (int k0 = kbeg, stage = 0; k0 <= kend; k0 += BK, stage ^= 1) {
    const uint16_t* sK = sK0 + stage * kStage;
    const uint16_t* sV = sV0 + stage * kStage;
    if (k0 + BK <= kend) {
      load_rows_async<kD, BK>(sK0 + (stage ^ 1) * kStage, LDS, kbase, p.k_st, k0 + BK, L, p.D, p.vec);
      load_rows_async<kD, BK>(sV0 + (stage ^ 1) * kStage, LDS, vbase, p.v_st, k0 + BK, L, p.D, p.vec);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (k0 <= wend && k0 + BK - 1 >= wbeg) {
      // S = Q K^T and dP = dO V^T: 16 MT rows x BK keys.
      float sc[MT][BK / 8][4], dp[MT][BK / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
          for (int e = 0; e < 4; e++) sc[mt][nt][e] = dp[mt][nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kD / 16; ks++) {
        if constexpr (kQS) {
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            ldsm_x4(qf[mt][0], frag_a_rows(sQ, LDS, w0 - q0 + 16 * mt, ks * 16, lane));
            ldsm_x4(of[mt][0], frag_a_rows(sdO, LDS, w0 - q0 + 16 * mt, ks * 16, lane));
          }
        }
        const int kq = kQS ? 0 : ks;
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt += 2) {
          uint32_t bk[4], bv[4];
          ldsm_x4(bk, frag_b_rows(sK, LDS, nt * 8, ks * 16, lane));
          ldsm_x4(bv, frag_b_rows(sV, LDS, nt * 8, ks * 16, lane));
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            mma16816<T>(sc[mt][nt], qf[mt][kq], bk[0], bk[1]);
            mma16816<T>(sc[mt][nt + 1], qf[mt][kq], bk[2], bk[3]);
            mma16816<T>(dp[mt][nt], of[mt][kq], bv[0], bv[1]);
            mma16816<T>(dp[mt][nt + 1], of[mt][kq], bv[2], bv[3]);
          }
        }
      }
      // Warp-uniform: only tiles on a mask edge (causal diagonal, window edges, sequence end)
      // pay for per-element masks.
      if (!(k0 >= full_lo && k0 + BK - 1 <= full_hi)) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int half = 0; half < 2; half++) {
            const int r = w0 + mt * 16 + g + 8 * half;  // rows g, g + 8 of the MMA tile
            const int lo = key_lo(p, r), hi = r < L ? key_hi(p, r, L) : -1;
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
              for (int e = 2 * half; e < 2 * half + 2; e++) {
                const int key = k0 + nt * 8 + tq * 2 + (e & 1);
                if (key < lo || key > hi) sc[mt][nt][e] = masked;
              }
          }
      }
      // dS = P (dP - D) in place of dp, P = exp2(S scale log2e - lse log2e).
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const float P = ex2(fmaf(sc[mt][nt][e], p.scale_log2, nlse[mt][e >> 1]));
            dp[mt][nt][e] = P * (dp[mt][nt][e] - di[mt][e >> 1]);
          }
      // dQ += dS K: A = dS from registers; B[k=key][n=d] = K[key][d] via the transposing ldmatrix.
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t da[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) pack_c_as_a<T>(dp[mt][2 * kk], dp[mt][2 * kk + 1], da[mt]);
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt += 2) {
          uint32_t b[4];
          ldsm_x4_t(b, frag_a_rows(sK, LDS, kk * 16, dt * 8, lane));
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            mma16816<T>(dq[mt][dt], da[mt], b[0], b[1]);
            mma16816<T>(dq[mt][dt + 1], da[mt], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();
  }

  // dQ = scale * sum dS K, written once (rows that see no key get 0).
  T* dqp = static_cast<T*>(p.dq);
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int r = w0 + mt * 16 + g + 8 * half;
      if (r >= L) continue;
      T* drow = dqp + (int64_t(t0 + r) * p.Hq + h) * p.D;
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt++) {
        const int c = dt * 8 + tq * 2;
        const float x0 = dq[mt][dt][2 * half] * p.scale, x1 = dq[mt][dt][2 * half + 1] * p.scale;
        if ((p.D & 1) == 0 && c < p.D) {  // even D: 4-byte aligned pairs
          *reinterpret_cast<uint32_t*>(drow + c) = pack_f2<T>(x0, x1);
        } else {
          if (c < p.D) drow[c] = from_f<T>(x0);
          if (c + 1 < p.D) drow[c + 1] = from_f<T>(x1);
        }
      }
    }
  }
}

// ---- CUDA cores -----------------------------------------------------------------------------
constexpr int kMaxD = 256, kPerLane = kMaxD / 32;

// dQ_i = scale sum_j dS_ij k_j, one warp per query row.
template <class T>
__global__ void __launch_bounds__(kThreads) dq_generic_kernel(const Params p) {
  __shared__ float sq[kThreads / 32][kMaxD], sdo[kThreads / 32][kMaxD];
  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = blockIdx.x * (kThreads / 32) + warp;
  if (r >= L) return;
  const int h = blockIdx.y, hk = h / p.group, D = p.D;
  const int64_t row = int64_t(t0 + r) * p.Hq + h;
  const T* q = static_cast<const T*>(p.q) + int64_t(t0 + r) * p.q_st + int64_t(h) * p.q_sh;
  const T* dO = static_cast<const T*>(p.dout) + row * D;
  for (int d = lane; d < D; d += 32) {
    sq[warp][d] = to_f(q[d]);
    sdo[warp][d] = to_f(dO[d]);
  }
  __syncwarp();
  const T* kb = static_cast<const T*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const T* vb = static_cast<const T*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;
  const float lse2 = p.lse_in[row] * kLog2e, Di = p.Di[row];
  const int lo = key_lo(p, r), hi = key_hi(p, r, L);
  float acc[kPerLane] = {};
  for (int c0 = lo; c0 <= hi; c0 += 32) {
    const int j = c0 + lane;
    float dS = 0.f;
    if (j <= hi) {
      const T *kr = kb + int64_t(j) * p.k_st, *vr = vb + int64_t(j) * p.v_st;
      float sdot = 0.f, dp = 0.f;
      for (int d = 0; d < D; d++) {
        sdot += sq[warp][d] * to_f(kr[d]);
        dp += sdo[warp][d] * to_f(vr[d]);
      }
      const float P = exp2f(sdot * p.scale_log2 - lse2);
      dS = P * (dp - Di);
    }
    const int nvalid = min(32, hi - c0 + 1);
    for (int jj = 0; jj < nvalid; jj++) {
      const float w = __shfl_sync(0xffffffffu, dS, jj);
      const T* kr = kb + int64_t(c0 + jj) * p.k_st;
#pragma unroll
      for (int c = 0; c < kPerLane; c++) {
        const int d = lane + 32 * c;
        if (d < D) acc[c] += w * to_f(kr[d]);
      }
    }
  }
  T* dq = static_cast<T*>(p.dq) + row * D;
#pragma unroll
  for (int c = 0; c < kPerLane; c++) {
    const int d = lane + 32 * c;
    if (d < D) dq[d] = from_f<T>(acc[c] * p.scale);
  }
}

// dK_j = scale sum_i dS_ij q_i, dV_j = sum_i P_ij dO_i over every q head of kv head hk, one
// warp per key row.
template <class T>
__global__ void __launch_bounds__(kThreads) dkdv_generic_kernel(const Params p) {
  __shared__ float sk[kThreads / 32][kMaxD], sv[kThreads / 32][kMaxD];
  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int j = blockIdx.x * (kThreads / 32) + warp;
  if (j >= L) return;
  const int hk = blockIdx.y, D = p.D;
  const T* kr = static_cast<const T*>(p.k) + int64_t(t0 + j) * p.k_st + int64_t(hk) * p.k_sh;
  const T* vr = static_cast<const T*>(p.v) + int64_t(t0 + j) * p.v_st + int64_t(hk) * p.v_sh;
  for (int d = lane; d < D; d += 32) {
    sk[warp][d] = to_f(kr[d]);
    sv[warp][d] = to_f(vr[d]);
  }
  __syncwarp();
  const int lo = query_lo(p, j), hi = query_hi(p, j, L);
  float dk[kPerLane] = {}, dv[kPerLane] = {};
  for (int h = hk * p.group; h < (hk + 1) * p.group; h++) {
    const T* qb = static_cast<const T*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
    const T* ob = static_cast<const T*>(p.dout) + (int64_t(t0) * p.Hq + h) * D;
    const int64_t ost = int64_t(p.Hq) * D;
    for (int c0 = lo; c0 <= hi; c0 += 32) {
      const int i = c0 + lane;
      float P = 0.f, dS = 0.f;
      if (i <= hi) {
        const T *qr = qb + int64_t(i) * p.q_st, *dor = ob + int64_t(i) * ost;
        float sdot = 0.f, dp = 0.f;
        for (int d = 0; d < D; d++) {
          sdot += to_f(qr[d]) * sk[warp][d];
          dp += to_f(dor[d]) * sv[warp][d];
        }
        const int64_t row = int64_t(t0 + i) * p.Hq + h;
        P = exp2f(sdot * p.scale_log2 - p.lse_in[row] * kLog2e);
        dS = P * (dp - p.Di[row]);
      }
      const int nvalid = min(32, hi - c0 + 1);
      for (int ii = 0; ii < nvalid; ii++) {
        const float wp = __shfl_sync(0xffffffffu, P, ii), ws = __shfl_sync(0xffffffffu, dS, ii);
        const T *qr = qb + int64_t(c0 + ii) * p.q_st, *dor = ob + int64_t(c0 + ii) * ost;
#pragma unroll
        for (int c = 0; c < kPerLane; c++) {
          const int d = lane + 32 * c;
          if (d < D) {
            dv[c] += wp * to_f(dor[d]);
            dk[c] += ws * to_f(qr[d]);
          }
        }
      }
    }
  }
  const int64_t row = (int64_t(t0 + j) * p.Hkv + hk) * D;
  T* dkp = static_cast<T*>(p.dk) + row;
  T* dvp = static_cast<T*>(p.dv) + row;
#pragma unroll
  for (int c = 0; c < kPerLane; c++) {
    const int d = lane + 32 * c;
    if (d < D) {
      dkp[d] = from_f<T>(dk[c] * p.scale);
      dvp[d] = from_f<T>(dv[c]);
    }
  }
}

template <class K>
void launch_seq_chunks(K kernel, const Params& p_in, int num_seqs, unsigned gx, unsigned gy, size_t smem) {
  Params p = p_in;
  for (int s0 = 0; s0 < num_seqs; s0 += 65535) {
    p.seq_offset = s0;
    const dim3 grid(gx, gy, unsigned(std::min(65535, num_seqs - s0)));
    kernel<<<grid, kThreads, smem, current_stream()>>>(p);
    LMF_CUDA_CHECK_LAUNCH();
  }
}

// Dynamic shared memory beyond the 48 KiB default: opt in once per instantiation (per process;
// the attribute is per device, and lmforge drives one device per process).
template <class K>
void allow_smem(K kernel, size_t bytes) {
  LMF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// dq = scale * acc, element-wise over the contiguous [N, Hq, D] rows.
template <class T>
__global__ void dq_convert_kernel(const float* __restrict__ acc, T* __restrict__ dq, int64_t n, float scale) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dq[i] = from_f<T>(acc[i] * scale);
}

template <class T, int kD, int kKT>
void launch_tc_atomic(const Params& p, int num_seqs, int max_seqlen, int64_t dq_elems) {
  using Sh = DkdvShape<kD, kKT, true>;
  auto kernel = dkdv_tc_kernel<T, kD, kKT, true>;
  static const bool configured = [&] {
    allow_smem(kernel, Sh::smem_bytes);
    return true;
  }();
  (void)configured;
  launch_seq_chunks(kernel, p, num_seqs, unsigned((max_seqlen + Sh::BK - 1) / Sh::BK), unsigned(p.Hkv),
                    Sh::smem_bytes);
  const int threads = 256;
  dq_convert_kernel<T><<<blocks_for(dq_elems, threads), threads, 0, current_stream()>>>(
      p.dq_acc, static_cast<T*>(p.dq), dq_elems, p.scale);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, int kD, int kDqMT, int kKT, int kDqBK = 0, bool kDqQS = false>
void launch_tc(const Params& p, int num_seqs, int max_seqlen) {
  using DqSh = DqShape<kD, kDqMT, kDqBK, kDqQS>;
  using DkdvSh = DkdvShape<kD, kKT>;
  auto dq_kernel = dq_tc_kernel<T, kD, kDqMT, kDqBK, kDqQS>;
  auto dkdv_kernel = dkdv_tc_kernel<T, kD, kKT, false>;
  static const bool configured = [&] {
    allow_smem(dq_kernel, DqSh::smem_bytes);
    allow_smem(dkdv_kernel, DkdvSh::smem_bytes);
    return true;
  }();
  (void)configured;
  launch_seq_chunks(dq_kernel, p, num_seqs, unsigned((max_seqlen + DqSh::BQ - 1) / DqSh::BQ), unsigned(p.Hq),
                    DqSh::smem_bytes);
  launch_seq_chunks(dkdv_kernel, p, num_seqs, unsigned((max_seqlen + DkdvSh::BK - 1) / DkdvSh::BK), unsigned(p.Hkv),
                    DkdvSh::smem_bytes);
}

// LMF_ATTN_BWD_VARIANT (benchmarking only; read per call so that one process can compare):
// D <= 64 tile shapes, (dQ rows per warp, dK/dV keys per warp) = 0: (32, 32), 1: (16, 16),
// 2: (32, 16), 3: (16, 32); D > 64: variant 1 gives the dQ kernel 64-key tiles instead of 32, variant 2 also reads its
// Q / dO fragments from shared memory.
int bwd_variant() {
  const char* v = std::getenv("LMF_ATTN_BWD_VARIANT");
  return v ? std::atoi(v) : 0;
}

}  // namespace

bool use_atomic_dq(DType dtype, int D) {
  const char* v = std::getenv("LMF_ATTN_BWD");
  return use_tensor_cores(dtype, D) && v && std::string_view(v) == "atomic";
}

void launch_backward(const Params& p, DType dtype, int num_seqs, int max_seqlen) {
  if (num_seqs == 0 || max_seqlen == 0) return;
  if (use_tensor_cores(dtype, p.D) && p.dq_acc) {
    // Single pass: keys per warp as the variant's dK/dV choice (32 for variants 0 and 2).
    const int variant = bwd_variant();
    const int64_t n = int64_t(p.N) * p.Hq * p.D;
    auto go = [&]<class T>() {
      if (p.D <= 32) launch_tc_atomic<T, 32, 1>(p, num_seqs, max_seqlen, n);
      else if (p.D <= 64) {
        if (variant == 1 || variant == 3) launch_tc_atomic<T, 64, 1>(p, num_seqs, max_seqlen, n);
        else launch_tc_atomic<T, 64, 2>(p, num_seqs, max_seqlen, n);
      } else launch_tc_atomic<T, 128, 1>(p, num_seqs, max_seqlen, n);
    };
    if (dtype == DType::f16) go.template operator()<__half>();
    else go.template operator()<__nv_bfloat16>();
    return;
  }
  if (use_tensor_cores(dtype, p.D)) {
    const int variant = bwd_variant();
    auto go = [&]<class T>() {
      // Rows per warp (dQ, dK/dV): 32 where the registers allow it (see DqShape, DkdvShape).
      if (p.D <= 32) launch_tc<T, 32, 1, 1>(p, num_seqs, max_seqlen);
      else if (p.D <= 64) {
        switch (variant) {  // tile shapes for benchmarking (bwd_variant)
          case 1: launch_tc<T, 64, 1, 1>(p, num_seqs, max_seqlen); break;
          case 2: launch_tc<T, 64, 2, 1>(p, num_seqs, max_seqlen); break;
          case 3: launch_tc<T, 64, 1, 2>(p, num_seqs, max_seqlen); break;
          default: launch_tc<T, 64, 2, 2>(p, num_seqs, max_seqlen);
        }
      } else if (variant == 1) launch_tc<T, 128, 1, 1, 64>(p, num_seqs, max_seqlen);
      else if (variant == 2) launch_tc<T, 128, 1, 1, 64, true>(p, num_seqs, max_seqlen);
      else launch_tc<T, 128, 1, 1>(p, num_seqs, max_seqlen);
    };
    if (dtype == DType::f16) go.template operator()<__half>();
    else go.template operator()<__nv_bfloat16>();
    return;
  }
  const unsigned gx = unsigned((max_seqlen + kThreads / 32 - 1) / (kThreads / 32));
  dispatch_floating(dtype, "attention_backward", [&]<class T>() {
    launch_seq_chunks(dq_generic_kernel<T>, p, num_seqs, gx, unsigned(p.Hq), 0);
    launch_seq_chunks(dkdv_generic_kernel<T>, p, num_seqs, gx, unsigned(p.Hkv), 0);
  });
}

}  // namespace lmf::cuda::attn
