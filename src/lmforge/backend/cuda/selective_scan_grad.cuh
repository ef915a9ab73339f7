// The gradient pass of the selective scan backward (scan_backward_kernel); the launch sequence
// and the description of the whole backward are in selective_scan_backward.cu.
#pragma once

#include "lmforge/backend/cuda/selective_scan_chunked.cuh"

namespace lmf::cuda::scan {

constexpr float kLn2 = 0.6931471805599453f;
constexpr int kTD = 32;  // channels per gradient block (channel = lane in the element-wise phases)
constexpr int kSC = 8;   // sub-chunk: steps recomputed and held in registers at a time
constexpr int kNSub = kCS / kSC;
// Row stride of the sub-chunk y buffer: y rows written by one store instruction (lanes of
// different g) fall 4 banks apart instead of on the same bank.
constexpr int kYS = kTD + 4;
static_assert(kCS % kSC == 0 && kSC == 8, "sub-chunk masks are 8-bit slices of the chunk mask");

template <class T, int G>
struct BackwardLayout {
  using Stage = StageLayout<T, kTD, 4 * G, 4, 2>;  // u, delta, z, dout; B, C (one buffer)
  static constexpr int kNPad = 4 * G;
  static constexpr int kDtuOff = Stage::kBytes;                    // float2 [kCS][kTD]: dt, dt*u
  static constexpr int kGyOff = kDtuOff + align16(kCS * kTD * 8);  // float [kCS][kTD]
  // float y [kSC][kYS], p1 [kSC][kTD], p2 [kSC][kTD] (+ 8 floats: p1 / p2 stores of one
  // instruction on different banks)
  static constexpr int kSub = align16((kSC * kYS + 2 * kSC * kTD + 8) * 4);
  static constexpr int kSubOff = kGyOff + align16(kCS * kTD * 4);        // 2 sub-chunk buffers
  static constexpr int kBCOff = kSubOff + 2 * kSub;                      // float [2][kCS][kNPad]
  static constexpr int kRed = align16(G * kSC * 2 * kNPad * 4);          // float [G][kSC][2][kNPad]
  static constexpr int kRedOff = kBCOff + 2 * align16(kCS * kNPad * 4);  // 2 sub-chunk buffers
  static constexpr int kCkOff = kRedOff + 2 * kRed;                      // float4 [kNSub][kTD * G]
  static constexpr int kMaskOff = kCkOff + kNSub * kTD * G * 16;
  // float4 [16]: (bias, bias, D, D) of the channel pair (2 tid) % 32, + 1 (read where used
  // instead of held in registers); float4 [32 G]: each thread's (D, D, bias, bias) gradient sums.
  static constexpr int kParOff = kMaskOff + 16;
  static constexpr int kAccOff = kParOff + 16 * 16;
  // int4 [32 G]: each thread's lane constants (BwdLane), read once per sub-chunk.
  static constexpr int kLaneOff = kAccOff + 32 * G * 16;
  static constexpr int kBytes = kLaneOff + 32 * G * 16;
  static_assert(kBytes <= 227 * 1024, "backward shared memory exceeds the per-block limit");
};

// Pointers into shared memory: chunk arrays [kCS][...] and one sub-chunk buffer [kSC][...].
struct BwdShared {
  const float2* dtu;  // (dt, dt*u), chunk
  const float* gy;    // dL/dy before the gate: dout * silu(z) (or dout), chunk
  const float* B;     // chunk
  const float* C;     // chunk
  float* y;           // sum_n h C (for dz), sub-chunk, row stride kYS
  float* p1;          // sum_n g B, sub-chunk
  float* p2;          // sum_n g h_{t-1} exp(dt A) A log2(e), sub-chunk
  float* red;         // per-warp channel sums of dB, dC [G][kSC][2][kNPad], sub-chunk
  // This thread's operands in the recurrence, at row k * kSC of the sub-chunk: (dt, dt*u) and gy
  // of its channel, B and C of its states; its stores: y rows (writer lanes: rows ybase, ybase +
  // 1, ...), its p1 or p2 column, its dB / dC partial slot (tensor-core layout). Lane constants
  // folded in once per sub-chunk from BwdLane, not recomputed from the thread index.
  const float2* dtu_t;
  const float* gy_t;
  const float* B_t;
  const float* C_t;
  float* yw;
  float* qw;
  float* redw;
};

// Lane constants (computed once per kernel, kept in shared memory: under register pressure the
// compiler would otherwise rebuild them from the thread index every sub-chunk, ~60 instructions
// per warp): cb = channel | 4 g << 8, offsets in floats into the sub-chunk buffer (y, q) and the
// red buffer (red).
struct BwdLane {
  int cb = 0, y = 0, q = 0, red = 0;
};

// The states entering the kNSub sub-chunks of the staged chunk, from the chunk's entering state
// h0: ck[k * stride] (this thread's float4 slots; only this thread reads them back).
template <int G, bool kReset>
__device__ __forceinline__ void walk_subchunk_starts(const float2* s_dtu, const float* s_B, uint32_t mask,
                                                     const float (&A2)[kNP], float4 h0, float4* ck,
                                                     int stride, int cl, int g) {
  constexpr int kNPad = 4 * G;
  float h[kNP];
  unpack4(h0, h);
  ck[0] = h0;
#pragma unroll
  for (int k = 1; k < kNSub; k++) {
#pragma unroll
    for (int j = 0; j < kSC; j++) {
      const int t = (k - 1) * kSC + j;
      const float2 dd = s_dtu[t * kTD + cl];
      float bb[kNP];
      unpack4(ld4(s_B + t * kNPad + 4 * g), bb);
      const bool rs = kReset && ((mask >> t) & 1u);
#pragma unroll
      for (int i = 0; i < kNP; i++) h[i] = fmaf(decay(dd.x, A2[i], rs), h[i], dd.y * bb[i]);
    }
    ck[k * stride] = make_float4(h[0], h[1], h[2], h[3]);
  }
}

// Tensor-core channel sums (bf16 / f16 activations, G = 4; kMmaLayout): the lanes of a warp are
// (c_lo, g, c_hi) = (lane % 4, lane / 4 % 4, lane / 16), channel c_lo + 4 c_hi of the warp's 8,
// states 4 g .. 4 g + 3. The per-step dB / dC partials (8 per thread) are summed over the 4
// channels c_lo by two chained mma.m16n8k8 tf32 with a 0/1 routing matrix as B: row r = lane / 4
// of A holds (g, c_hi), its k columns the lanes c_lo (and two states per mma), and B sends the k
// columns of state q to the output columns 2q, 2q + 1, so lane (c_lo, r) receives the sums of
// state 4 g + c_lo (dB in c0, dC in c2); one shuffle over c_hi completes the 8 channels. 2 MMA +
// 4 instructions per step instead of the 28 of a shuffle transpose-reduce. The tf32 operands
// drop the low 13 mantissa bits of each term (relative error <= 2^-10 per term, far below the
// bf16 / f16 rounding of dBm / dCm); fp32 activations keep the exact shuffle reduction.
template <class T, int G>
constexpr bool kMmaLayout = G == 4 && !std::is_same_v<T, float>;

// D = A B + C, m16n8k8, tf32 operands (raw fp32 bits), fp32 accumulators.
__device__ __forceinline__ void mma_tf32(float (&d)[4], float a0, float a1, float a2, float a3, uint32_t b0,
                                         uint32_t b1, const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(__float_as_uint(a0)), "r"(__float_as_uint(a1)), "r"(__float_as_uint(a2)),
        "r"(__float_as_uint(a3)), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// One 8-step sub-chunk starting at chunk row k * kSC: recompute forward from its entering state
// h0, then the reverse steps. carry = dL/dh_t flowing from step t+1 (already multiplied by its
// decay, so 0 past a document start).
// kMma: the tensor-core lane layout and channel sums above (bsel: this lane's B routing values
// for the two mma, 1.0f where lane / 8 == q for q = 0..3).
template <int G, bool kReset, bool kMma>
__device__ __forceinline__ void backward_subchunk(const BwdShared& s, int k, uint32_t mask, float4 h0v,
                                                  const float (&A2)[kNP],
                                                  float (&carry)[kNP], float (&dA)[kNP], bool has_z, int g,
                                                  int cl, int lane, int warp, const uint32_t (&bsel)[4]) {
  constexpr int kNPad = 4 * G;
  // Lane-index bits of the g-lanes of a channel: 1 .. G/2 (consecutive lanes), or 4, 8 (kMma).
  constexpr int kGHi = kMma ? 8 : G / 2, kGLo = kMma ? 4 : 1;
  float h0[kNP];
  unpack4(h0v, h0);
  float a[kSC][kNP], hs[kSC][kNP];
  {
    float h[kNP] = {h0[0], h0[1], h0[2], h0[3]};
    float yv[kSC];
#pragma unroll
    for (int j = 0; j < kSC; j++) {
      const int t = k * kSC + j;
      const float2 dd = s.dtu_t[j * kTD];
      float bb[kNP], cc[kNP];
      unpack4(ld4(s.B_t + j * kNPad), bb);
      unpack4(ld4(s.C_t + j * kNPad), cc);
      const bool rs = kReset && ((mask >> t) & 1u);
      float acc = 0.f;
#pragma unroll
      for (int i = 0; i < kNP; i++) {
        a[j][i] = decay(dd.x, A2[i], rs);
        h[i] = fmaf(a[j][i], h[i], dd.y * bb[i]);
        hs[j][i] = h[i];
        acc = fmaf(h[i], cc[i], acc);
      }
      yv[j] = acc;
    }
    if (has_z) {
      using Red = LaneReduce<kSC, kGHi, kGLo>;
      int base = 0;
      Red::run(yv, lane, base);
      if ((lane & Red::kWriterMask) == 0) {
#pragma unroll
        for (int j = 0; j < Red::kOut; j++) s.yw[j * kYS] = yv[j];
      }
    }
  }
#pragma unroll
  for (int j = kSC - 1; j >= 0; j--) {
    const float gy = s.gy_t[j * kTD];
    const float2 dd = s.dtu_t[j * kTD];
    float bb[kNP], cc[kNP];
    unpack4(ld4(s.B_t + j * kNPad), bb);
    unpack4(ld4(s.C_t + j * kNPad), cc);
    float dv[8];  // dB for the 4 states, then dC
    float q1 = 0.f, q2 = 0.f;
#pragma unroll
    for (int i = 0; i < kNP; i++) {
      // h_t = a_t h_{t-1} + dt u B with a_t = 0 at a document start, which also zeroes the
      // decay terms and the carry below.
      const float gi = fmaf(gy, cc[i], carry[i]);  // dL/dh_t
      dv[i] = gi * dd.y;
      dv[4 + i] = gy * hs[j][i];
      q1 = fmaf(gi, bb[i], q1);
      const float hp = j > 0 ? hs[j - 1][i] : h0[i];
      const float ga = gi * a[j][i];
      const float qq = ga * hp;       // dL/da_t * a_t
      q2 = fmaf(qq, A2[i], q2);       // d a_t / d dt = A a_t (times log2 e: undone in the epilogue)
      dA[i] = fmaf(qq, dd.x, dA[i]);  // d a_t / d A = dt a_t
      carry[i] = ga;
    }
    {
      // (sum_n g B, sum_n g h_{t-1} a A) over the g-lanes of the channel.
      using RedG = LaneReduce<2, kGHi, kGLo>;
      float q[2] = {q1, q2};
      int base = 0;
      RedG::run(q, lane, base);
      if ((lane & RedG::kWriterMask) == 0) {
        if constexpr (RedG::kOut == 1) {
          s.qw[j * kTD] = q[0];  // p1 (base 0) or p2 (base 1) of this lane
        } else {
#pragma unroll
          for (int jj = 0; jj < RedG::kOut; jj++) (base + jj == 0 ? s.p1 : s.p2)[j * kTD + cl] = q[jj];
        }
      }
    }
    if constexpr (kMma) {
      // Sums over c_lo (tensor cores), then over c_hi (one shuffle): lane (c_lo, g, c_hi) ends
      // with dB (c_hi = 0) or dC (c_hi = 1) of state 4 g + c_lo, summed over the warp's channels.
      const float zero[4] = {0.f, 0.f, 0.f, 0.f};
      float acc1[4], acc2[4];
      mma_tf32(acc1, dv[0], dv[4], dv[1], dv[5], bsel[0], bsel[1], zero);
      mma_tf32(acc2, dv[2], dv[6], dv[3], dv[7], bsel[2], bsel[3], acc1);
      const bool up = (lane & 16) != 0;
      const float send = up ? acc2[0] : acc2[2], keep = up ? acc2[2] : acc2[0];
      const float v = keep + __shfl_xor_sync(0xffffffffu, send, 16);
      s.redw[j * 2 * kNPad] = v;  // red[((warp * kSC + j) * 2 + up) * kNPad + g * kNP + lane % 4]
    } else {
      using RedD = LaneReduce<8, 16, G>;  // over the channel lanes of the warp
      int base = 0;
      RedD::run(dv, lane, base);
      if ((lane & RedD::kWriterMask) == 0) {
#pragma unroll
        for (int jj = 0; jj < RedD::kOut; jj++) {
          const int idx = base + jj;
          s.red[((warp * kSC + j) * 2 + (idx >> 2)) * kNPad + g * kNP + (idx & 3)] = dv[jj];
        }
      }
    }
  }
}

// Programmatic dependent launch (sm_90): wait until the previous kernel in the stream (launched
// with the PDL attribute) has completed and its writes are visible; let the next one start its
// prologue. No-ops without the attribute.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

template <class T, int G>
__device__ __forceinline__ void backward_subchunk_epilogue(const ScanParams& p, const BwdShared& s,
                                                           const T* su, const T* sdl, const T* sz,
                                                           const T* sdo, int b, int t0, int k, int cols,
                                                           bool full_cols, const float4* par_slot,
                                                           float4* acc_slot) {
  const float4 par = *par_slot, acc = *acc_slot;
  const float2 bias2 = make_float2(par.x, par.y), D2 = make_float2(par.z, par.w);
  float2 accD2 = make_float2(acc.x, acc.y), accBias2 = make_float2(acc.z, acc.w);
  constexpr int kNPad = 4 * G;
  constexpr int kThreads = 32 * G;
  const int rows = min(kSC, p.L - t0 - k * kSC);  // >= 1
  const int64_t off0 = (int64_t(b) * p.L + t0 + k * kSC) * p.D + (blockIdx.x * kTD);
  if (full_cols && rows == kSC) {
    // Two channels per thread (cp, cp + 1 = (2 tid) % 32, + 1), no bounds checks, int offsets
    // inside the sub-chunk; softplus' and silu' from ex2.approx.ftz.
    const int cp = (2 * int(threadIdx.x)) & (kTD - 1);
    T* du = static_cast<T*>(p.du);
    T* ddelta = static_cast<T*>(p.ddelta);
    T* dz = p.z ? static_cast<T*>(p.dz) : nullptr;
#pragma unroll
    for (int it = 0; it < (kSC * kTD / 2 + kThreads - 1) / kThreads; it++) {
      const int e = 2 * (it * kThreads + int(threadIdx.x));
      if (kSC * kTD / 2 % kThreads != 0 && e >= kSC * kTD) break;
      const int j = e / kTD, ec = k * kSC * kTD + e;  // row in the sub-chunk, element in the chunk
      const float2 uu = ld2(su + ec), gy = *reinterpret_cast<const float2*>(s.gy + ec);
      const float2 q1 = *reinterpret_cast<const float2*>(s.p1 + e),
                   q2 = *reinterpret_cast<const float2*>(s.p2 + e);
      const float4 dtu = *reinterpret_cast<const float4*>(s.dtu + ec);  // dt, dt*u of cp; of cp + 1
      float dsp0 = 1.f, dsp1 = 1.f;  // softplus'(raw) = sigmoid(raw) (1.0f past 20 anyway)
      if (p.softplus) {
        const float2 dl = ld2(sdl + ec);
        dsp0 = sigmoid_ftz(dl.x + bias2.x);
        dsp1 = sigmoid_ftz(dl.y + bias2.y);
      }
      // p2 holds sum_n g h_{t-1} a A log2(e): times ln 2.
      const float ddl0 = fmaf(q1.x, uu.x, q2.x * kLn2) * dsp0, ddl1 = fmaf(q1.y, uu.y, q2.y * kLn2) * dsp1;
      const int64_t o = off0 + (j * p.D + cp);  // one element offset for the three outputs
      if (du) st2(du + o, fmaf(q1.x, dtu.x, D2.x * gy.x), fmaf(q1.y, dtu.z, D2.y * gy.y));
      if (ddelta) st2(ddelta + o, ddl0, ddl1);
      if (dz) {
        // out = y silu(z): dz = dout y silu'(z), silu'(z) = s (1 + z (1 - s)).
        const float2 zz = ld2(sz + ec), dd = ld2(sdo + ec);
        const float2 yy = *reinterpret_cast<const float2*>(s.y + j * kYS + cp);
        const float sg0 = sigmoid_ftz(zz.x), sg1 = sigmoid_ftz(zz.y);
        const float y0 = fmaf(D2.x, uu.x, yy.x), y1 = fmaf(D2.y, uu.y, yy.y);
        st2(dz + o, dd.x * y0 * sg0 * (1.f + zz.x * (1.f - sg0)),
            dd.y * y1 * sg1 * (1.f + zz.y * (1.f - sg1)));
      }
      accD2.x = fmaf(gy.x, uu.x, accD2.x);
      accD2.y = fmaf(gy.y, uu.y, accD2.y);
      accBias2.x += ddl0;
      accBias2.y += ddl1;
    }
  } else {
    // Checked path (a tile with missing channels or rows past L): the same channel pairs, each
    // element checked, one element at a time.
    const int cp = (2 * int(threadIdx.x)) & (kTD - 1);
    for (int e2 = 2 * int(threadIdx.x); e2 < kSC * kTD; e2 += 2 * kThreads) {
      const int j = e2 / kTD;
#pragma unroll
      for (int h = 0; h < 2; h++) {
        if (j >= rows || cp + h >= cols) continue;
        const int e = e2 + h, ec = k * kSC * kTD + e;  // element in the chunk arrays
        const float bias = h ? bias2.y : bias2.x, Dd = h ? D2.y : D2.x;
        const float uu = to_f(su[ec]), dt = s.dtu[ec].x, gy = s.gy[ec], q1 = s.p1[e];
        const float raw = to_f(sdl[ec]) + bias;
        const float dsp = p.softplus ? sigmoid_ftz(raw) : 1.f;  // softplus'(raw)
        const float ddl = fmaf(q1, uu, s.p2[e] * kLn2) * dsp;
        const int64_t off = off0 + int64_t(j) * p.D + cp + h;
        if (p.du) static_cast<T*>(p.du)[off] = from_f<T>(fmaf(q1, dt, Dd * gy));
        if (p.ddelta) static_cast<T*>(p.ddelta)[off] = from_f<T>(ddl);
        if (p.z && p.dz) {
          const float zz = to_f(sz[ec]), sg = sigmoid_ftz(zz);
          const float y = fmaf(Dd, uu, s.y[j * kYS + cp + h]);
          static_cast<T*>(p.dz)[off] = from_f<T>(to_f(sdo[ec]) * y * sg * (1.f + zz * (1.f - sg)));
        }
        if (h) {
          accD2.y = fmaf(gy, uu, accD2.y);
          accBias2.y += ddl;
        } else {
          accD2.x = fmaf(gy, uu, accD2.x);
          accBias2.x += ddl;
        }
      }
    }
  }
  *acc_slot = make_float4(accD2.x, accD2.y, accBias2.x, accBias2.y);
  const float* red = s.red;
  const int64_t row0 = t0 + k * kSC;
  if (p.N % 4 == 0) {
    constexpr int kQ = kNPad / 4;
    for (int e = threadIdx.x; e < kSC * 2 * kQ; e += blockDim.x) {
      const int j = e / (2 * kQ), r = e - j * 2 * kQ, which = r / kQ, n4 = (r - which * kQ) * 4;
      if (j < rows && n4 < p.N) {
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int w = 0; w < G; w++) {
          const float4 v = *reinterpret_cast<const float4*>(red + ((w * kSC + j) * 2 + which) * kNPad + n4);
          sum.x += v.x;
          sum.y += v.y;
          sum.z += v.z;
          sum.w += v.w;
        }
        float* dst = p.dBC + ((int64_t(which) * p.B + b) * p.L + row0 + j) * p.N + n4;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        atomicAdd(reinterpret_cast<float4*>(dst), sum);
#else
        atomicAdd(dst, sum.x);
        atomicAdd(dst + 1, sum.y);
        atomicAdd(dst + 2, sum.z);
        atomicAdd(dst + 3, sum.w);
#endif
      }
    }
  } else {
    for (int e = threadIdx.x; e < kSC * 2 * kNPad; e += blockDim.x) {
      const int j = e / (2 * kNPad), r = e - j * 2 * kNPad, which = r / kNPad, n = r - which * kNPad;
      if (j < rows && n < p.N) {
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < G; w++) sum += red[((w * kSC + j) * 2 + which) * kNPad + n];
        atomicAdd(p.dBC + ((int64_t(which) * p.B + b) * p.L + row0 + j) * p.N + n, sum);
      }
    }
  }
}

// Gradient pass: block (32 channels, segment, b). Four blocks of 128 threads per SM for N = 16
// (<= 128 registers, ~48 KB shared for bf16).
template <class T, int G>
__global__ void __launch_bounds__(32 * G, G == 4 ? 4 : 1) scan_backward_kernel(ScanParams p) {
  using BL = BackwardLayout<T, G>;
  using SL = typename BL::Stage;
  constexpr int kNPad = 4 * G;
  extern __shared__ __align__(16) char smem[];
  float2* s_dtu = reinterpret_cast<float2*>(smem + BL::kDtuOff);
  float* s_gy = reinterpret_cast<float*>(smem + BL::kGyOff);
  float* s_B = reinterpret_cast<float*>(smem + BL::kBCOff);
  float* s_C = s_B + kCS * kNPad;
  float4* s_ck = reinterpret_cast<float4*>(smem + BL::kCkOff);
  uint32_t* s_mask = reinterpret_cast<uint32_t*>(smem + BL::kMaskOff);
  // Sub-chunk buffers alternate (k & 1): the epilogue of sub-chunk k reads buffer k & 1 while
  // the recurrence of sub-chunk k - 1 fills the other, so one barrier per sub-chunk suffices.
  const int4* s_lane = reinterpret_cast<const int4*>(smem + BL::kLaneOff);  // BwdLane per thread
  auto shared_for = [&](int k) {
    BwdShared sh;
    sh.dtu = s_dtu;
    sh.gy = s_gy;
    sh.B = s_B;
    sh.C = s_C;
    float* sub = reinterpret_cast<float*>(smem + BL::kSubOff + (k & 1) * BL::kSub);
    sh.y = sub;
    sh.p1 = sub + kSC * kYS;
    sh.p2 = sub + kSC * kYS + kSC * kTD + 8;
    sh.red = reinterpret_cast<float*>(smem + BL::kRedOff + (k & 1) * BL::kRed);
    const int4 lc = s_lane[threadIdx.x];
    const int cl_k = k * kSC * kTD + (lc.x & 0xff), bc_k = k * kSC * kNPad + (lc.x >> 8);
    sh.dtu_t = s_dtu + cl_k;
    sh.gy_t = s_gy + cl_k;
    sh.B_t = s_B + bc_k;
    sh.C_t = s_C + bc_k;
    sh.yw = sub + lc.y;
    sh.qw = sub + lc.z;
    sh.redw = sh.red + lc.w;
    return sh;
  };

  const int b = blockIdx.z, seg = blockIdx.y, d0 = blockIdx.x * kTD;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // Thread -> (channel cl, state group g): consecutive lanes share a channel, or the tensor-core
  // layout (lane = c_lo + 4 (g + 4 c_hi), channel c_lo + 4 c_hi of the warp's 8).
  constexpr bool kMma = kMmaLayout<T, G>;
  const int g = kMma ? (lane >> 2) & 3 : tid % G;
  const int cl = kMma ? warp * 8 + (lane >> 4) * 4 + (lane & 3) : tid / G, d = d0 + cl;
  const int slot = cl * G + g;  // this thread's float4 in the s_ck sub-chunk start arrays
  {
    // The rows / column this lane stores after the g-lane reductions of backward_subchunk (the
    // bases LaneReduce leaves: lane constants, found once by running it on zeros).
    constexpr int kGHi = kMma ? 8 : G / 2, kGLo = kMma ? 4 : 1;
    int ybase = 0, qbase = 0;
    float zy[kSC] = {}, zq[2] = {};
    LaneReduce<kSC, kGHi, kGLo>::run(zy, lane, ybase);
    LaneReduce<2, kGHi, kGLo>::run(zq, lane, qbase);
    BwdLane ln;
    ln.cb = cl | (4 * g) << 8;
    ln.y = ybase * kYS + cl;
    ln.q = (qbase == 0 ? kSC * kYS : kSC * kYS + kSC * kTD + 8) + cl;
    ln.red = kMma ? (warp * kSC * 2 + ((lane & 16) ? 1 : 0)) * kNPad + g * kNP + (lane & 3) : 0;
    reinterpret_cast<int4*>(smem + BL::kLaneOff)[tid] = make_int4(ln.cb, ln.y, ln.q, ln.red);
  }
  const StageOffsets so = stage_offsets<T, kTD, 32 * G>(p.D);
  uint32_t bsel[4];
#pragma unroll
  for (int q = 0; q < 4; q++) bsel[q] = (lane >> 3) == q ? 0x3f800000u : 0u;  // 1.0f / 0.0f
  const int ce = lane;  // element-wise phases: channel d0 + lane (kTD == 32)
  const bool ce_ok = d0 + ce < p.D;
  const bool has_z = p.z != nullptr;
  // The element-wise phases give every thread two channels, cp and cp + 1 (the same in every
  // iteration); whole tiles take the vector path without checks (full_cols and whole rows).
  const bool full_cols = p.vec_act && d0 + kTD <= p.D;
  const int cp = (2 * tid) & (kTD - 1);
  const bool ok0 = d0 + cp < p.D, ok1 = d0 + cp + 1 < p.D;
  // The channel pair's dt bias and D, and this thread's parameter-gradient sums, in shared memory
  // (fewer live registers; made visible by the barrier at the first chunk's staging).
  float4* s_par = reinterpret_cast<float4*>(smem + BL::kParOff);
  float4* s_accs = reinterpret_cast<float4*>(smem + BL::kAccOff);
  const float4* par_slot = s_par + (tid & 15);  // channel pair (2 tid) % 32
  float4* acc_slot = s_accs + tid;
  if (tid < 16) {
    const float2 bias2 =
        p.delta_bias.p ? make_float2(ok0 ? p.delta_bias[d0 + cp] : 0.f, ok1 ? p.delta_bias[d0 + cp + 1] : 0.f)
                       : make_float2(0.f, 0.f);
    const float2 D2 = p.Dskip.p ? make_float2(ok0 ? p.Dskip[d0 + cp] : 0.f, ok1 ? p.Dskip[d0 + cp + 1] : 0.f)
                                : make_float2(0.f, 0.f);
    s_par[tid] = make_float4(bias2.x, bias2.y, D2.x, D2.y);
  }
  *acc_slot = make_float4(0.f, 0.f, 0.f, 0.f);
  float A2[kNP];
  {
    float A[kNP];
    load_A(p, d, g, A, A2);
  }

  const int64_t col = int64_t(p.D) * kNPad;
  const int64_t own = int64_t(d) * kNPad + 4 * g;  // this thread's float4 in a [*, D, kNPad] slice
  const int64_t prow = int64_t(b) * p.nseg + seg;  // partials row
  float carry[kNP] = {0.f, 0.f, 0.f, 0.f}, dA[kNP] = {0.f, 0.f, 0.f, 0.f};
  const int c_lo = seg * p.seg_chunks, c_hi = min(p.nc, c_lo + p.seg_chunks);
  for (int c = c_hi - 1; c >= c_lo; c--) {
    const int t0 = c * kCS, rows = min(kCS, p.L - t0), cols = min(kTD, p.D - d0);
    __syncthreads();  // every thread is past the epilogues of chunk c + 1 (staged tiles, arrays)
    stage_chunk_full<T, kTD, kNPad, 4, 2, 32 * G>(smem, p, b, t0, d0, so, full_cols && rows == kCS,
                                                  p.vec_bc && rows == kCS);
    if (c == c_hi - 1) {
      // Everything above reads only inputs; the preparation's outputs (hstart, segG) and dBC
      // (zeroed before it) from here on (PDL: this block may have started during its tail).
      pdl_wait();
      if (d < p.D) unpack4(ld4(p.segG + prow * col + own), carry);  // dL/dh entering from the right
    }
    const float4 hst = (d < p.D && !p.sub_starts) ? ld4(p.hstart + (int64_t(b) * p.nc + c) * col + own)
                                                  : make_float4(0.f, 0.f, 0.f, 0.f);
    if (p.sub_starts) {
      // The states entering the sub-chunks were stored by the preparation: staged with the chunk
      // (no walk).
      // The block's kTD x kNPad states of a sub-chunk start are contiguous: float4 v = tid in
      // memory order (coalesced whatever the lane layout); thread (cl, g) reads slot cl * G + g.
      const float* src = p.hstart + (int64_t(b) * p.nc + c) * kNSub * col + int64_t(d0) * kNPad + 4 * tid;
      const bool okv = d0 + tid / G < p.D;
#pragma unroll
      for (int k = 0; k < kNSub; k++)
        cp_async16(s_ck + k * kTD * G + tid, okv ? src + k * col : p.hstart, okv);
    }
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    // Phase A: dt, dt*u and the gated upstream gradient, each element once.
    const T* su = SL::act(smem, 0);
    const T* sdl = SL::act(smem, 1);
    const T* sz = SL::act(smem, 2);
    const T* sdo = SL::act(smem, 3);
    const float2 bias2 = make_float2(par_slot->x, par_slot->y);
    if (full_cols && rows == kCS) {
      phase_a_full<T, 32 * G, true>(su, sdl, sz, sdo, s_dtu, s_gy, bias2, p.softplus, has_z);
    } else {
      for (int e2 = 2 * tid; e2 < kCS * kTD; e2 += 2 * 32 * G) {
        const int t = e2 / kTD;
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int e = e2 + h;
          float2 v = make_float2(0.f, 0.f);
          float gy = 0.f;
          if (t < rows && cp + h < cols) {
            v = dt_dtu(to_f(sdl[e]), h ? bias2.y : bias2.x, to_f(su[e]), p.softplus);
            gy = to_f(sdo[e]);
            if (has_z) {
              const float zz = to_f(sz[e]);
              gy *= zz * sigmoid_f(zz);
            }
          }
          s_dtu[e] = v;
          s_gy[e] = gy;
        }
      }
    }
    if (p.N == kNPad) {
      convert_bc_full<T, kNPad>(s_B, SL::bc(smem, 0));
      convert_bc_full<T, kNPad>(s_C, SL::bc(smem, 1));
    } else {
      convert_bc<T, kNPad>(s_B, SL::bc(smem, 0), p.N);
      convert_bc<T, kNPad>(s_C, SL::bc(smem, 1), p.N);
    }
    if (p.seq && tid < 32) {
      const uint32_t m = doc_start_mask(SL::seq(smem), t0, p.L);
      if (tid == 0) *s_mask = m;
    }
    __syncthreads();

    // Phase B: the states entering the sub-chunks, then the sub-chunks from last to first (those
    // starting past L do not exist), each followed by its epilogue.
    const uint32_t mask = p.seq ? *s_mask : 0u;
    if (p.sub_starts) {
      // s_ck already staged
    } else if (mask & ((1u << ((kNSub - 1) * kSC)) - 1u)) {
      walk_subchunk_starts<G, true>(s_dtu, s_B, mask, A2, hst, s_ck + slot, kTD * G, cl, g);
    } else {
      walk_subchunk_starts<G, false>(s_dtu, s_B, mask, A2, hst, s_ck + slot, kTD * G, cl, g);
    }
#pragma unroll 1
    for (int k = kNSub - 1; k >= 0; k--) {
      if (t0 + k * kSC >= p.L) continue;
      const float4 h0 = s_ck[k * kTD * G + slot];
      const BwdShared sh = shared_for(k);
      if ((mask >> (k * kSC)) & 0xffu)
        backward_subchunk<G, true, kMma>(sh, k, mask, h0, A2, carry, dA, has_z, g, cl, lane, warp, bsel);
      else
        backward_subchunk<G, false, kMma>(sh, k, mask, h0, A2, carry, dA, has_z, g, cl, lane, warp, bsel);
      __syncthreads();
      backward_subchunk_epilogue<T, G>(p, sh, su, sdl, sz, sdo, b, t0, k, cols, full_cols, par_slot, acc_slot);
    }
  }

  // Per-block parameter partials (summed over the rows in a fixed order by scan_finalize_kernel).
  if (d < p.D) {
    float A[kNP];
    load_A(p, d, g, A, A2);
    reinterpret_cast<float4*>(p.pA + prow * col + own)[0] =
        make_float4(dA[0] * A[0], dA[1] * A[1], dA[2] * A[2], dA[3] * A[3]);  // dL/dA_log = dL/dA * A
  }
  __syncthreads();                                                            // shared memory is reused below
  // [2][32 G] float2: thread tid's sums of channels (2 tid) % 32 and the next one; summed over
  // the threads of a channel in a fixed order.
  float* s_acc = s_gy;
  {
    const float4 acc = *acc_slot;
    reinterpret_cast<float2*>(s_acc)[tid] = make_float2(acc.x, acc.y);
    reinterpret_cast<float2*>(s_acc + 64 * G)[tid] = make_float2(acc.z, acc.w);
  }
  __syncthreads();
  if (warp == 0 && ce_ok) {
    float sD = 0.f, sB = 0.f;
    // Threads (lane / 2) + 16 m hold channel lane in component lane % 2.
#pragma unroll
    for (int m = 0; m < 2 * G; m++) {
      const int t2 = 2 * ((lane >> 1) + 16 * m) + (lane & 1);
      sD += s_acc[t2];
      sB += s_acc[64 * G + t2];
    }
    p.pD[prow * p.D + d0 + lane] = sD;
    p.pbias[prow * p.D + d0 + lane] = sB;
  }
  pdl_launch_dependents();
}

}  // namespace lmf::cuda::scan
