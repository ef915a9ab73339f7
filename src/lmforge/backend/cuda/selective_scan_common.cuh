// Selective scan (Mamba-1) on CUDA, channels-last: what the forward (selective_scan.cu), the
// chunk walkers (selective_scan_chunked.cuh) and the backward (selective_scan_backward.cu) share:
// the parameter block, the chunk staging (global -> shared with 16-byte cp.async), the document
// start masks and the A values.
//
// Work decomposition (docs/kernels-mamba.md has the full picture)
//  - Time is cut into chunks of kCS = 32 timesteps: the unit that is staged into shared memory,
//    whose document starts form one 32-bit mask, and at whose starts the backward keeps states.
//  - The N states of a channel are split over G threads ("g-lanes", adjacent lanes of one warp),
//    each keeping kNP = 4 states in fp32 registers; N is padded to kNPad = 4 G with zero B / C
//    columns (padded states stay 0 and never leave the kernel).
//  - Rows past L and channels past D are staged as zeros and get dt = 0, dt*u = 0, so they pass
//    the state through unchanged (exp(0) = 1, no input) and are never stored.
// Every recurrence step uses the same arithmetic: a = exp2(dt * A2) with A2 = A log2(e) on the
// SFU, a = 0 at a document start (the state does not flow), h = a h + (dt u) B.
#pragma once

#include <atomic>
#include <type_traits>

#include "lmforge/backend/cuda/mamba_common.cuh"

namespace lmf::cuda::scan {

using namespace mamba;

constexpr int kCS = 32;   // timesteps per chunk (one 32-bit ballot of document starts)
constexpr int kNP = 4;    // states per thread
constexpr int kMaxG = 8;  // N <= 32
static_assert(kCS == 32, "document starts of a chunk are one 32-bit ballot");

struct ScanParams {
  // [B, L, D] activations (dtype T): inputs, and the backward's upstream gradient.
  const void* u = nullptr;
  const void* delta = nullptr;
  const void* z = nullptr;     // optional
  const void* dout = nullptr;  // backward only
  const void* Bm = nullptr;    // [B, L, N]
  const void* Cm = nullptr;    // [B, L, N]
  // Outputs, dtype T (backward: du, ddelta, dz [B, L, D]).
  void* out = nullptr;
  void* du = nullptr;
  void* ddelta = nullptr;
  void* dz = nullptr;
  ParamPtr A_log;                // [D, N]
  ParamPtr Dskip;                // [D], optional
  ParamPtr delta_bias;           // [D], optional
  const int32_t* seq = nullptr;  // [B, L], optional
  float* final_state = nullptr;  // [B, D, N], optional (forward)
  // Backward scratch (f32, written by the preparation pass, read by the gradient pass):
  float* hstart = nullptr;  // [B, nc, D, kNPad]: h entering chunk c; with sub_starts
                            // [B, nc * 4, D, kNPad]: h entering every 8-step sub-chunk
  float* segP = nullptr;    // [B, nseg, D, kNPad]: product of the decays of segment s
  float* segG = nullptr;    // [B, nseg, D, kNPad]: first the segment's own dL/dh outflow, then the
                            // carry dL/dh flowing into segment s from the segments after it
  float* dBC = nullptr;     // [2, B, L, N] fp32 accumulators of dBm, dCm
  float* pA = nullptr;      // [B * nseg, D, kNPad] per-block partial dA_log
  float* pD = nullptr;      // [B * nseg, D] per-block partial dD
  float* pbias = nullptr;   // [B * nseg, D] per-block partial ddelta_bias
  int B = 0, L = 0, D = 0, N = 0;
  int nc = 0;          // chunks: ceil(L / kCS)
  int seg_chunks = 1;  // chunks per backward segment
  int nseg = 0;        // segments: ceil(nc / seg_chunks)
  bool softplus = true;
  bool sub_starts = false;  // hstart per 8-step sub-chunk (row-walker preparation)
  bool vec_act = false;  // [*, D] tensors take 16-byte vector copies
  bool vec_bc = false;   // [*, N] tensors take 16-byte vector copies
  bool pdl = false;                // backward: programmatic dependent launch of the later kernels
};

// Threads per channel for a state size N (N <= 32). At least 2, so that a row of 16 channels
// (the chunk walkers' tile) fills a warp.
inline int scan_groups(int64_t N) { return N <= 8 ? 2 : N <= 16 ? 4 : 8; }

// Shared-memory layout of one stage buffer of a tile of TD channels: NACT activation tiles
// [kCS][TD] (in the order stage_chunk names them), NBC tiles [kCS][N] of B / C (N <= NPad),
// seq [kCS + 1] (positions t0 - 1 .. t0 + kCS - 1).
template <class T, int TD, int NPad, int NACT, int NBC>
struct StageLayout {
  static constexpr int kTile = align16(kCS * TD * int(sizeof(T)));
  static constexpr int kBC = align16(kCS * NPad * int(sizeof(T)));
  static constexpr int kBCOff = NACT * kTile;
  static constexpr int kSeqOff = kBCOff + NBC * kBC;
  static constexpr int kBytes = kSeqOff + align16((kCS + 1) * 4);

  __device__ static T* act(char* buf, int a) { return reinterpret_cast<T*>(buf + a * kTile); }
  __device__ static T* bc(char* buf, int k) { return reinterpret_cast<T*>(buf + kBCOff + k * kBC); }
  __device__ static int32_t* seq(char* buf) { return reinterpret_cast<int32_t*>(buf + kSeqOff); }
};

// Issues the copies of chunk [t0, t0 + kCS) of batch row b, channels [d0, d0 + TD), into `buf`:
// the activations act[0..NACT) = u, delta, z, dout (z skipped when absent), B / C (the first
// NBC of them), seq. Completed by cp_async_wait_all (vector path) or synchronously (odd shapes).
template <class T, int TD, int NPad, int NACT, int NBC>
__device__ __forceinline__ void stage_chunk(char* buf, const ScanParams& p, int b, int t0, int d0) {
  using SL = StageLayout<T, TD, NPad, NACT, NBC>;
  const int rows = min(kCS, p.L - t0), cols = min(TD, p.D - d0);
  const int64_t act_off = (int64_t(b) * p.L + t0) * p.D + d0, bc_off = (int64_t(b) * p.L + t0) * p.N;
  const void* act[4] = {p.u, p.delta, p.z, p.dout};
#pragma unroll
  for (int a = 0; a < NACT; a++)
    if (act[a])
      stage_tile<T>(SL::act(buf, a), static_cast<const T*>(act[a]) + act_off, p.D, kCS, TD, rows, cols,
                    p.vec_act);
  const void* bc[2] = {p.Bm, p.Cm};
#pragma unroll
  for (int k = 0; k < NBC; k++)
    stage_tile<T>(SL::bc(buf, k), static_cast<const T*>(bc[k]) + bc_off, p.N, kCS, p.N, rows, p.N, p.vec_bc);
  if (p.seq) {
    const int32_t* srow = p.seq + int64_t(b) * p.L;
    for (int i = threadIdx.x; i < kCS + 1; i += blockDim.x) {
      const int t = t0 - 1 + i;
      const bool ok = t >= 0 && t < p.L;
      cp_async4(SL::seq(buf) + i, ok ? srow + t : srow, ok);
    }
  }
}

// stage_chunk for NT threads when the chunk is whole (t0 + kCS <= L) and, for the activations,
// the tile's TD channels exist with 16-byte vectors (p.vec_act), for B / C p.vec_bc: the same
// shared layout, no bounds checks, and the per-thread offsets of the activation vectors are
// loop-invariant (StageOffsets, computed once per kernel).
struct StageOffsets {
  int64_t g = 0;  // offset of the thread's first activation vector in the [*, D] tensors (row * D + col)
  int s = 0;  // its offset in a staged [kCS][TD] tile
};
template <class T, int TD, int NT>
__device__ __forceinline__ StageOffsets stage_offsets(int D) {
  constexpr int V = 16 / int(sizeof(T)), kVR = TD / V;
  const int r = int(threadIdx.x) / kVR, c = (int(threadIdx.x) % kVR) * V;
  return {int64_t(r) * D + c, r * TD + c};
}
template <class T, int TD, int NPad, int NACT, int NBC, int NT>
__device__ __forceinline__ void stage_chunk_full(char* buf, const ScanParams& p, int b, int t0, int d0,
                                                 StageOffsets so, bool act_full, bool bc_full) {
  using SL = StageLayout<T, TD, NPad, NACT, NBC>;
  constexpr int V = 16 / int(sizeof(T)), kVR = TD / V, kVT = kCS * kVR;  // vectors per row / tile
  constexpr int kRowsPerIt = NT / kVR;
  static_assert(NT % kVR == 0, "whole rows per pass");
  if (!act_full || !bc_full) {
    stage_chunk<T, TD, NPad, NACT, NBC>(buf, p, b, t0, d0);
    return;
  }
  const int64_t act_off = (int64_t(b) * p.L + t0) * p.D + d0, bc_off = (int64_t(b) * p.L + t0) * p.N;
  const void* act[4] = {p.u, p.delta, p.z, p.dout};
#pragma unroll
  for (int a = 0; a < NACT; a++) {
    if (!act[a]) continue;
    const T* src = static_cast<const T*>(act[a]) + act_off + so.g;
    T* dst = SL::act(buf, a) + so.s;
#pragma unroll
    for (int i = 0; i < (kVT + NT - 1) / NT; i++)
      if (kVT % NT == 0 || i * NT + int(threadIdx.x) < kVT)
        cp_async16(dst + i * kRowsPerIt * TD, src + int64_t(i * kRowsPerIt) * p.D, true);
  }
  const void* bc[2] = {p.Bm, p.Cm};
  const int nv = kCS * p.N / V;  // a whole chunk of B / C rows is contiguous
#pragma unroll
  for (int k = 0; k < NBC; k++) {
    const T* src = static_cast<const T*>(bc[k]) + bc_off;
    T* dst = SL::bc(buf, k);
    for (int v = threadIdx.x; v < nv; v += NT) cp_async16(dst + v * V, src + v * V, true);
  }
  if (p.seq) {
    const int32_t* srow = p.seq + int64_t(b) * p.L;
    for (int i = threadIdx.x; i < kCS + 1; i += NT) {
      const int t = t0 - 1 + i;
      const bool ok = t >= 0;  // t < L: the chunk is whole
      cp_async4(SL::seq(buf) + i, ok ? srow + t : srow, ok);
    }
  }
}

// B / C of the chunk to fp32 [kCS][NPad], zero-padded past N (rows past L are already 0).
template <class T, int NPad>
__device__ __forceinline__ void convert_bc(float* dst, const T* src, int N) {
  for (int e = threadIdx.x; e < kCS * NPad; e += blockDim.x) {
    const int t = e / NPad, n = e - t * NPad;
    dst[e] = n < N ? to_f(src[t * N + n]) : 0.f;
  }
}

// Bit t set when position t0 + t starts a new document (seq differs from t0 + t - 1). Called by
// one whole warp; returns the mask in every lane of it.
__device__ __forceinline__ uint32_t doc_start_mask(const int32_t* sseq, int t0, int L) {
  const int t = threadIdx.x & 31;
  const bool start = t0 + t > 0 && t0 + t < L && sseq[t + 1] != sseq[t];
  return __ballot_sync(0xffffffffu, start);
}

// dt and dt*u of one element: dt = delta + bias, softplus'd when asked.
__device__ __forceinline__ float2 dt_dtu(float delta, float bias, float u, bool softplus) {
  const float raw = delta + bias;
  const float dt = softplus ? softplus_f(raw) : raw;
  return make_float2(dt, dt * u);
}

// ---- element-wise fast paths ------------------------------------------------------------------
// The element-wise phases (dt, dt*u, gated dL/dy, outputs) handle two adjacent channels per
// thread when a tile is full (kCS rows, all channels present, 16-byte-copyable activations):
// one 32-bit (bf16/f16) or 64-bit (f32) shared load per two elements, one global store per two
// outputs, no per-element bounds checks, no 64-bit index math (offsets inside a tile are int).
// Exponentials use ex2.approx.ftz directly (no denormal rescaling: results below 2^-126 are 0).

// Two adjacent elements (p 2-element aligned) to floats / from floats (round to nearest).
template <class T>
__device__ __forceinline__ float2 ld2(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return *reinterpret_cast<const float2*>(p);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
  } else {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
  }
}
template <class T>
__device__ __forceinline__ void st2(T* p, float a, float b) {
  if constexpr (std::is_same_v<T, float>) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
  } else {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
  }
}

// e^x on the SFU, flushing results below 2^-126 to 0 (one FMUL + MUFU.EX2).
__device__ __forceinline__ float exp_ftz(float x) { return exp2_approx(x * kLog2e); }

// softplus for the fast paths: max(x, 0) + log1p(w), w = e^-|x| in (0, 1], log1p(w) = w p(w)
// with p the degree-8 polynomial interpolating log1p(w) / w at the Chebyshev nodes of [0, 1]
// (max relative error of w p(w) in fp32 Horner: 1.9e-7 over [0, 1], like log1pf's ~1 ulp; plus
// the 2^-22 of ex2.approx on w). 13 instructions instead of ~25 for log1pf(e^x) and the select.
// Past x = 20 it returns x exactly (log1p(e^-x) < half an ulp of x), PyTorch's threshold.
__device__ __forceinline__ float softplus_poly(float x) {
  const float w = exp2_approx(-fabsf(x) * kLog2e);
  float q = 0.005126102361828089f;
  q = fmaf(q, w, -0.029074065387248993f);
  q = fmaf(q, w, 0.0775160863995552f);
  q = fmaf(q, w, -0.13602247834205627f);
  q = fmaf(q, w, 0.19076880812644958f);
  q = fmaf(q, w, -0.2483539879322052f);
  q = fmaf(q, w, 0.3331812024116516f);
  q = fmaf(q, w, -0.4999944567680359f);
  q = fmaf(q, w, 0.9999999403953552f);
  return fmaxf(x, 0.f) + w * q;
}
// 1 / (1 + e^-x) (e^-x = inf gives 0).
__device__ __forceinline__ float sigmoid_ftz(float x) { return __fdividef(1.f, 1.f + exp_ftz(-x)); }

// Phase A of a full [kCS][32-channel] tile by NT threads, two channels per thread: s_dtu[e] =
// (dt, dt*u) and (kGy) s_gy[e] = dout * silu(z) (dout without z). The channels of a thread are
// (2 tid) % 32 and the next one whatever the iteration (NT is a multiple of 16), so the bias pair
// is per thread.
template <class T, int NT, bool kGy>
__device__ __forceinline__ void phase_a_full(const T* __restrict__ su, const T* __restrict__ sdl,
                                             const T* __restrict__ sz, const T* __restrict__ sdo,
                                             float2* __restrict__ s_dtu, float* __restrict__ s_gy, float2 bias2,
                                             bool softplus, bool has_z) {
  static_assert(NT % 16 == 0 && (kCS * 32 / 2) % NT == 0, "whole iterations of channel pairs");
#pragma unroll
  for (int it = 0; it < kCS * 32 / 2 / NT; it++) {
    const int e = 2 * (it * NT + int(threadIdx.x));
    const float2 dl = ld2(sdl + e), uu = ld2(su + e);
    float dt0 = dl.x + bias2.x, dt1 = dl.y + bias2.y;
    if (softplus) {
      dt0 = softplus_poly(dt0);
      dt1 = softplus_poly(dt1);
    }
    *reinterpret_cast<float4*>(s_dtu + e) = make_float4(dt0, dt0 * uu.x, dt1, dt1 * uu.y);
    if constexpr (kGy) {
      float2 gy = ld2(sdo + e);
      if (has_z) {
        const float2 zz = ld2(sz + e);
        gy.x *= zz.x * sigmoid_ftz(zz.x);
        gy.y *= zz.y * sigmoid_ftz(zz.y);
      }
      *reinterpret_cast<float2*>(s_gy + e) = gy;
    }
  }
}

// B / C of the chunk to fp32 [kCS][NPad] when N == NPad (no padding): four elements per thread
// and iteration.
template <class T, int NPad>
__device__ __forceinline__ void convert_bc_full(float* __restrict__ dst, const T* __restrict__ src) {
  for (int v = threadIdx.x; v < kCS * NPad / 4; v += blockDim.x) {
    const float2 a = ld2(src + 4 * v), b = ld2(src + 4 * v + 2);
    *reinterpret_cast<float4*>(dst + 4 * v) = make_float4(a.x, a.y, b.x, b.y);
  }
}

// The A values of this thread's 4 states: A = -exp(A_log) (PARITY.md §1) and A * log2(e) for
// exp2. States past N (or channels past D) get 0.
__device__ __forceinline__ void load_A(const ScanParams& p, int d, int g, float (&A)[kNP], float (&A2)[kNP]) {
#pragma unroll
  for (int i = 0; i < kNP; i++) {
    const int n = g * kNP + i;
    A[i] = (d < p.D && n < p.N) ? -expf(p.A_log[int64_t(d) * p.N + n]) : 0.f;
    A2[i] = A[i] * kLog2e;
  }
}

// One recurrence decay: exp(dt A) (0 at a document start: the state does not flow).
__device__ __forceinline__ float decay(float dt, float A2, bool reset) {
  const float a = exp2_approx(dt * A2);
  return reset ? 0.f : a;
}

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, const float (&v)[kNP]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void unpack4(float4 v, float (&o)[kNP]) {
  o[0] = v.x;
  o[1] = v.y;
  o[2] = v.z;
  o[3] = v.w;
}

// Sets the dynamic shared-memory limit of `kernel` (needed above 48 KB) once per device and asks
// for the largest shared-memory carveout (several blocks per SM). `done` is the caller's
// per-kernel static (one bit per device index < 64).
inline void prepare_kernel(const void* kernel, int smem_bytes, std::atomic<uint64_t>& done) {
  int dev = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = dev < 64 ? (uint64_t(1) << dev) : 0;
  if (bit && (done.load(std::memory_order_acquire) & bit)) return;
  LMF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes));
  LMF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      int(cudaSharedmemCarveoutMaxShared)));
  done.fetch_or(bit, std::memory_order_acq_rel);
}

// Validates the CUDA-specific requirements (one activation dtype for u, delta, z, Bm, Cm, dout;
// N <= 32; i32 seq_idx) and fills the shared fields (defined in selective_scan.cu).
ScanParams make_scan_params(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A_log,
                            const Tensor& Bm, const Tensor& Cm, const Tensor& Dskip, const Tensor& z,
                            const Tensor& delta_bias, const Tensor& seq_idx, bool delta_softplus,
                            const Tensor& dout);

}  // namespace lmf::cuda::scan
