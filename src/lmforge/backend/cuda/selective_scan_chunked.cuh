// Chunk walkers of the selective scan: the forward kernel and the backward's preparation pass.
// Both walk the sequence of one batch row b and a tile of kTF = 16 channels chunk by chunk
// (kCS = 32 steps), carrying the state from chunk to chunk, with the chunk itself scanned in
// parallel over time.
//
// Threads: W time rows (W = 1 or 4) of kTF * G threads; thread (w, cl, g) owns channel d0 + cl,
// states 4g..4g+3 and, within each chunk, the kT = 32 / W consecutive steps
// [w kT, (w + 1) kT). With W = 1 that is the plain sequential recurrence. With W = 4 the chunk is
// an associative scan of the pairs (a_t, b_t) = (exp(dt_t A), dt_t u_t B_t), whose composition
// is (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2) (a document start makes a_t = 0):
//   pass 1  each thread folds its kT steps from h = 0: P = prod a, H = the local end state; the
//           decays a_t stay in registers (the SFU exp is the bottleneck: computed once);
//   fold    thread k (one per (channel, state) of the block) composes the W summaries of its
//           state in time order starting from the carried state: the state entering every row,
//           and the state leaving the chunk (the next chunk's carry);
//   pass 2  each thread re-runs its kT steps from its true entering state with the stored a_t
//           (two FMAs per step and state) and produces y_t = sum_n h_t C_t.
// W is picked per launch: 4 unless the grid alone already fills the GPU (walker_rows).
//
// The forward kernel writes out (and final_state). The preparation kernel (backward) writes the
// state entering every chunk (hstart) and, per segment of seg_chunks chunks, the summary of the
// backward flow of dL/dh through it: with g_t = dL/dh_t (all paths), the reverse recurrence
// g_t = gy_t C_t + a_{t+1} g_{t+1} (gy = dL/dy) is the same linear scan run backwards, and the
// dL/dh flowing out of a segment [t_s, t_e] into step t_s - 1 is
//   a_{t_s} g_{t_s} = G + P * (a_{t_e + 1} g_{t_e + 1}),  G = sum_j (prod_{t_s <= k <= j} a_k) gy_j C_j,
// with P = prod a_k the same product as the forward's. G is accumulated in forward time order
// alongside the states, and a final sweep over the segments from last to first turns (P, G) into
// the carry entering each segment from the right (stored over G). The gradient kernel then
// processes all segments in parallel.
#pragma once

#include "lmforge/backend/cuda/selective_scan_common.cuh"

namespace lmf::cuda::scan {

constexpr int kTF = 16;  // channels per walker block

template <int G, int W>
struct Walker {
  static constexpr int kNPad = 4 * G;
  static constexpr int kRow = kTF * G;  // threads of one time row
  static constexpr int kThreads = kRow * W;
  static constexpr int kT = kCS / W;           // steps per thread and chunk
  static constexpr int kStates = kTF * kNPad;  // (channel, state) pairs of the block
  static_assert(W == 1 || W == 4, "one or four time rows");
  static_assert(kRow % 32 == 0, "a time row is whole warps (g-lane shuffles, uniform reset branches)");
  static_assert(W == 1 || kThreads == kStates, "the fold maps thread k to (channel, state) k");
  static_assert(kT % 8 == 0, "y is reduced over the g-lanes 8 steps at a time");
};

// Shared memory of a walker: two stage buffers, then dt/dt*u, gy (preparation) or y (forward),
// B and C in fp32, the W row summaries (P, H and, preparing, G), the document-start mask.
template <class T, int G, int W, bool kPrep>
struct WalkLayout {
  static constexpr int kNPad = 4 * G;
  static constexpr int kNAct = kPrep ? 4 : 3;  // u, delta, z, [dout]
  using Stage = StageLayout<T, kTF, kNPad, kNAct, 2>;
  static constexpr int kNSum = W == 1 ? 0 : (kPrep ? 3 : 2);
  static constexpr int kDtuOff = 2 * Stage::kBytes;                 // float2 [kCS][kTF]
  static constexpr int kGyOff = kDtuOff + align16(kCS * kTF * 8);   // float [kCS][kTF]
  static constexpr int kBOff = kGyOff + align16(kCS * kTF * 4);     // float [kCS][kNPad]
  static constexpr int kCOff = kBOff + align16(kCS * kNPad * 4);    // float [kCS][kNPad]
  static constexpr int kSumOff = kCOff + align16(kCS * kNPad * 4);  // float [kNSum][W][kTF * kNPad]
  static constexpr int kMaskOff = kSumOff + kNSum * W * kTF * kNPad * 4;
  static constexpr int kBytes = kMaskOff + 16;
  static_assert(kBytes <= 227 * 1024, "walker shared memory exceeds the per-block limit");
};

// Phase A of a chunk, each element once: s_dtu = (dt, dt*u); preparing, s_gy = dL/dy before
// the gate: dout * silu(z) (dout without z); B, C -> fp32 (zero-padded); the document starts.
template <class T, int G, int W, bool kPrep>
__device__ __forceinline__ void walker_phase_a(const ScanParams& p, char* buf, float2* s_dtu, float* s_gy,
                                               float* s_B, float* s_C, uint32_t* s_mask, int t0, int rows,
                                               int cols, int ce, float bias_e) {
  using SL = typename WalkLayout<T, G, W, kPrep>::Stage;
  const T* su = SL::act(buf, 0);
  const T* sdl = SL::act(buf, 1);
  const T* sz = SL::act(buf, 2);
  const T* sdo = SL::act(buf, kPrep ? 3 : 0);
  for (int e = threadIdx.x; e < kCS * kTF; e += blockDim.x) {  // e % kTF == ce: blockDim % kTF == 0
    const int t = e / kTF;
    float2 v = make_float2(0.f, 0.f);
    float gy = 0.f;
    if (t < rows && ce < cols) {
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
  (void)sz;
  (void)sdo;
  (void)s_gy;
  convert_bc<T, 4 * G>(s_B, SL::bc(buf, 0), p.N);
  convert_bc<T, 4 * G>(s_C, SL::bc(buf, 1), p.N);
  if (p.seq && threadIdx.x < 32) {
    const uint32_t m = doc_start_mask(SL::seq(buf), t0, p.L);
    if (threadIdx.x == 0) *s_mask = m;
  }
}

// y of 8 consecutive steps tb..tb+7 of channel cl: the per-thread partial sums yv are summed over
// the G g-lanes (transpose-reduce) and written to s_y [kCS][kTF].
template <int G>
__device__ __forceinline__ void store_y8(float (&yv)[8], float* s_y, int tb, int cl, int lane) {
  using Red = LaneReduce<8, G / 2, 1>;
  int base = 0;
  Red::run(yv, lane, base);
  if ((lane & Red::kWriterMask) == 0) {
#pragma unroll
    for (int j = 0; j < Red::kOut; j++) s_y[(tb + base + j) * kTF + cl] = yv[j];
  }
}

// ---- forward ----------------------------------------------------------------------------------
// W = 1: the 32 steps of the chunk from h (carried in registers), y to s_y.
template <int G, bool kReset>
__device__ __forceinline__ void fwd_chunk_sequential(const float2* s_dtu, const float* s_B, const float* s_C,
                                                     float* s_y, uint32_t mask, const float (&A2)[kNP],
                                                     float (&h)[kNP], int cl, int g, int lane) {
  constexpr int kNPad = 4 * G;
#pragma unroll
  for (int tb = 0; tb < kCS; tb += 8) {
    float yv[8];
#pragma unroll
    for (int jj = 0; jj < 8; jj++) {
      const int t = tb + jj;
      const float2 dd = s_dtu[t * kTF + cl];
      float bb[kNP], cc[kNP];
      unpack4(ld4(s_B + t * kNPad + 4 * g), bb);
      unpack4(ld4(s_C + t * kNPad + 4 * g), cc);
      const bool rs = kReset && ((mask >> t) & 1u);
      float acc = 0.f;
#pragma unroll
      for (int i = 0; i < kNP; i++) {
        h[i] = fmaf(decay(dd.x, A2[i], rs), h[i], dd.y * bb[i]);
        acc = fmaf(h[i], cc[i], acc);
      }
      yv[jj] = acc;
    }
    store_y8<G>(yv, s_y, tb, cl, lane);
  }
}

// W = 4, pass 1: steps tbase..tbase+kT-1 from h = 0, keeping the decays; the row summary
// (P, H) of this thread's states goes to sP / sH (already offset to the thread's slot).
template <int G, int kT, bool kReset>
__device__ __forceinline__ void fwd_pass1(const float2* s_dtu, const float* s_B, uint32_t mask,
                                          const float (&A2)[kNP], float (&ah)[kT][kNP], float* sP, float* sH,
                                          int tbase, int cl, int g) {
  constexpr int kNPad = 4 * G;
  float H[kNP] = {0.f, 0.f, 0.f, 0.f}, P[kNP] = {1.f, 1.f, 1.f, 1.f};
#pragma unroll
  for (int j = 0; j < kT; j++) {
    const int t = tbase + j;
    const float2 dd = s_dtu[t * kTF + cl];
    float bb[kNP];
    unpack4(ld4(s_B + t * kNPad + 4 * g), bb);
    const bool rs = kReset && ((mask >> t) & 1u);
#pragma unroll
    for (int i = 0; i < kNP; i++) {
      const float a = decay(dd.x, A2[i], rs);
      ah[j][i] = a;
      H[i] = fmaf(a, H[i], dd.y * bb[i]);
      P[i] *= a;
    }
  }
  st4(sP, P);
  st4(sH, H);
}

// W = 4, pass 2: the same steps from the entering state h0 with the stored decays, y to s_y.
template <int G, int kT>
__device__ __forceinline__ void fwd_pass2(const float2* s_dtu, const float* s_B, const float* s_C, float* s_y,
                                          const float (&ah)[kT][kNP], float4 h0, int tbase, int cl, int g,
                                          int lane) {
  constexpr int kNPad = 4 * G;
  float h[kNP];
  unpack4(h0, h);
#pragma unroll
  for (int tb = 0; tb < kT; tb += 8) {
    float yv[8];
#pragma unroll
    for (int jj = 0; jj < 8; jj++) {
      const int j = tb + jj, t = tbase + j;
      const float dtu = s_dtu[t * kTF + cl].y;
      float bb[kNP], cc[kNP];
      unpack4(ld4(s_B + t * kNPad + 4 * g), bb);
      unpack4(ld4(s_C + t * kNPad + 4 * g), cc);
      float acc = 0.f;
#pragma unroll
      for (int i = 0; i < kNP; i++) {
        h[i] = fmaf(ah[j][i], h[i], dtu * bb[i]);
        acc = fmaf(h[i], cc[i], acc);
      }
      yv[jj] = acc;
    }
    store_y8<G>(yv, s_y, tbase + tb, cl, lane);
  }
}

// The fold of thread k over the W row summaries of its state (time order): replaces sH[v] by the
// state entering row v and returns the state leaving the chunk. sP / sH point at element k of
// row 0; rows are `stride` floats apart.
template <int W>
__device__ __forceinline__ float fold_rows(const float* sP, float* sH, int stride, float h) {
#pragma unroll
  for (int v = 0; v < W; v++) {
    const float pv = sP[v * stride], hv = sH[v * stride];
    sH[v * stride] = h;
    h = fmaf(pv, h, hv);
  }
  return h;
}

// Forward: grid (ceil(D / kTF), B), Walker<G, W>::kThreads threads, WalkLayout::kBytes shared.
template <class T, int G, int W>
__global__ void __launch_bounds__(Walker<G, W>::kThreads) scan_fwd_kernel(ScanParams p) {
  using WK = Walker<G, W>;
  using LY = WalkLayout<T, G, W, false>;
  using SL = typename LY::Stage;
  constexpr int kNPad = WK::kNPad, kT = WK::kT, kS = WK::kStates;
  extern __shared__ __align__(16) char smem[];
  float2* s_dtu = reinterpret_cast<float2*>(smem + LY::kDtuOff);
  float* s_y = reinterpret_cast<float*>(smem + LY::kGyOff);
  float* s_B = reinterpret_cast<float*>(smem + LY::kBOff);
  float* s_C = reinterpret_cast<float*>(smem + LY::kCOff);
  float* s_P = reinterpret_cast<float*>(smem + LY::kSumOff);  // [W][kS] (W > 1)
  float* s_H = s_P + W * kS;                                  // [W][kS]
  uint32_t* s_mask = reinterpret_cast<uint32_t*>(smem + LY::kMaskOff);

  const int tid = threadIdx.x, lane = tid & 31;
  const int b = blockIdx.y, d0 = blockIdx.x * kTF;
  const int w = tid / WK::kRow, r = tid - w * WK::kRow, cl = r / G, g = r - cl * G, d = d0 + cl;
  const int ce = tid % kTF;  // element-wise phases: channel d0 + ce
  const bool ce_ok = d0 + ce < p.D;
  const float bias_e = (p.delta_bias.p && ce_ok) ? p.delta_bias[d0 + ce] : 0.f;
  const float D_e = (p.Dskip.p && ce_ok) ? p.Dskip[d0 + ce] : 0.f;
  float A[kNP], A2[kNP];
  load_A(p, d, g, A, A2);
  (void)A;

  float h[kNP] = {0.f, 0.f, 0.f, 0.f};  // W == 1: this thread's states
  float carry = 0.f;                    // W == 4: state k = tid of the block, entering the chunk
  const int64_t row = int64_t(b) * p.L;
  stage_chunk<T, kTF, kNPad, 3, 2>(smem, p, b, 0, d0);
  cp_async_commit();
  for (int c = 0; c < p.nc; c++) {
    char* buf = smem + (c & 1) * SL::kBytes;
    const int t0 = c * kCS, rows = min(kCS, p.L - t0), cols = min(kTF, p.D - d0);
    cp_async_wait_all();
    __syncthreads();  // chunk c landed; every thread is past phase C of chunk c - 1
    if (c + 1 < p.nc) stage_chunk<T, kTF, kNPad, 3, 2>(smem + ((c + 1) & 1) * SL::kBytes, p, b, t0 + kCS, d0);
    cp_async_commit();

    walker_phase_a<T, G, W, false>(p, buf, s_dtu, nullptr, s_B, s_C, s_mask, t0, rows, cols, ce, bias_e);
    __syncthreads();
    const uint32_t mask = p.seq ? *s_mask : 0u;
    if constexpr (W == 1) {
      if (mask == 0u)
        fwd_chunk_sequential<G, false>(s_dtu, s_B, s_C, s_y, mask, A2, h, cl, g, lane);
      else
        fwd_chunk_sequential<G, true>(s_dtu, s_B, s_C, s_y, mask, A2, h, cl, g, lane);
    } else {
      float ah[kT][kNP];
      const int tbase = w * kT, slot = cl * kNPad + 4 * g;
      if ((mask >> tbase) & ((1u << kT) - 1u))
        fwd_pass1<G, kT, true>(s_dtu, s_B, mask, A2, ah, s_P + w * kS + slot, s_H + w * kS + slot, tbase, cl,
                               g);
      else
        fwd_pass1<G, kT, false>(s_dtu, s_B, mask, A2, ah, s_P + w * kS + slot, s_H + w * kS + slot, tbase, cl,
                                g);
      __syncthreads();
      carry = fold_rows<W>(s_P + tid, s_H + tid, kS, carry);
      __syncthreads();
      fwd_pass2<G, kT>(s_dtu, s_B, s_C, s_y, ah, ld4(s_H + w * kS + slot), tbase, cl, g, lane);
    }
    __syncthreads();

    // Phase C: out = (y + D u) * silu(z), stored coalesced.
    const T* su = SL::act(buf, 0);
    const T* sz = SL::act(buf, 2);
    T* out = static_cast<T*>(p.out) + (row + t0) * p.D + d0;
    for (int e = tid; e < kCS * kTF; e += WK::kThreads) {
      const int t = e / kTF;
      if (t < rows && ce < cols) {
        float y = s_y[e];
        if (p.Dskip.p) y = fmaf(D_e, to_f(su[e]), y);
        if (p.z) {
          const float zz = to_f(sz[e]);
          y *= zz * sigmoid_f(zz);
        }
        out[int64_t(t) * p.D + ce] = from_f<T>(y);
      }
    }
  }
  if (p.final_state) {
    if constexpr (W == 1) {
      if (d < p.D) {
#pragma unroll
        for (int i = 0; i < kNP; i++) {
          const int n = g * kNP + i;
          if (n < p.N) p.final_state[(int64_t(b) * p.D + d) * p.N + n] = h[i];
        }
      }
    } else {
      const int dk = d0 + tid / kNPad, n = tid % kNPad;
      if (dk < p.D && n < p.N) p.final_state[(int64_t(b) * p.D + dk) * p.N + n] = carry;
    }
  }
}

// ---- backward preparation -----------------------------------------------------------------------
// W = 1: the chunk's 32 steps: states h, and the segment's running (P, G) of this thread.
template <int G, bool kReset>
__device__ __forceinline__ void prep_chunk_sequential(const float2* s_dtu, const float* s_gy,
                                                      const float* s_B, const float* s_C, uint32_t mask,
                                                      const float (&A2)[kNP], float (&h)[kNP],
                                                      float (&P)[kNP], float (&Gs)[kNP], int cl, int g) {
  constexpr int kNPad = 4 * G;
#pragma unroll 8
  for (int t = 0; t < kCS; t++) {
    const float2 dd = s_dtu[t * kTF + cl];
    const float gy = s_gy[t * kTF + cl];
    float bb[kNP], cc[kNP];
    unpack4(ld4(s_B + t * kNPad + 4 * g), bb);
    unpack4(ld4(s_C + t * kNPad + 4 * g), cc);
    const bool rs = kReset && ((mask >> t) & 1u);
#pragma unroll
    for (int i = 0; i < kNP; i++) {
      const float a = decay(dd.x, A2[i], rs);
      P[i] *= a;  // prod of the decays up to and including t
      Gs[i] = fmaf(P[i], gy * cc[i], Gs[i]);
      h[i] = fmaf(a, h[i], dd.y * bb[i]);
    }
  }
}

// W = 4, pass 1: the row summaries (P, H, G) of steps tbase..tbase+kT-1 (from h = 0, P = 1, G = 0).
template <int G, int kT, bool kReset>
__device__ __forceinline__ void prep_pass1(const float2* s_dtu, const float* s_gy, const float* s_B,
                                           const float* s_C, uint32_t mask, const float (&A2)[kNP], float* sP,
                                           float* sH, float* sG, int tbase, int cl, int g) {
  constexpr int kNPad = 4 * G;
  float H[kNP] = {0.f, 0.f, 0.f, 0.f}, P[kNP] = {1.f, 1.f, 1.f, 1.f}, Gs[kNP] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int j = 0; j < kT; j++) {
    const int t = tbase + j;
    const float2 dd = s_dtu[t * kTF + cl];
    const float gy = s_gy[t * kTF + cl];
    float bb[kNP], cc[kNP];
    unpack4(ld4(s_B + t * kNPad + 4 * g), bb);
    unpack4(ld4(s_C + t * kNPad + 4 * g), cc);
    const bool rs = kReset && ((mask >> t) & 1u);
#pragma unroll
    for (int i = 0; i < kNP; i++) {
      const float a = decay(dd.x, A2[i], rs);
      P[i] *= a;
      Gs[i] = fmaf(P[i], gy * cc[i], Gs[i]);
      H[i] = fmaf(a, H[i], dd.y * bb[i]);
    }
  }
  st4(sP, P);
  st4(sH, H);
  st4(sG, Gs);
}

// Turns the segment summaries (P, G) of one state column (element `base` of segment 0, segments
// `stride` floats apart) into the dL/dh carry entering each segment from the right (over G):
// carry(nseg - 1) = 0, carry(s) = G(s + 1) + P(s + 1) carry(s + 1). VEC = 4 (float4 per thread)
// or 1. The thread reads back only what it wrote itself, so no synchronisation is needed.
template <int VEC>
__device__ __forceinline__ void sweep_segments(float* segP, float* segG, int64_t base, int64_t stride,
                                               int nseg) {
  float cy[VEC];
#pragma unroll
  for (int i = 0; i < VEC; i++) cy[i] = 0.f;
  constexpr int kBatch = 4;  // segments whose loads are in flight together
  for (int s1 = nseg - 1; s1 >= 0; s1 -= kBatch) {
    float P[kBatch][VEC], Gv[kBatch][VEC];
#pragma unroll
    for (int k = 0; k < kBatch; k++) {
      const int64_t at = base + int64_t(max(s1 - k, 0)) * stride;  // clamped: always a valid address
      if constexpr (VEC == 4) {
        unpack4(ld4(segP + at), P[k]);
        unpack4(ld4(segG + at), Gv[k]);
      } else {
        P[k][0] = segP[at];
        Gv[k][0] = segG[at];
      }
    }
#pragma unroll
    for (int k = 0; k < kBatch; k++) {
      if (s1 - k >= 0) {
        float out[VEC];
#pragma unroll
        for (int i = 0; i < VEC; i++) {
          out[i] = cy[i];
          cy[i] = fmaf(P[k][i], cy[i], Gv[k][i]);
        }
        float* dst = segG + base + int64_t(s1 - k) * stride;
        if constexpr (VEC == 4)
          *reinterpret_cast<float4*>(dst) = make_float4(out[0], out[1], out[2], out[3]);
        else
          *dst = out[0];
      }
    }
  }
}

// Backward preparation: grid (ceil(D / kTF), B), Walker<G, W>::kThreads threads.
// Writes p.hstart (every chunk) and, per segment, p.segP and the carry p.segG (see the top).
template <class T, int G, int W>
__global__ void __launch_bounds__(Walker<G, W>::kThreads) scan_bwd_prep_kernel(ScanParams p) {
  using WK = Walker<G, W>;
  using LY = WalkLayout<T, G, W, true>;
  using SL = typename LY::Stage;
  constexpr int kNPad = WK::kNPad, kT = WK::kT, kS = WK::kStates;
  extern __shared__ __align__(16) char smem[];
  float2* s_dtu = reinterpret_cast<float2*>(smem + LY::kDtuOff);
  float* s_gy = reinterpret_cast<float*>(smem + LY::kGyOff);
  float* s_B = reinterpret_cast<float*>(smem + LY::kBOff);
  float* s_C = reinterpret_cast<float*>(smem + LY::kCOff);
  float* s_P = reinterpret_cast<float*>(smem + LY::kSumOff);  // [W][kS] (W > 1)
  float* s_H = s_P + W * kS;
  float* s_G = s_H + W * kS;
  uint32_t* s_mask = reinterpret_cast<uint32_t*>(smem + LY::kMaskOff);

  const int tid = threadIdx.x;
  const int b = blockIdx.y, d0 = blockIdx.x * kTF;
  const int w = tid / WK::kRow, r = tid - w * WK::kRow, cl = r / G, g = r - cl * G, d = d0 + cl;
  const int ce = tid % kTF;
  const bool ce_ok = d0 + ce < p.D;
  const float bias_e = (p.delta_bias.p && ce_ok) ? p.delta_bias[d0 + ce] : 0.f;
  float A[kNP], A2[kNP];
  load_A(p, d, g, A, A2);
  (void)A;
  // Where this thread's values live in the [B, *, D, kNPad] scratch arrays: W == 1, the float4
  // of (d, 4g..4g+3); W == 4, element k = tid of the block's (channel, state) pairs.
  const bool own_ok = W == 1 ? d < p.D : d0 + tid / kNPad < p.D;
  const int64_t own = W == 1 ? int64_t(d) * kNPad + 4 * g : int64_t(d0) * kNPad + tid;
  const int64_t col = int64_t(p.D) * kNPad;  // one (b, chunk) or (b, segment) slice

  float h[kNP] = {0.f, 0.f, 0.f, 0.f}, P[kNP] = {1.f, 1.f, 1.f, 1.f},
        Gs[kNP] = {0.f, 0.f, 0.f, 0.f};   // W == 1
  float carry = 0.f, Pk = 1.f, Gk = 0.f;  // W == 4: state k = tid
  stage_chunk<T, kTF, kNPad, 4, 2>(smem, p, b, 0, d0);
  cp_async_commit();
  for (int c = 0; c < p.nc; c++) {
    char* buf = smem + (c & 1) * SL::kBytes;
    const int t0 = c * kCS, rows = min(kCS, p.L - t0), cols = min(kTF, p.D - d0);
    cp_async_wait_all();
    __syncthreads();  // chunk c landed; every thread is past the passes of chunk c - 1
    if (c + 1 < p.nc) stage_chunk<T, kTF, kNPad, 4, 2>(smem + ((c + 1) & 1) * SL::kBytes, p, b, t0 + kCS, d0);
    cp_async_commit();

    walker_phase_a<T, G, W, true>(p, buf, s_dtu, s_gy, s_B, s_C, s_mask, t0, rows, cols, ce, bias_e);
    __syncthreads();
    const uint32_t mask = p.seq ? *s_mask : 0u;
    const int seg = c / p.seg_chunks;
    const bool seg_end = (c + 1) % p.seg_chunks == 0 || c + 1 == p.nc;
    float* hst = p.hstart + (int64_t(b) * p.nc + c) * col + own;
    float* sgP = p.segP + (int64_t(b) * p.nseg + seg) * col + own;
    float* sgG = p.segG + (int64_t(b) * p.nseg + seg) * col + own;
    if constexpr (W == 1) {
      if (own_ok) st4(hst, h);
      if (mask == 0u)
        prep_chunk_sequential<G, false>(s_dtu, s_gy, s_B, s_C, mask, A2, h, P, Gs, cl, g);
      else
        prep_chunk_sequential<G, true>(s_dtu, s_gy, s_B, s_C, mask, A2, h, P, Gs, cl, g);
      if (seg_end) {
        if (own_ok) {
          st4(sgP, P);
          st4(sgG, Gs);
        }
#pragma unroll
        for (int i = 0; i < kNP; i++) {
          P[i] = 1.f;
          Gs[i] = 0.f;
        }
      }
    } else {
      const int tbase = w * kT, slot = w * kS + cl * kNPad + 4 * g;
      if ((mask >> tbase) & ((1u << kT) - 1u))
        prep_pass1<G, kT, true>(s_dtu, s_gy, s_B, s_C, mask, A2, s_P + slot, s_H + slot, s_G + slot, tbase,
                                cl, g);
      else
        prep_pass1<G, kT, false>(s_dtu, s_gy, s_B, s_C, mask, A2, s_P + slot, s_H + slot, s_G + slot, tbase,
                                 cl, g);
      __syncthreads();
      // Fold of state k = tid: its chunk-start state out, then the rows in time order. (The
      // next writes of s_P / s_H / s_G come after two barriers of the next chunk.)
      if (own_ok) *hst = carry;
#pragma unroll
      for (int v = 0; v < W; v++) {
        const float pv = s_P[v * kS + tid], hv = s_H[v * kS + tid], gv = s_G[v * kS + tid];
        Gk = fmaf(Pk, gv, Gk);
        Pk *= pv;
        carry = fmaf(pv, carry, hv);
      }
      if (seg_end) {
        if (own_ok) {
          *sgP = Pk;
          *sgG = Gk;
        }
        Pk = 1.f;
        Gk = 0.f;
      }
    }
  }
  (void)h;
  (void)carry;
  if (own_ok) {
    const int64_t base = int64_t(b) * p.nseg * col + own;
    if constexpr (W == 1)
      sweep_segments<4>(p.segP, p.segG, base, col, p.nseg);
    else
      sweep_segments<1>(p.segP, p.segG, base, col, p.nseg);
  }
}

// Time rows of the walkers for this problem: 4 unless one row per block already gives every SM
// 24 warps. LMF_SCAN_WALK_ROWS=1|4 forces it (tests run both paths on any GPU).
int walker_rows(const ScanParams& p, int G);

}  // namespace lmf::cuda::scan
