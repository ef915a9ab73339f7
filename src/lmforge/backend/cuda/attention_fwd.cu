// CUDA attention forward (contract in backend/kernel_list.inc, semantics in ops/attention.h).
//
// Tensor-core path (bf16/f16, D <= 128; FlashAttention-2 forward, Dao 2023, Algorithm 1):
// one block of 4 warps per (64 MT-query tile, head, sequence); each warp owns 16 MT query rows
// (MT = 2 for D <= 64, else 1) whose Q fragments stay in registers. The block walks the 64-key tiles that intersect its rows'
// visible key ranges (causal / window bounds, so a 129-key window costs ~3 tiles, never T),
// stages K and V tiles in shared memory (two stages: cp.async copies tile n + 1 while tile n is
// used), computes S = Q K^T with mma.sync (B fragments by ldmatrix), masks, keeps an online
// softmax (running max m and partial sum l per row, in the exp2 domain), and accumulates
// O += P V with P taken straight from the S registers and V^T fragments from ldmatrix.trans.
// Nothing T x T exists.
//
// Generic path (f32 any D <= 256, and bf16/f16 with 128 < D <= 256): one warp per query row;
// lanes score 32 keys at a time (each lane one key), then accumulate P V with the head dim
// spread over the lanes. CUDA cores only, same online softmax.
#include <algorithm>

#include "lmforge/backend/cuda/attention_common.cuh"

namespace lmf::cuda::attn {

namespace {

// ---- tensor cores ---------------------------------------------------------------------------
// MT = 16-row MMA tiles per warp (BQ = 64 MT queries per block). With MT = 2 every K / V
// fragment read from shared memory feeds two MMAs instead of one: ldmatrix bandwidth, not the
// tensor cores, bounds MT = 1 (one ldmatrix.x4 per two mma.m16n8k16). MT = 2 for D <= 64 only:
// at D = 128 the O and Q registers alone would be 192 per thread.
template <int kD, int kMT>
struct FwdShape {
  static constexpr int MT = kMT, BQ = 64 * MT, BK = 64, LDS = kD + 8;  // +8: rows on different banks
  // Two stages of K and V tiles [BK][LDS]; stage 1 first holds the Q tile [BQ][LDS] (read into
  // registers before the first prefetch overwrites it).
  static constexpr int kStage = 2 * BK * LDS;
  static constexpr size_t smem_bytes = size_t(kStage + (kStage > BQ * LDS ? kStage : BQ * LDS)) * sizeof(uint16_t);
};

template <class T, int kD, int kMT>
__global__ void __launch_bounds__(kThreads) fwd_tc_kernel(const Params p) {
  using Sh = FwdShape<kD, kMT>;
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

  // Keys any row of the block sees: from the first row's lo to the last row's hi.
  const int qlast = min(q0 + BQ, L) - 1;
  const int kbeg = key_lo(p, q0), kend = key_hi(p, qlast, L);
  // ... and this warp's rows (rows past the sequence see nothing).
  const int wbeg = key_lo(p, w0), wend = w0 < L ? key_hi(p, min(wlast, L - 1), L) : -1;

  const uint16_t* qbase = static_cast<const uint16_t*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
  const uint16_t* kbase = static_cast<const uint16_t*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const uint16_t* vbase = static_cast<const uint16_t*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;

  // Q tile -> stage 1, first K / V tile -> stage 0 (one group); Q fragments (A operand) into
  // registers for the whole kernel.
  uint16_t* const sQ = sK0 + kStage;
  load_tile_async<kD>(sQ, LDS, qbase, p.q_st, q0, BQ, L, p.D, p.vec);
  if (kbeg <= kend) {
    load_tile_async<kD>(sK0, LDS, kbase, p.k_st, kbeg, BK, L, p.D, p.vec);
    load_tile_async<kD>(sV0, LDS, vbase, p.v_st, kbeg, BK, L, p.D, p.vec);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[MT][kD / 16][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int ks = 0; ks < kD / 16; ks++) ldsm_x4(qf[mt][ks], frag_a_rows(sQ, LDS, (w0 - q0) + mt * 16, ks * 16, lane));
  __syncthreads();  // stage 1 is free for the first prefetch

  float o[MT][kD / 8][4];
  float m[MT][2], l[MT][2];  // running max (log2 domain) and partial row sum of rows g, g + 8
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
  }

  for (int k0 = kbeg, stage = 0; k0 <= kend; k0 += BK, stage ^= 1) {
    const uint16_t* sK = sK0 + stage * kStage;
    const uint16_t* sV = sV0 + stage * kStage;
    if (k0 + BK <= kend) {  // prefetch the next tile into the other stage (free: see the barrier below)
      load_tile_async<kD>(sK0 + (stage ^ 1) * kStage, LDS, kbase, p.k_st, k0 + BK, BK, L, p.D, p.vec);
      load_tile_async<kD>(sV0 + (stage ^ 1) * kStage, LDS, vbase, p.v_st, k0 + BK, BK, L, p.D, p.vec);
    }
    cp_async_commit();   // (possibly empty group: keeps the count uniform)
    cp_async_wait<1>();  // this thread's copies of tile k0 have landed
    __syncthreads();     // ... and everyone else's

    // Warp-uniform: skip tiles no row of this warp sees (causal diagonal, window edges); mask
    // only tiles that some row of the warp sees partly.
    if (k0 <= wend && k0 + BK - 1 >= wbeg) {
      const bool full = wlast < L && k0 >= key_lo(p, wlast) && k0 + BK - 1 <= key_hi(p, w0, L);

      // S = Q K^T: 16 MT rows x 64 keys per warp.
      float sc[MT][BK / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++) sc[mt][nt][0] = sc[mt][nt][1] = sc[mt][nt][2] = sc[mt][nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kD / 16; ks++) {
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt += 2) {  // B[k=d][n=key] = K[key][d]: two key tiles per ldmatrix
          uint32_t b[4];
          ldsm_x4(b, frag_b_rows(sK, LDS, nt * 8, ks * 16, lane));
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            mma16816<T>(sc[mt][nt], qf[mt][ks], b[0], b[1]);
            mma16816<T>(sc[mt][nt + 1], qf[mt][ks], b[2], b[3]);
          }
        }
      }

#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        // Scale into the exp2 domain (masking partly visible tiles); row maxima over the 4
        // lanes sharing a row.
        const int ra = w0 + mt * 16 + g, rb = ra + 8;
        float mx_a = -INFINITY, mx_b = -INFINITY;
        if (full) {
#pragma unroll
          for (int nt = 0; nt < BK / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) sc[mt][nt][e] *= p.scale_log2;
            mx_a = fmaxf(mx_a, fmaxf(sc[mt][nt][0], sc[mt][nt][1]));
            mx_b = fmaxf(mx_b, fmaxf(sc[mt][nt][2], sc[mt][nt][3]));
          }
        } else {
          const int lo_a = key_lo(p, ra), hi_a = ra < L ? key_hi(p, ra, L) : -1;
          const int lo_b = key_lo(p, rb), hi_b = rb < L ? key_hi(p, rb, L) : -1;
#pragma unroll
          for (int nt = 0; nt < BK / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
              const int key = k0 + nt * 8 + tq * 2 + (e & 1);
              const bool vis = e < 2 ? (key >= lo_a && key <= hi_a) : (key >= lo_b && key <= hi_b);
              const float x = vis ? sc[mt][nt][e] * p.scale_log2 : -INFINITY;
              sc[mt][nt][e] = x;
              if (e < 2) mx_a = fmaxf(mx_a, x);
              else mx_b = fmaxf(mx_b, x);
            }
          }
        }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        const float mn_a = fmaxf(m[mt][0], mx_a), mn_b = fmaxf(m[mt][1], mx_b);
        // A row that has seen no visible key keeps m = -inf; exponentiate against 0 instead so
        // that exp2(-inf - ref) = 0 rather than NaN.
        const float ref_a = mn_a == -INFINITY ? 0.f : mn_a, ref_b = mn_b == -INFINITY ? 0.f : mn_b;
        const float alpha_a = ex2(m[mt][0] - ref_a), alpha_b = ex2(m[mt][1] - ref_b);
        m[mt][0] = mn_a;
        m[mt][1] = mn_b;
        l[mt][0] *= alpha_a;
        l[mt][1] *= alpha_b;
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt++) {
          o[mt][dt][0] *= alpha_a;
          o[mt][dt][1] *= alpha_a;
          o[mt][dt][2] *= alpha_b;
          o[mt][dt][3] *= alpha_b;
        }
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++) {
          sc[mt][nt][0] = ex2(sc[mt][nt][0] - ref_a);
          sc[mt][nt][1] = ex2(sc[mt][nt][1] - ref_a);
          sc[mt][nt][2] = ex2(sc[mt][nt][2] - ref_b);
          sc[mt][nt][3] = ex2(sc[mt][nt][3] - ref_b);
          l[mt][0] += sc[mt][nt][0] + sc[mt][nt][1];  // partial row sums; the 4 lanes are combined at the end
          l[mt][1] += sc[mt][nt][2] + sc[mt][nt][3];
        }
      }

      // O += P V: P (16 MT x 64 keys) from the S registers; B[k=key][n=d] = V[key][d], row-major
      // in shared memory, so its fragments come from the transposing ldmatrix (two d tiles per load).
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) pack_c_as_a<T>(sc[mt][2 * kk], sc[mt][2 * kk + 1], pa[mt]);
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt += 2) {
          uint32_t b[4];
          ldsm_x4_t(b, frag_a_rows(sV, LDS, kk * 16, dt * 8, lane));
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            mma16816<T>(o[mt][dt], pa[mt], b[0], b[1]);
            mma16816<T>(o[mt][dt + 1], pa[mt], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next prefetch overwrites it
  }

  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      float lsum = l[mt][half];
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
      const int r = w0 + mt * 16 + g + 8 * half;
      if (r >= L) continue;
      const float inv = lsum > 0.f ? 1.f / lsum : 0.f;
      const int64_t row = int64_t(t0 + r) * p.Hq + h;
      T* orow = out + row * p.D;
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt++) {
        const int c = dt * 8 + tq * 2;
        if ((p.D & 1) == 0 && c < p.D) {  // even D: 4-byte aligned pairs
          *reinterpret_cast<uint32_t*>(orow + c) = pack_f2<T>(o[mt][dt][2 * half] * inv, o[mt][dt][2 * half + 1] * inv);
        } else {
          if (c < p.D) orow[c] = from_f<T>(o[mt][dt][2 * half] * inv);
          if (c + 1 < p.D) orow[c + 1] = from_f<T>(o[mt][dt][2 * half + 1] * inv);
        }
      }
      // lse = ln(sum_j exp(scale s_j)) = ln(2^m * l) = m ln2 + ln l.
      if (tq == 0) p.lse[row] = lsum > 0.f ? m[mt][half] * kLn2 + logf(lsum) : INFINITY;
    }
  }
}

// ---- CUDA cores -----------------------------------------------------------------------------
constexpr int kMaxD = 256, kPerLane = kMaxD / 32;

template <class T>
__global__ void __launch_bounds__(kThreads) fwd_generic_kernel(const Params p) {
  __shared__ float sq[kThreads / 32][kMaxD];
  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = blockIdx.x * (kThreads / 32) + warp;  // this warp's query (local)
  if (r >= L) return;  // warp-uniform; only __syncwarp below
  const int h = blockIdx.y, hk = h / p.group, D = p.D;
  const T* q = static_cast<const T*>(p.q) + int64_t(t0 + r) * p.q_st + int64_t(h) * p.q_sh;
  for (int d = lane; d < D; d += 32) sq[warp][d] = to_f(q[d]);
  __syncwarp();
  const T* kb = static_cast<const T*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const T* vb = static_cast<const T*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;
  const int lo = key_lo(p, r), hi = key_hi(p, r, L);
  float o[kPerLane] = {};
  float m = -INFINITY, l = 0.f;
  for (int c0 = lo; c0 <= hi; c0 += 32) {
    const int j = c0 + lane;
    float x = -INFINITY;
    if (j <= hi) {
      const T* kr = kb + int64_t(j) * p.k_st;
      float dot = 0.f;
      for (int d = 0; d < D; d++) dot += sq[warp][d] * to_f(kr[d]);
      x = dot * p.scale_log2;
    }
    const float mn = fmaxf(m, warp_max(x));  // finite: key c0 is visible
    const float alpha = exp2f(m - mn);
    const float pj = exp2f(x - mn);
    l = l * alpha + warp_sum(pj);
    m = mn;
#pragma unroll
    for (int c = 0; c < kPerLane; c++) o[c] *= alpha;
    const int nvalid = min(32, hi - c0 + 1);
    for (int jj = 0; jj < nvalid; jj++) {
      const float w = __shfl_sync(0xffffffffu, pj, jj);
      const T* vr = vb + int64_t(c0 + jj) * p.v_st;
#pragma unroll
      for (int c = 0; c < kPerLane; c++) {
        const int d = lane + 32 * c;
        if (d < D) o[c] += w * to_f(vr[d]);
      }
    }
  }
  const int64_t row = int64_t(t0 + r) * p.Hq + h;
  T* orow = static_cast<T*>(p.out) + row * D;
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int c = 0; c < kPerLane; c++) {
    const int d = lane + 32 * c;
    if (d < D) orow[d] = from_f<T>(o[c] * inv);
  }
  if (lane == 0) p.lse[row] = l > 0.f ? m * kLn2 + logf(l) : INFINITY;
}

template <class K>
void launch_seq_chunks(K kernel, const Params& p_in, int num_seqs, dim3 grid_xy, size_t smem) {
  Params p = p_in;
  for (int s0 = 0; s0 < num_seqs; s0 += 65535) {
    p.seq_offset = s0;
    const dim3 grid(grid_xy.x, grid_xy.y, unsigned(std::min(65535, num_seqs - s0)));
    kernel<<<grid, kThreads, smem, current_stream()>>>(p);
    LMF_CUDA_CHECK_LAUNCH();
  }
}

template <class T, int kD, int kMT>
void launch_tc(const Params& p, int num_seqs, int max_seqlen) {
  using Sh = FwdShape<kD, kMT>;
  auto kernel = fwd_tc_kernel<T, kD, kMT>;
  // Beyond the 48 KiB default for D = 128: opt in once per instantiation (lmforge drives one
  // device per process).
  static const bool configured = [&] {
    LMF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Sh::smem_bytes)));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned((max_seqlen + Sh::BQ - 1) / Sh::BQ), unsigned(p.Hq), 1);
  launch_seq_chunks(kernel, p, num_seqs, grid, Sh::smem_bytes);
}

}  // namespace

void launch_forward(const Params& p, DType dtype, int num_seqs, int max_seqlen) {
  if (num_seqs == 0 || max_seqlen == 0) return;
  if (use_tensor_cores(dtype, p.D)) {
    auto go = [&]<class T>() {
      if (p.D <= 32) launch_tc<T, 32, 2>(p, num_seqs, max_seqlen);
      else if (p.D <= 64) launch_tc<T, 64, 2>(p, num_seqs, max_seqlen);
      else launch_tc<T, 128, 1>(p, num_seqs, max_seqlen);
    };
    if (dtype == DType::f16) go.template operator()<__half>();
    else go.template operator()<__nv_bfloat16>();
    return;
  }
  const dim3 grid(unsigned((max_seqlen + kThreads / 32 - 1) / (kThreads / 32)), unsigned(p.Hq), 1);
  dispatch_floating(dtype, "attention_forward", [&]<class T>() {
    launch_seq_chunks(fwd_generic_kernel<T>, p, num_seqs, grid, 0);
  });
}

}  // namespace lmf::cuda::attn
