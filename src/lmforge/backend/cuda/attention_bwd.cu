// CUDA attention backward (contract in backend/kernel_list.inc). Both paths need, per query
// row, the saved lse and D_i = rowsum(dO_i * O_i) (attention.cu computes D first), and
// recompute P_ij = exp(scale q_i.k_j - lse_i) instead of storing it.
//
// Tensor-core path (bf16/f16, D <= 128; FlashAttention-2 backward, Dao 2023, Algorithm 2):
// one block of 4 warps per (64-key tile, kv head, sequence); warp w owns keys 16w..16w+15 of
// the tile and keeps their dK, dV accumulators in registers for the whole kernel, so dK/dV
// need no atomics and grouped heads cost nothing extra: the block loops over the q heads of
// its kv head and over the query tiles (BQ = 64, or 32 for D > 64 to bound registers) that can
// see its keys (causal / window bounds); the Q / dO tiles are double-buffered (cp.async copies
// the next (head, query tile) item while this one is used). Per item, keys as the M dimension:
//   S^T = K Q^T, dP^T = V dO^T  ->  P^T = exp2(S^T scale log2e - lse log2e), dS^T = P^T (dP^T - D)
//   dV += P^T dO,  dK += dS^T Q  (P^T, dS^T reused from registers as A fragments)
//   dQ[tile] += dS K            (dS^T staged through shared memory; the block's partial dQ is
//                                added with fp32 atomics into dq_acc, then scaled and cast by
//                                attention.cu: FA2's choice, one add per element per key tile)
//
// Generic path (f32, or D > 128): no atomics. dq_kernel: one warp per query row (like the
// forward); dkdv_kernel: one warp per key row, looping over the queries that see it (the
// visibility predicate solved for i is an interval too).
#include <algorithm>

#include "lmforge/backend/cuda/attention_common.cuh"

namespace lmf::cuda::attn {

namespace {

template <int kD>
struct BwdShape {
  static constexpr int BK = 64, BQ = kD > 64 ? 32 : 64, LDS = kD + 8, LDP = BQ + 8;
  // sK, sV [BK][LDS]; two stages of sQ, sdO [BQ][LDS]; sdS [BK][LDP] (16-bit);
  // two stages of sLse, sDi [BQ] f32.
  static constexpr size_t smem_bytes =
      size_t(2 * BK * LDS + 4 * BQ * LDS + BK * LDP) * sizeof(uint16_t) + size_t(4 * BQ) * sizeof(float);
};

template <class T, int kD>
__global__ void __launch_bounds__(kThreads) bwd_tc_kernel(const Params p) {
  using Sh = BwdShape<kD>;
  constexpr int BK = Sh::BK, BQ = Sh::BQ, LDS = Sh::LDS, LDP = Sh::LDP;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* const sK = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const sV = sK + BK * LDS;
  uint16_t* const sQ0 = sV + BK * LDS;      // stage st: sQ0 + st * BQ * LDS
  uint16_t* const sdO0 = sQ0 + 2 * BQ * LDS;
  uint16_t* const sdS = sdO0 + 2 * BQ * LDS;
  float* const sLse0 = reinterpret_cast<float*>(sdS + BK * LDP);  // byte offset: a multiple of 16
  float* const sDi0 = sLse0 + 2 * BQ;

  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  const int k0 = blockIdx.x * BK;
  if (k0 >= L) return;  // whole block, before any barrier
  const int hk = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int wk = warp * 16;                       // this warp's first key row in the tile
  const int ka = k0 + wk + g, kb = ka + 8;        // this thread's two key rows (local)

  const uint16_t* kbase = static_cast<const uint16_t*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const uint16_t* vbase = static_cast<const uint16_t*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;

  // Queries that see any key of the tile, in query tiles of BQ; the work list is every
  // (q head of this kv head, query tile) pair, item it = (head it / ntiles, tile it % ntiles).
  const int k1 = min(k0 + BK, L) - 1;
  const int i_lo = query_lo(p, k0), i_hi = query_hi(p, k1, L);
  const int ntiles = i_hi >= i_lo ? (i_hi - i_lo) / BQ + 1 : 0;
  const int nitems = p.group * ntiles;

  // Stage `st` <- Q, dO rows, lse (log2 units) and D of work item `it` (cp.async for Q, dO).
  auto issue = [&](int it, int st) {
    const int h = hk * p.group + it / ntiles, i0 = i_lo + (it % ntiles) * BQ;
    const uint16_t* qbase = static_cast<const uint16_t*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
    const uint16_t* obase = static_cast<const uint16_t*>(p.dout) + (int64_t(t0) * p.Hq + h) * p.D;
    load_tile_async<kD>(sQ0 + st * BQ * LDS, LDS, qbase, p.q_st, i0, BQ, L, p.D, p.vec);
    load_tile_async<kD>(sdO0 + st * BQ * LDS, LDS, obase, int64_t(p.Hq) * p.D, i0, BQ, L, p.D, p.vec);
    for (int r = threadIdx.x; r < BQ; r += kThreads) {
      const int i = i0 + r;
      const int64_t row = int64_t(t0 + i) * p.Hq + h;
      sLse0[st * BQ + r] = i < L ? p.lse_in[row] * kLog2e : INFINITY;
      sDi0[st * BQ + r] = i < L ? p.Di[row] : 0.f;
    }
  };

  load_tile_async<kD>(sK, LDS, kbase, p.k_st, k0, BK, L, p.D, p.vec);
  load_tile_async<kD>(sV, LDS, vbase, p.v_st, k0, BK, L, p.D, p.vec);
  if (nitems > 0) issue(0, 0);
  cp_async_commit();

  float dk[kD / 8][4], dv[kD / 8][4];
#pragma unroll
  for (int dt = 0; dt < kD / 8; dt++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[dt][e] = dv[dt][e] = 0.f;

  // dQ work split: RG row groups of 16 queries x CS column slices of NCOL dims = 4 warps.
  constexpr int RG = BQ / 16, CS = 4 / RG, NCOL = kD / CS;
  const int rg = warp % RG, cs = warp / RG;

  for (int it = 0, stage = 0; it < nitems; it++, stage ^= 1) {
    const int h = hk * p.group + it / ntiles, i0 = i_lo + (it % ntiles) * BQ;
    // Prefetch the next item into the other stage. Its previous contents (item it - 1) were last
    // read before item it - 1's mid-iteration barrier, which every thread has passed.
    if (it + 1 < nitems) issue(it + 1, stage ^ 1);
    cp_async_commit();   // (possibly empty group: keeps the count uniform)
    cp_async_wait<1>();  // this thread's copies for item it (and sK, sV) have landed
    __syncthreads();     // ... and everyone else's; also: item it - 1's dQ reads of sdS are done
    const uint16_t* sQ = sQ0 + stage * BQ * LDS;
    const uint16_t* sdO = sdO0 + stage * BQ * LDS;
    const float* sLse = sLse0 + stage * BQ;
    const float* sDi = sDi0 + stage * BQ;
    {
      // S^T = K Q^T and dP^T = V dO^T: this warp's 16 keys x BQ queries.
      float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
      for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) st[nt][e] = dpt[nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kD / 16; ks++) {
        uint32_t ka_f[4], va_f[4];  // A[m=key][k=d]: this warp's 16 rows of K and V
        ldsm_x4(ka_f, frag_a_rows(sK, LDS, wk, ks * 16, lane));
        ldsm_x4(va_f, frag_a_rows(sV, LDS, wk, ks * 16, lane));
#pragma unroll
        for (int nt = 0; nt < BQ / 8; nt += 2) {  // B[k=d][n=query] = Q[query][d], dO[query][d]
          uint32_t bq[4], bo[4];
          ldsm_x4(bq, frag_b_rows(sQ, LDS, nt * 8, ks * 16, lane));
          ldsm_x4(bo, frag_b_rows(sdO, LDS, nt * 8, ks * 16, lane));
          mma16816<T>(st[nt], ka_f, bq[0], bq[1]);
          mma16816<T>(st[nt + 1], ka_f, bq[2], bq[3]);
          mma16816<T>(dpt[nt], va_f, bo[0], bo[1]);
          mma16816<T>(dpt[nt + 1], va_f, bo[2], bo[3]);
        }
      }

      // P^T and dS^T in place. Element (nt, e): key row e < 2 ? ka : kb, query i0 + col.
#pragma unroll
      for (int nt = 0; nt < BQ / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int col = nt * 8 + tq * 2 + (e & 1);
          const int i = i0 + col, j = e < 2 ? ka : kb;
          const bool vis = i < L && j < L && j >= key_lo(p, i) && j <= key_hi(p, i, L);
          const float P = vis ? exp2f(st[nt][e] * p.scale_log2 - sLse[col]) : 0.f;
          st[nt][e] = P;
          dpt[nt][e] = P * (dpt[nt][e] - sDi[col]);
        }
      }

      // dV += P^T dO and dK += dS^T Q (k index = query): B[k=query][n=d] = dO / Q, row-major,
      // through the transposing ldmatrix (two d tiles per load).
#pragma unroll
      for (int kk = 0; kk < BQ / 16; kk++) {
        uint32_t pa[4], da[4];
        pack_c_as_a<T>(st[2 * kk], st[2 * kk + 1], pa);
        pack_c_as_a<T>(dpt[2 * kk], dpt[2 * kk + 1], da);
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt += 2) {
          uint32_t bo[4], bq[4];
          ldsm_x4_t(bo, frag_a_rows(sdO, LDS, kk * 16, dt * 8, lane));
          ldsm_x4_t(bq, frag_a_rows(sQ, LDS, kk * 16, dt * 8, lane));
          mma16816<T>(dv[dt], pa, bo[0], bo[1]);
          mma16816<T>(dv[dt + 1], pa, bo[2], bo[3]);
          mma16816<T>(dk[dt], da, bq[0], bq[1]);
          mma16816<T>(dk[dt + 1], da, bq[2], bq[3]);
        }
      }

      // dS^T -> shared memory (rows = keys of the tile, columns = queries of the tile).
#pragma unroll
      for (int nt = 0; nt < BQ / 8; nt++) {
        const int col = nt * 8 + tq * 2;
        *reinterpret_cast<uint32_t*>(sdS + (wk + g) * LDP + col) = pack_f2<T>(dpt[nt][0], dpt[nt][1]);
        *reinterpret_cast<uint32_t*>(sdS + (wk + g + 8) * LDP + col) = pack_f2<T>(dpt[nt][2], dpt[nt][3]);
      }
      __syncthreads();

      // dQ (queries 16rg.. x dims cs*NCOL..) = dS (BQ x 64 keys) K (64 keys x kD).
      // A[m=query][k=key] = sdS[key][query]; B[k=key][n=d] = sK[key][d].
      float dq[NCOL / 8][4];
#pragma unroll
      for (int dt = 0; dt < NCOL / 8; dt++) dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.f;
      const int qr0 = rg * 16 + g;
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t af[4];  // transposing load of sdS[key][query]: the A fragment of dS[query][key]
        ldsm_x4_t(af, frag_b_rows(sdS, LDP, kk * 16, rg * 16, lane));
#pragma unroll
        for (int dt = 0; dt < NCOL / 8; dt += 2) {
          uint32_t b[4];
          ldsm_x4_t(b, frag_a_rows(sK, LDS, kk * 16, cs * NCOL + dt * 8, lane));
          mma16816<T>(dq[dt], af, b[0], b[1]);
          mma16816<T>(dq[dt + 1], af, b[2], b[3]);
        }
      }
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int i = i0 + qr0 + 8 * half;
        if (i >= L) continue;
        float* drow = p.dq_acc + (int64_t(t0 + i) * p.Hq + h) * p.D;
#pragma unroll
        for (int dt = 0; dt < NCOL / 8; dt++) {
          const int c = cs * NCOL + dt * 8 + tq * 2;
          if (c < p.D) atomicAdd(drow + c, dq[dt][2 * half]);
          if (c + 1 < p.D) atomicAdd(drow + c + 1, dq[dt][2 * half + 1]);
        }
      }
    }
  }
  cp_async_wait<0>();  // nothing in flight at exit (only matters when there was no work item)

  // dK = scale * sum dS^T Q; dV = sum P^T dO. This block owns these key rows.
  T* dkp = static_cast<T*>(p.dk);
  T* dvp = static_cast<T*>(p.dv);
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int j = half ? kb : ka;
    if (j >= L) continue;
    const int64_t row = (int64_t(t0 + j) * p.Hkv + hk) * p.D;
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++) {
      const int c = dt * 8 + tq * 2;
      if (c < p.D) {
        dkp[row + c] = from_f<T>(dk[dt][2 * half] * p.scale);
        dvp[row + c] = from_f<T>(dv[dt][2 * half]);
      }
      if (c + 1 < p.D) {
        dkp[row + c + 1] = from_f<T>(dk[dt][2 * half + 1] * p.scale);
        dvp[row + c + 1] = from_f<T>(dv[dt][2 * half + 1]);
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

template <class T, int kD>
void launch_tc(const Params& p, int num_seqs, int max_seqlen) {
  using Sh = BwdShape<kD>;
  auto kernel = bwd_tc_kernel<T, kD>;
  // More than the 48 KiB default for D = 128: opt in once per instantiation (per process; the
  // attribute is per device, and lmforge drives one device per process).
  static const bool configured = [&] {
    LMF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Sh::smem_bytes)));
    return true;
  }();
  (void)configured;
  launch_seq_chunks(kernel, p, num_seqs, unsigned((max_seqlen + Sh::BK - 1) / Sh::BK), unsigned(p.Hkv),
                    Sh::smem_bytes);
}

}  // namespace

void launch_backward(const Params& p, DType dtype, int num_seqs, int max_seqlen) {
  if (num_seqs == 0 || max_seqlen == 0) return;
  if (use_tensor_cores(dtype, p.D)) {
    auto go = [&]<class T>() {
      if (p.D <= 32) launch_tc<T, 32>(p, num_seqs, max_seqlen);
      else if (p.D <= 64) launch_tc<T, 64>(p, num_seqs, max_seqlen);
      else launch_tc<T, 128>(p, num_seqs, max_seqlen);
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
