// Row walkers of the selective scan ("rows" implementation, the default): the forward kernel and
// the backward's preparation pass with the recurrence run sequentially in time, all N states of a
// channel held by NS-state slices in the registers of G adjacent lanes (NS * G = the padded N).
//
// Why: the chunk-parallel walkers (selective_scan_chunked.cuh) run every step twice (pass 1 / 2)
// and pay a fold, a y reduction over 4 lanes and per-step index math: ~26 instructions per
// (step, channel, state) where the recurrence needs ~5 (dt*A, ex2, dt*u*B, h, C*h). Here a
// thread owns NS consecutive states of one channel for the whole sequence:
//   - each step is one LDS.64 (dt, dt*u) and NS/4 broadcast LDS.128 of B and C (every lane of
//     the warp reads the same row), then NS x (FMUL, MUFU.EX2, FMUL, FFMA, FFMA);
//   - y_t = sum_n h C stays in registers (G = 1) or is reduced over G lanes 8 steps at a time;
//   - document starts are one 32-bit mask per chunk, uniform over the block (one batch row), so
//     chunks without a start take a path without any per-state select.
// G is a launch choice (rows_groups): the time is L x NS steps per warp whatever G, so more lanes
// per channel mean more warps and a better-filled GPU at the price of more loads and shuffles.
//
// Block: kRC = 32 channels of one batch row, 32 * G threads; thread (cl, g) = (tid / G, tid % G)
// owns channel d0 + cl and states g * NS .. g * NS + NS - 1. Chunks of kCS = 32 steps are staged
// (double-buffered cp.async) exactly as for the chunked walkers; phase A turns them into (dt,
// dt*u) [and the gated dL/dy] once per element and B / C into fp32, phase C (forward) writes
// out = (y + D u) silu(z) coalesced.
#pragma once

#include "lmforge/backend/cuda/selective_scan_grad.cuh"

namespace lmf::cuda::scan {

constexpr int kRC = 32;  // channels per row-walker block (= lane in the element-wise phases)
// Row stride of the forward's y buffer, odd: the y rows one store instruction writes (lanes of
// different g, base rows 32 / G apart) fall on different banks (stride 32: one bank, G-way).
constexpr int kRYS = kRC + 1;

template <int NS, int G>
struct Rows {
  static constexpr int kNPad = NS * G;
  static constexpr int kThreads = kRC * G;
  static_assert(NS == 2 || NS % 4 == 0, "state slices are float2 or whole float4s");
  static_assert(G == 1 || G == 2 || G == 4 || G == 8, "lanes per channel");
};

// Shared memory: two stage buffers, (dt, dt*u) [kCS][kRC], y (forward, row stride kRYS) or gy (preparation)
// [kCS][kRC], B and C in fp32 [kCS][kNPad], the document-start mask.
template <class T, int NS, int G, bool kPrep>
struct RowsLayout {
  static constexpr int kNPad = NS * G;
  using Stage = StageLayout<T, kRC, kNPad, kPrep ? 4 : 3, 2>;
  static constexpr int kDtuOff = 2 * Stage::kBytes;
  static constexpr int kYOff = kDtuOff + align16(kCS * kRC * 8);
  static constexpr int kBOff = kYOff + align16(kCS * kRYS * 4);
  static constexpr int kCOff = kBOff + align16(kCS * kNPad * 4);
  static constexpr int kMaskOff = kCOff + align16(kCS * kNPad * 4);
  static constexpr int kBytes = kMaskOff + 16;
  static_assert(kBytes <= 227 * 1024, "row walker shared memory exceeds the per-block limit");
};

// NS consecutive floats of shared memory (16-byte aligned for NS % 4 == 0, else 8-byte).
template <int NS>
__device__ __forceinline__ void ld_slice(const float* src, float (&o)[NS]) {
  if constexpr (NS % 4 == 0) {
#pragma unroll
    for (int q = 0; q < NS / 4; q++) {
      const float4 v = ld4(src + 4 * q);
      o[4 * q] = v.x;
      o[4 * q + 1] = v.y;
      o[4 * q + 2] = v.z;
      o[4 * q + 3] = v.w;
    }
  } else {
    const float2 v = *reinterpret_cast<const float2*>(src);
    o[0] = v.x;
    o[1] = v.y;
  }
}
// The same for global memory stores / loads of an NS slice.
template <int NS>
__device__ __forceinline__ void st_slice(float* dst, const float (&v)[NS]) {
  if constexpr (NS % 4 == 0) {
#pragma unroll
    for (int q = 0; q < NS / 4; q++)
      *reinterpret_cast<float4*>(dst + 4 * q) = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
  } else {
    *reinterpret_cast<float2*>(dst) = make_float2(v[0], v[1]);
  }
}

// A * log2(e) of this thread's states g * NS + i (0 past N or D), A = -exp(A_log).
template <int NS>
__device__ __forceinline__ void load_A2_slice(const ScanParams& p, int d, int g, float (&A2)[NS]) {
#pragma unroll
  for (int i = 0; i < NS; i++) {
    const int n = g * NS + i;
    A2[i] = (d < p.D && n < p.N) ? -expf(p.A_log[int64_t(d) * p.N + n]) * kLog2e : 0.f;
  }
}

// Phase A of a row walker: (dt, dt*u), preparing also gy = dout * silu(z) (dout without z), for
// the [kCS][kRC] elements (channel = lane: blockDim is a multiple of 32); B, C to fp32; the mask.
// `full`: the tile is whole (kCS rows, kRC channels, vector-copyable activations): two channels
// per thread without bounds checks (phase_a_full, bias pair bias2); otherwise one element per
// thread with checks (bias_e of channel d0 + lane).
template <class T, int NS, int G, bool kPrep>
__device__ __forceinline__ void rows_phase_a(const ScanParams& p, const char* buf, float2* s_dtu, float* s_gy,
                                             float* s_B, float* s_C, uint32_t* s_mask, int t0, int rows,
                                             bool ce_ok, float bias_e, bool full, float2 bias2) {
  using SL = typename RowsLayout<T, NS, G, kPrep>::Stage;
  constexpr int kNPad = NS * G;
  const T* su = SL::act(const_cast<char*>(buf), 0);
  const T* sdl = SL::act(const_cast<char*>(buf), 1);
  const T* sz = SL::act(const_cast<char*>(buf), 2);
  const T* sdo = SL::act(const_cast<char*>(buf), kPrep ? 3 : 0);
  if (full) {
    phase_a_full<T, Rows<NS, G>::kThreads, kPrep>(su, sdl, sz, sdo, s_dtu, s_gy, bias2, p.softplus,
                                                   p.z != nullptr);
  } else {
    for (int e = threadIdx.x; e < kCS * kRC; e += blockDim.x) {
      const int t = e / kRC;
      float2 v = make_float2(0.f, 0.f);
      float gy = 0.f;
      if (t < rows && ce_ok) {
        v = dt_dtu(to_f(sdl[e]), bias_e, to_f(su[e]), p.softplus);
        if constexpr (kPrep) {
          gy = to_f(sdo[e]);
          if (p.z) {
            const float zz = to_f(sz[e]);
            gy *= zz * sigmoid_f(zz);
          }
        }
      }
      s_dtu[e] = v;
      if constexpr (kPrep) s_gy[e] = gy;
    }
  }
  (void)sz;
  (void)sdo;
  (void)s_gy;
  if (p.N == kNPad) {
    convert_bc_full<T, kNPad>(s_B, SL::bc(const_cast<char*>(buf), 0));
    convert_bc_full<T, kNPad>(s_C, SL::bc(const_cast<char*>(buf), 1));
  } else {
    convert_bc<T, kNPad>(s_B, SL::bc(const_cast<char*>(buf), 0), p.N);
    convert_bc<T, kNPad>(s_C, SL::bc(const_cast<char*>(buf), 1), p.N);
  }
  if (p.seq && threadIdx.x < 32) {
    const uint32_t m = doc_start_mask(SL::seq(const_cast<char*>(buf)), t0, p.L);
    if (threadIdx.x == 0) *s_mask = m;
  }
}

// Forward: the 32 steps of one chunk from the carried h; y of the channel to s_y [kCS][kRC].
// The partial sums of y stay in registers for the whole chunk and are reduced over the G lanes
// once at its end (same shuffle count as per 8 steps, but no shuffle or shared store inside the
// step sequence, so the compiler can hoist the loads and exps of later steps freely; the shared
// pointers are __restrict__ for the same reason).
template <int NS, int G, bool kReset>
__device__ __forceinline__ void rows_fwd_chunk(const float2* __restrict__ s_dtu, const float* __restrict__ s_B,
                                               const float* __restrict__ s_C, float* __restrict__ s_y,
                                               uint32_t mask, const float (&A2)[NS], float (&h)[NS], int cl,
                                               int g, int lane) {
  constexpr int kNPad = NS * G;
  constexpr int kAcc = NS >= 8 ? 2 : 1;  // independent partial sums of C h (shorter FMA chains)
  float yv[kCS];
#pragma unroll
  for (int t = 0; t < kCS; t++) {
    const float2 dd = s_dtu[t * kRC + cl];
    float bb[NS], cc[NS];
    ld_slice<NS>(s_B + t * kNPad + g * NS, bb);
    ld_slice<NS>(s_C + t * kNPad + g * NS, cc);
    float acc[kAcc];
#pragma unroll
    for (int k = 0; k < kAcc; k++) acc[k] = 0.f;
#pragma unroll
    for (int i = 0; i < NS; i++) {
      float a = exp2_approx(dd.x * A2[i]);
      if constexpr (kReset) a = ((mask >> t) & 1u) ? 0.f : a;
      h[i] = fmaf(a, h[i], dd.y * bb[i]);
      acc[i % kAcc] = fmaf(h[i], cc[i], acc[i % kAcc]);
    }
    yv[t] = kAcc == 2 ? acc[0] + acc[kAcc - 1] : acc[0];
  }
  if constexpr (G == 1) {
#pragma unroll
    for (int t = 0; t < kCS; t++) s_y[t * kRYS + cl] = yv[t];
  } else {
    using Red = LaneReduce<kCS, G / 2, 1>;
    int base = 0;
    Red::run(yv, lane, base);
    if ((lane & Red::kWriterMask) == 0) {
#pragma unroll
      for (int j = 0; j < Red::kOut; j++) s_y[(base + j) * kRYS + cl] = yv[j];
    }
  }
  (void)lane;
}

// Forward: grid (ceil(D / kRC), B), Rows<NS, G>::kThreads threads, RowsLayout::kBytes shared.
template <class T, int NS, int G>
__global__ void __launch_bounds__(Rows<NS, G>::kThreads) scan_fwd_rows_kernel(ScanParams p) {
  using LY = RowsLayout<T, NS, G, false>;
  using SL = typename LY::Stage;
  constexpr int kNPad = NS * G;
  extern __shared__ __align__(16) char smem[];
  float2* s_dtu = reinterpret_cast<float2*>(smem + LY::kDtuOff);
  float* s_y = reinterpret_cast<float*>(smem + LY::kYOff);
  float* s_B = reinterpret_cast<float*>(smem + LY::kBOff);
  float* s_C = reinterpret_cast<float*>(smem + LY::kCOff);
  uint32_t* s_mask = reinterpret_cast<uint32_t*>(smem + LY::kMaskOff);

  const int tid = threadIdx.x, lane = tid & 31;
  const int b = blockIdx.y, d0 = blockIdx.x * kRC;
  const int cl = tid / G, g = tid - cl * G, d = d0 + cl;
  const int ce = lane;  // element-wise phases: channel d0 + lane
  const bool ce_ok = d0 + ce < p.D;
  const float bias_e = (p.delta_bias.p && ce_ok) ? p.delta_bias[d0 + ce] : 0.f;
  const float D_e = (p.Dskip.p && ce_ok) ? p.Dskip[d0 + ce] : 0.f;
  // Full tiles (every chunk but a tail, when the block's 32 channels exist): two channels per
  // thread in the element-wise phases, channels cp, cp + 1.
  const bool full_cols = p.vec_act && d0 + kRC <= p.D;
  const int cp = (2 * tid) & (kRC - 1);
  const float2 bias2 = (p.delta_bias.p && full_cols)
                           ? make_float2(p.delta_bias[d0 + cp], p.delta_bias[d0 + cp + 1]) : make_float2(0.f, 0.f);
  const float2 D2 = (p.Dskip.p && full_cols) ? make_float2(p.Dskip[d0 + cp], p.Dskip[d0 + cp + 1])
                                             : make_float2(0.f, 0.f);
  const bool has_z = p.z != nullptr;
  float A2[NS];
  load_A2_slice<NS>(p, d, g, A2);
  constexpr int kNT = Rows<NS, G>::kThreads;
  const StageOffsets so = stage_offsets<T, kRC, kNT>(p.D);
  auto stage = [&](char* dst, int t0s) {
    stage_chunk_full<T, kRC, kNPad, 3, 2, kNT>(dst, p, b, t0s, d0, so, full_cols && t0s + kCS <= p.L,
                                               p.vec_bc && t0s + kCS <= p.L);
  };

  float h[NS];
#pragma unroll
  for (int i = 0; i < NS; i++) h[i] = 0.f;
  const int64_t row = int64_t(b) * p.L;
  stage(smem, 0);
  cp_async_commit();
  for (int c = 0; c < p.nc; c++) {
    char* buf = smem + (c & 1) * SL::kBytes;
    const int t0 = c * kCS, rows = min(kCS, p.L - t0);
    cp_async_wait_all();
    __syncthreads();  // chunk c landed; every thread is past phase C of chunk c - 1
    if (c + 1 < p.nc) stage(smem + ((c + 1) & 1) * SL::kBytes, t0 + kCS);
    cp_async_commit();

    const bool full = full_cols && rows == kCS;
    rows_phase_a<T, NS, G, false>(p, buf, s_dtu, nullptr, s_B, s_C, s_mask, t0, rows, ce_ok, bias_e, full,
                                  bias2);
    __syncthreads();
    const uint32_t mask = p.seq ? *s_mask : 0u;
    if (mask == 0u)
      rows_fwd_chunk<NS, G, false>(s_dtu, s_B, s_C, s_y, mask, A2, h, cl, g, lane);
    else
      rows_fwd_chunk<NS, G, true>(s_dtu, s_B, s_C, s_y, mask, A2, h, cl, g, lane);
    __syncthreads();

    // Phase C: out = (y + D u) * silu(z), stored coalesced (channel = lane).
    const T* su = SL::act(buf, 0);
    const T* sz = SL::act(buf, 2);
    T* out = static_cast<T*>(p.out) + (row + t0) * p.D + d0;
    if (full) {
#pragma unroll
      for (int it = 0; it < kCS * kRC / 2 / Rows<NS, G>::kThreads; it++) {
        const int e = 2 * (it * Rows<NS, G>::kThreads + tid), t = e / kRC;  // channels cp, cp + 1
        const float2 uu = ld2(su + e);
        float y0 = fmaf(D2.x, uu.x, s_y[t * kRYS + cp]), y1 = fmaf(D2.y, uu.y, s_y[t * kRYS + cp + 1]);
        if (has_z) {
          const float2 zz = ld2(sz + e);
          y0 *= zz.x * sigmoid_ftz(zz.x);
          y1 *= zz.y * sigmoid_ftz(zz.y);
        }
        st2(out + t * p.D + cp, y0, y1);
      }
      continue;
    }
    for (int e = tid; e < kCS * kRC; e += blockDim.x) {
      const int t = e / kRC;
      if (t < rows && ce_ok) {
        float y = s_y[t * kRYS + ce];
        if (p.Dskip.p) y = fmaf(D_e, to_f(su[e]), y);
        if (p.z) {
          const float zz = to_f(sz[e]);
          y *= zz * sigmoid_f(zz);
        }
        out[int64_t(t) * p.D + ce] = from_f<T>(y);
      }
    }
  }
  if (p.final_state && d < p.D) {
#pragma unroll
    for (int i = 0; i < NS; i++) {
      const int n = g * NS + i;
      if (n < p.N) p.final_state[(int64_t(b) * p.D + d) * p.N + n] = h[i];
    }
  }
}

// Preparation: the chunk's 32 steps: states h and the segment's running (P, G) (see
// selective_scan_chunked.cuh for what they summarize).
template <int NS, int G, bool kReset>
__device__ __forceinline__ void rows_prep_chunk(const float2* __restrict__ s_dtu, const float* __restrict__ s_gy,
                                                const float* __restrict__ s_B, const float* __restrict__ s_C,
                                                uint32_t mask, const float (&A2)[NS], float (&h)[NS],
                                                float (&P)[NS], float (&Gs)[NS], float* hsub, int64_t col,
                                                bool own_ok, int cl, int g) {
  constexpr int kNPad = NS * G;
#pragma unroll(NS <= 4 ? kCS : kSC)
  for (int t = 0; t < kCS; t++) {
    if (t % kSC == 0 && own_ok) st_slice<NS>(hsub + (t / kSC) * col, h);  // h entering sub-chunk t / kSC
    const float2 dd = s_dtu[t * kRC + cl];
    const float gy = s_gy[t * kRC + cl];
    float bb[NS], cc[NS];
    ld_slice<NS>(s_B + t * kNPad + g * NS, bb);
    ld_slice<NS>(s_C + t * kNPad + g * NS, cc);
#pragma unroll
    for (int i = 0; i < NS; i++) {
      float a = exp2_approx(dd.x * A2[i]);
      if constexpr (kReset) a = ((mask >> t) & 1u) ? 0.f : a;
      P[i] *= a;  // prod of the decays up to and including t
      Gs[i] = fmaf(P[i], gy * cc[i], Gs[i]);
      h[i] = fmaf(a, h[i], dd.y * bb[i]);
    }
  }
}

// Backward preparation with the row walker: grid (ceil(D / kRC), B), Rows<NS, G>::kThreads
// threads. Writes p.hstart for every 8-step sub-chunk (p.sub_starts: [B, nc * kNSub, D, kNPad],
// so the gradient pass stages them instead of re-walking 24 steps per chunk), per segment p.segP
// and the carry p.segG, in the layout of the chunked preparation ([B, *, D, kNPad] with state n
// at position n).
template <class T, int NS, int G>
__global__ void __launch_bounds__(Rows<NS, G>::kThreads) scan_bwd_prep_rows_kernel(ScanParams p) {
  using LY = RowsLayout<T, NS, G, true>;
  using SL = typename LY::Stage;
  constexpr int kNPad = NS * G;
  extern __shared__ __align__(16) char smem[];
  float2* s_dtu = reinterpret_cast<float2*>(smem + LY::kDtuOff);
  float* s_gy = reinterpret_cast<float*>(smem + LY::kYOff);
  float* s_B = reinterpret_cast<float*>(smem + LY::kBOff);
  float* s_C = reinterpret_cast<float*>(smem + LY::kCOff);
  uint32_t* s_mask = reinterpret_cast<uint32_t*>(smem + LY::kMaskOff);

  const int tid = threadIdx.x, lane = tid & 31;
  const int b = blockIdx.y, d0 = blockIdx.x * kRC;
  const int cl = tid / G, g = tid - cl * G, d = d0 + cl;
  const bool ce_ok = d0 + lane < p.D;
  const float bias_e = (p.delta_bias.p && ce_ok) ? p.delta_bias[d0 + lane] : 0.f;
  const bool full_cols = p.vec_act && d0 + kRC <= p.D;
  const int cp = (2 * tid) & (kRC - 1);  // channels of the two-channel element-wise path
  const float2 bias2 = (p.delta_bias.p && full_cols)
                           ? make_float2(p.delta_bias[d0 + cp], p.delta_bias[d0 + cp + 1]) : make_float2(0.f, 0.f);
  float A2[NS];
  load_A2_slice<NS>(p, d, g, A2);
  const bool own_ok = d < p.D;
  const int64_t own = int64_t(d) * kNPad + g * NS;  // this thread's slice of a [*, D, kNPad] slice
  const int64_t col = int64_t(p.D) * kNPad;

  float h[NS], P[NS], Gs[NS];
#pragma unroll
  for (int i = 0; i < NS; i++) {
    h[i] = 0.f;
    P[i] = 1.f;
    Gs[i] = 0.f;
  }
  constexpr int kNT = Rows<NS, G>::kThreads;
  const StageOffsets so = stage_offsets<T, kRC, kNT>(p.D);
  auto stage = [&](char* dst, int t0s) {
    stage_chunk_full<T, kRC, kNPad, 4, 2, kNT>(dst, p, b, t0s, d0, so, full_cols && t0s + kCS <= p.L,
                                               p.vec_bc && t0s + kCS <= p.L);
  };
  stage(smem, 0);
  cp_async_commit();
  for (int c = 0; c < p.nc; c++) {
    char* buf = smem + (c & 1) * SL::kBytes;
    const int t0 = c * kCS, rows = min(kCS, p.L - t0);
    cp_async_wait_all();
    __syncthreads();  // chunk c landed; every thread is past the steps of chunk c - 1
    if (c + 1 < p.nc) stage(smem + ((c + 1) & 1) * SL::kBytes, t0 + kCS);
    cp_async_commit();

    rows_phase_a<T, NS, G, true>(p, buf, s_dtu, s_gy, s_B, s_C, s_mask, t0, rows, ce_ok, bias_e,
                                 full_cols && rows == kCS, bias2);
    __syncthreads();
    const uint32_t mask = p.seq ? *s_mask : 0u;
    float* hsub = p.hstart + (int64_t(b) * p.nc + c) * kNSub * col + own;  // [B, nc * kNSub, D, kNPad]
    if (mask == 0u)
      rows_prep_chunk<NS, G, false>(s_dtu, s_gy, s_B, s_C, mask, A2, h, P, Gs, hsub, col, own_ok, cl, g);
    else
      rows_prep_chunk<NS, G, true>(s_dtu, s_gy, s_B, s_C, mask, A2, h, P, Gs, hsub, col, own_ok, cl, g);
    if ((c + 1) % p.seg_chunks == 0 || c + 1 == p.nc) {
      const int seg = c / p.seg_chunks;
      if (own_ok) {
        st_slice<NS>(p.segP + (int64_t(b) * p.nseg + seg) * col + own, P);
        st_slice<NS>(p.segG + (int64_t(b) * p.nseg + seg) * col + own, Gs);
      }
#pragma unroll
      for (int i = 0; i < NS; i++) {
        P[i] = 1.f;
        Gs[i] = 0.f;
      }
    }
  }
  if (own_ok) {
    const int64_t base = int64_t(b) * p.nseg * col + own;
    if constexpr (NS % 4 == 0) {
#pragma unroll
      for (int q = 0; q < NS / 4; q++) sweep_segments<4>(p.segP, p.segG, base + 4 * q, col, p.nseg);
    } else {
#pragma unroll
      for (int q = 0; q < NS; q++) sweep_segments<1>(p.segP, p.segG, base + q, col, p.nseg);
    }
  }
  pdl_launch_dependents();  // the gradient pass may start its prologue (it waits for our writes)
}

// Lanes per channel G of the row walkers for this problem (NS = npad / G states per thread):
// LMF_SCAN_ROWS_G=1|2|4|8 forces it when valid; otherwise the smallest G (least per-state
// overhead) that puts at least 11 warps on every SM (latency hiding), else the largest.
int rows_groups(const ScanParams& p, int npad);

// "chunked" (the chunk-parallel walkers, selective_scan_chunked.cuh) or "rows" (this file):
// LMF_SCAN_IMPL=chunked|rows forces it; otherwise rows when the largest G reaches 5 warps per
// SM, else chunked (too few channels and rows: the chunk walker's time parallelism wins).
bool use_rows_impl(const ScanParams& p);

// Launch the row-walker forward / preparation for activation dtype t (selective_scan_rows.cu);
// p as for the chunked walkers (the preparation needs hstart, segP, segG, seg_chunks, nseg).
void launch_rows_forward(const ScanParams& p, DType t);
void launch_rows_prep(const ScanParams& p, DType t);

}  // namespace lmf::cuda::scan
