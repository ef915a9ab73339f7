// CUDA attention backward (contract in backend/kernel_list.inc). Both paths need, per query
// row, the saved lse and D_i = rowsum(dO_i * O_i) (attention.cu computes D first), and
// recompute P_ij = exp(scale q_i.k_j - lse_i) instead of storing it.
//
// Tensor-core path (bf16/f16, D <= 128; FlashAttention-2 backward, Dao 2023, Algorithm 2):
// one block of 4 warps per (64-key tile, kv head, sequence); warp w owns keys 16w..16w+15 of
// the tile and keeps their dK, dV accumulators in registers for the whole kernel, so dK/dV
// need no atomics and grouped heads cost nothing extra: the block loops over the q heads of
// its kv head and over the query tiles (BQ = 64, or 32 for D > 64 to bound registers) that can
// see its keys (causal / window bounds). Per query tile, with keys as the M dimension:
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
  // sK, sV [BK][LDS]; sQ, sdO [BQ][LDS]; sdS [BK][LDP] (16-bit); sLse, sDi [BQ] f32.
  static constexpr size_t smem_bytes =
      size_t(2 * BK * LDS + 2 * BQ * LDS + BK * LDP) * sizeof(uint16_t) + size_t(2 * BQ) * sizeof(float);
};

template <class T, int kD>
__global__ void __launch_bounds__(kThreads) bwd_tc_kernel(const Params p) {
  using Sh = BwdShape<kD>;
  constexpr int BK = Sh::BK, BQ = Sh::BQ, LDS = Sh::LDS, LDP = Sh::LDP;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* sK = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* sV = sK + BK * LDS;
  uint16_t* sQ = sV + BK * LDS;
  uint16_t* sdO = sQ + BQ * LDS;
  uint16_t* sdS = sdO + BQ * LDS;
  float* sLse = reinterpret_cast<float*>(sdS + BK * LDP);  // byte offset is a multiple of 16
  float* sDi = sLse + BQ;

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
  load_tile<kD>(sK, LDS, kbase, p.k_st, k0, BK, L, p.D, p.vec);
  load_tile<kD>(sV, LDS, vbase, p.v_st, k0, BK, L, p.D, p.vec);

  // Queries that see any key of the tile.
  const int k1 = min(k0 + BK, L) - 1;
  const int i_lo = query_lo(p, k0), i_hi = query_hi(p, k1, L);

  float dk[kD / 8][4], dv[kD / 8][4];
#pragma unroll
  for (int dt = 0; dt < kD / 8; dt++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[dt][e] = dv[dt][e] = 0.f;

  // dQ work split: RG row groups of 16 queries x CS column slices of NCOL dims = 4 warps.
  constexpr int RG = BQ / 16, CS = 4 / RG, NCOL = kD / CS;
  const int rg = warp % RG, cs = warp / RG;

  for (int h = hk * p.group; h < (hk + 1) * p.group; h++) {
    const uint16_t* qbase = static_cast<const uint16_t*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
    const uint16_t* obase = static_cast<const uint16_t*>(p.dout) + (int64_t(t0) * p.Hq + h) * p.D;
    for (int i0 = i_lo; i0 <= i_hi; i0 += BQ) {
      __syncthreads();  // previous tile's sQ/sdO/sdS reads are done (first time: sK/sV written)
      load_tile<kD>(sQ, LDS, qbase, p.q_st, i0, BQ, L, p.D, p.vec);
      load_tile<kD>(sdO, LDS, obase, int64_t(p.Hq) * p.D, i0, BQ, L, p.D, p.vec);
      for (int r = threadIdx.x; r < BQ; r += kThreads) {
        const int i = i0 + r;
        const int64_t row = int64_t(t0 + i) * p.Hq + h;
        sLse[r] = i < L ? p.lse_in[row] * kLog2e : INFINITY;
        sDi[r] = i < L ? p.Di[row] : 0.f;
      }
      __syncthreads();

      // S^T = K Q^T and dP^T = V dO^T: this warp's 16 keys x BQ queries.
      float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
      for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) st[nt][e] = dpt[nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kD / 16; ks++) {
        const int c = ks * 16 + tq * 2;
        const uint32_t ka_f[4] = {ld_u32(sK + (wk + g) * LDS + c), ld_u32(sK + (wk + g + 8) * LDS + c),
                                  ld_u32(sK + (wk + g) * LDS + c + 8), ld_u32(sK + (wk + g + 8) * LDS + c + 8)};
        const uint32_t va_f[4] = {ld_u32(sV + (wk + g) * LDS + c), ld_u32(sV + (wk + g + 8) * LDS + c),
                                  ld_u32(sV + (wk + g) * LDS + c + 8), ld_u32(sV + (wk + g + 8) * LDS + c + 8)};
#pragma unroll
        for (int nt = 0; nt < BQ / 8; nt++) {
          const uint16_t* qr = sQ + (nt * 8 + g) * LDS + c;   // B[k=d][n=query] = Q[query][d]
          const uint16_t* dor = sdO + (nt * 8 + g) * LDS + c;
          mma16816<T>(st[nt], ka_f, ld_u32(qr), ld_u32(qr + 8));
          mma16816<T>(dpt[nt], va_f, ld_u32(dor), ld_u32(dor + 8));
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

      // dV += P^T dO and dK += dS^T Q (k index = query): B[k=query][n=d] read as 16-bit pairs.
#pragma unroll
      for (int kk = 0; kk < BQ / 16; kk++) {
        uint32_t pa[4], da[4];
        pack_c_as_a<T>(st[2 * kk], st[2 * kk + 1], pa);
        pack_c_as_a<T>(dpt[2 * kk], dpt[2 * kk + 1], da);
        const uint16_t* dor = sdO + (kk * 16 + tq * 2) * LDS + g;
        const uint16_t* qr = sQ + (kk * 16 + tq * 2) * LDS + g;
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt++) {
          const uint16_t* a = dor + dt * 8;
          const uint16_t* b = qr + dt * 8;
          mma16816<T>(dv[dt], pa, pack_u16(a[0], a[LDS]), pack_u16(a[8 * LDS], a[9 * LDS]));
          mma16816<T>(dk[dt], da, pack_u16(b[0], b[LDS]), pack_u16(b[8 * LDS], b[9 * LDS]));
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
        const uint16_t* a = sdS + (kk * 16 + tq * 2) * LDP + qr0;
        const uint32_t af[4] = {pack_u16(a[0], a[LDP]), pack_u16(a[8], a[LDP + 8]),
                                pack_u16(a[8 * LDP], a[9 * LDP]), pack_u16(a[8 * LDP + 8], a[9 * LDP + 8])};
        const uint16_t* kr = sK + (kk * 16 + tq * 2) * LDS + cs * NCOL + g;
#pragma unroll
        for (int dt = 0; dt < NCOL / 8; dt++) {
          const uint16_t* b = kr + dt * 8;
          mma16816<T>(dq[dt], af, pack_u16(b[0], b[LDS]), pack_u16(b[8 * LDS], b[9 * LDS]));
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
