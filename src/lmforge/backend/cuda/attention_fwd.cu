// CUDA attention forward (contract in backend/kernel_list.inc, semantics in ops/attention.h).
//
// Tensor-core path (bf16/f16, D <= 128; FlashAttention-2 forward, Dao 2023, Algorithm 1):
// one block of 4 warps per (64-query tile, head, sequence); each warp owns 16 query rows whose
// Q fragments stay in registers. The block walks the 64-key tiles that intersect its rows'
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
template <class T, int kD>
__global__ void __launch_bounds__(kThreads) fwd_tc_kernel(const Params p) {
  constexpr int BQ = 64, BK = 64, LDS = kD + 8;  // +8: rows start on different banks
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Two stages of K and V tiles: tile n + 1 is copied (cp.async) while tile n is used.
  uint16_t* const sK0 = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const sV0 = sK0 + BK * LDS;
  constexpr int kStage = 2 * BK * LDS;  // elements per stage

  const int s = blockIdx.z + p.seq_offset;
  const int t0 = p.cu[s], L = p.cu[s + 1] - t0;
  const int q0 = blockIdx.x * BQ;
  if (q0 >= L) return;  // whole block: no barrier has been reached yet
  const int h = blockIdx.y, hk = h / p.group;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int ra = q0 + warp * 16 + g, rb = ra + 8;  // this thread's two query rows (local)

  // Q fragments (A operand, 16 rows x kD) straight from global: once per block.
  const uint16_t* qbase = static_cast<const uint16_t*>(p.q) + int64_t(t0) * p.q_st + int64_t(h) * p.q_sh;
  auto qel = [&](int r, int c) -> uint16_t {
    return (r < L && c < p.D) ? qbase[int64_t(r) * p.q_st + c] : uint16_t(0);
  };
  uint32_t qf[kD / 16][4];
#pragma unroll
  for (int ks = 0; ks < kD / 16; ks++) {
    const int c = ks * 16 + tq * 2;
    qf[ks][0] = pack_u16(qel(ra, c), qel(ra, c + 1));
    qf[ks][1] = pack_u16(qel(rb, c), qel(rb, c + 1));
    qf[ks][2] = pack_u16(qel(ra, c + 8), qel(ra, c + 9));
    qf[ks][3] = pack_u16(qel(rb, c + 8), qel(rb, c + 9));
  }

  // Visible key ranges of the two rows (rows past the sequence see nothing).
  const int lo_a = key_lo(p, ra), hi_a = ra < L ? key_hi(p, ra, L) : -1;
  const int lo_b = key_lo(p, rb), hi_b = rb < L ? key_hi(p, rb, L) : -1;
  // Keys any row of the block sees: from the first row's lo to the last row's hi.
  const int qlast = min(q0 + BQ, L) - 1;
  const int kbeg = key_lo(p, q0), kend = key_hi(p, qlast, L);

  const uint16_t* kbase = static_cast<const uint16_t*>(p.k) + int64_t(t0) * p.k_st + int64_t(hk) * p.k_sh;
  const uint16_t* vbase = static_cast<const uint16_t*>(p.v) + int64_t(t0) * p.v_st + int64_t(hk) * p.v_sh;

  float o[kD / 8][4];
#pragma unroll
  for (int dt = 0; dt < kD / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;  // log2 domain

  if (kbeg <= kend) {
    load_tile_async<kD>(sK0, LDS, kbase, p.k_st, kbeg, BK, L, p.D, p.vec);
    load_tile_async<kD>(sV0, LDS, vbase, p.v_st, kbeg, BK, L, p.D, p.vec);
  }
  cp_async_commit();
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

    // S = Q K^T: 16 rows x 64 keys per warp, 8 accumulators of 16 x 8.
    float sc[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kD / 16; ks++) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; nt += 2) {  // B[k=d][n=key] = K[key][d]: two key tiles per ldmatrix
        uint32_t b[4];
        ldsm_x4(b, frag_b_rows(sK, LDS, nt * 8, ks * 16, lane));
        mma16816<T>(sc[nt], qf[ks], b[0], b[1]);
        mma16816<T>(sc[nt + 1], qf[ks], b[2], b[3]);
      }
    }

    // Mask and scale into the exp2 domain; row maxima over the 4 lanes sharing a row.
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = k0 + nt * 8 + tq * 2 + (e & 1);
        const bool vis = e < 2 ? (key >= lo_a && key <= hi_a) : (key >= lo_b && key <= hi_b);
        const float x = vis ? sc[nt][e] * p.scale_log2 : -INFINITY;
        sc[nt][e] = x;
        if (e < 2) mx_a = fmaxf(mx_a, x);
        else mx_b = fmaxf(mx_b, x);
      }
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    // A row that has seen no visible key keeps m = -inf; exponentiate against 0 instead so
    // that exp2(-inf - ref) = 0 rather than NaN.
    const float ref_a = mn_a == -INFINITY ? 0.f : mn_a, ref_b = mn_b == -INFINITY ? 0.f : mn_b;
    const float alpha_a = exp2f(m_a - ref_a), alpha_b = exp2f(m_b - ref_b);
    m_a = mn_a;
    m_b = mn_b;
    l_a *= alpha_a;
    l_b *= alpha_b;
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++) {
      o[dt][0] *= alpha_a;
      o[dt][1] *= alpha_a;
      o[dt][2] *= alpha_b;
      o[dt][3] *= alpha_b;
    }
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++) {
      sc[nt][0] = exp2f(sc[nt][0] - ref_a);
      sc[nt][1] = exp2f(sc[nt][1] - ref_a);
      sc[nt][2] = exp2f(sc[nt][2] - ref_b);
      sc[nt][3] = exp2f(sc[nt][3] - ref_b);
      l_a += sc[nt][0] + sc[nt][1];  // partial row sums; the 4 lanes are combined at the end
      l_b += sc[nt][2] + sc[nt][3];
    }

    // O += P V: P (16 x 64 keys) from the S registers; B[k=key][n=d] = V[key][d], row-major in
    // shared memory, so its fragments come from the transposing ldmatrix (two d tiles per load).
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t pa[4];
      pack_c_as_a<T>(sc[2 * kk], sc[2 * kk + 1], pa);
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt += 2) {
        uint32_t b[4];
        ldsm_x4_t(b, frag_a_rows(sV, LDS, kk * 16, dt * 8, lane));
        mma16816<T>(o[dt], pa, b[0], b[1]);
        mma16816<T>(o[dt + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before the next prefetch overwrites it
  }

  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = half ? rb : ra;
    if (r >= L) continue;
    const float inv = half ? inv_b : inv_a;
    const int64_t row = int64_t(t0 + r) * p.Hq + h;
    T* orow = out + row * p.D;
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++) {
      const int c = dt * 8 + tq * 2;
      if (c < p.D) orow[c] = from_f<T>(o[dt][2 * half] * inv);
      if (c + 1 < p.D) orow[c + 1] = from_f<T>(o[dt][2 * half + 1] * inv);
    }
    if (tq == 0) {
      const float l = half ? l_b : l_a, m = half ? m_b : m_a;
      // lse = ln(sum_j exp(scale s_j)) = ln(2^m * l) = m ln2 + ln l.
      p.lse[row] = l > 0.f ? m * kLn2 + logf(l) : INFINITY;
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

template <class T, int kD>
void launch_tc(const Params& p, int num_seqs, int max_seqlen) {
  constexpr int BQ = 64, BK = 64;
  constexpr size_t smem = size_t(2 * 2 * BK * (kD + 8)) * sizeof(uint16_t);  // 2 stages of K, V
  auto kernel = fwd_tc_kernel<T, kD>;
  // Beyond the 48 KiB default for D = 128: opt in once per instantiation (lmforge drives one
  // device per process).
  static const bool configured = [&] {
    LMF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned((max_seqlen + BQ - 1) / BQ), unsigned(p.Hq), 1);
  launch_seq_chunks(kernel, p, num_seqs, grid, smem);
}

}  // namespace

void launch_forward(const Params& p, DType dtype, int num_seqs, int max_seqlen) {
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
  const dim3 grid(unsigned((max_seqlen + kThreads / 32 - 1) / (kThreads / 32)), unsigned(p.Hq), 1);
  dispatch_floating(dtype, "attention_forward", [&]<class T>() {
    launch_seq_chunks(fwd_generic_kernel<T>, p, num_seqs, grid, 0);
  });
}

}  // namespace lmf::cuda::attn
