// Selective scan (Mamba-1) on CUDA, channels-last: the parts shared by the forward
// (selective_scan.cu) and the backward (selective_scan_backward.cu): launch parameters, the
// chunk staging, and the forward kernel, which also serves as the backward's checkpoint pass.
//
// Work decomposition (the same for every kernel here)
//  - One thread block owns one batch row b and a tile of kTD = 32 channels [d0, d0 + 32), and
//    walks L in chunks of kCS = 32 timesteps (kernel_list.inc gives the recurrence).
//  - The N states of a channel are split over G = ceil(N / 4) threads ("g-lanes", adjacent lanes
//    of one warp), each keeping kNP = 4 states in fp32 registers: 32 * G threads per block.
//    N is padded to kNPad = 4 * G with zero B/C columns (states that stay 0).
//  - A chunk is staged global -> shared with 16-byte cp.async into one of two buffers while the
//    previous one is processed; the channels-last layout makes a [kCS, kTD] tile 32 contiguous
//    row segments. Then three phases separated by __syncthreads:
//      A (element-wise, each element once): dt = softplus(delta + bias), dt*u -> fp32 shared;
//        B, C -> fp32 shared (zero-padded); document starts -> a 32-bit mask (one ballot).
//      B (recurrence): each thread steps its 4 states through the 32 timesteps; the per-step
//        partial y = sum_n h C is summed over the g-lanes with shuffles.
//      C (element-wise): out = (y + D u) * silu(z), stored coalesced.
//    Rows past L and channels past D are staged as zeros and get dt = 0, dt*u = 0 in phase A, so
//    they pass the state through unchanged (exp(0) = 1, no input) and are never stored.
#pragma once

#include <atomic>

#include "lmforge/backend/cuda/mamba_common.cuh"

namespace lmf::cuda::scan {

using namespace mamba;

constexpr int kTD = 32;  // channels per block (one warp-width tile row)
constexpr int kCS = 32;  // timesteps per chunk (one 32-bit ballot of document starts)
constexpr int kNP = 4;   // states per thread
constexpr int kSC = 8;   // the backward checkpoints the state every kSC steps
constexpr int kMaxG = 8; // N <= 32
static_assert(kTD == 32, "element-wise phases map channel = lane");
static_assert(kCS == 32, "document starts of a chunk are one 32-bit ballot");
static_assert(kCS % kSC == 0 && kSC == 8, "sub-chunk masks are 8-bit slices of the chunk mask");

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
  ParamPtr A_log;       // [D, N]
  ParamPtr Dskip;       // [D], optional
  ParamPtr delta_bias;  // [D], optional
  const int32_t* seq = nullptr;  // [B, L], optional
  float* final_state = nullptr;  // [B, D, N], optional (forward)
  float* states = nullptr;       // [B, nsub, D, kNPad] checkpoints: h before step kSC * s
  float* dBC = nullptr;          // [2, B, L, N] fp32 accumulators of dBm, dCm (backward)
  float* pA = nullptr;           // [B, D, kNPad] per-row partial dA_log (backward)
  float* pD = nullptr;           // [B, D] per-row partial dD
  float* pbias = nullptr;        // [B, D] per-row partial ddelta_bias
  int B = 0, L = 0, D = 0, N = 0, nsub = 0;
  bool softplus = true;
  bool vec_act = false;  // [*, D] tensors take 16-byte vector copies
  bool vec_bc = false;   // [*, N] tensors take 16-byte vector copies
};

// Threads per channel for a state size N (N <= 32).
inline int scan_groups(int64_t N) { return N <= 4 ? 1 : N <= 8 ? 2 : N <= 16 ? 4 : 8; }

// Shared-memory layout of one stage buffer: NACT activation tiles [kCS][kTD] (in the order the
// kernel names them), NBC tiles [kCS][N] of B / C (N <= kNPad), seq [kCS + 1] (positions
// t0 - 1 .. t0 + kCS - 1).
template <class T, int G, int NACT, int NBC>
struct StageLayout {
  static constexpr int kNPad = 4 * G;
  static constexpr int kTile = align16(kCS * kTD * int(sizeof(T)));
  static constexpr int kBC = align16(kCS * kNPad * int(sizeof(T)));
  static constexpr int kBCOff = NACT * kTile;
  static constexpr int kSeqOff = kBCOff + NBC * kBC;
  static constexpr int kBytes = kSeqOff + align16((kCS + 1) * 4);

  __device__ static T* act(char* buf, int a) { return reinterpret_cast<T*>(buf + a * kTile); }
  __device__ static T* bc(char* buf, int k) { return reinterpret_cast<T*>(buf + kBCOff + k * kBC); }
  __device__ static int32_t* seq(char* buf) { return reinterpret_cast<int32_t*>(buf + kSeqOff); }
};

// Issues the copies of chunk [t0, t0 + kCS) of batch row b, channels [d0, d0 + kTD), into `buf`:
// the activations act[0..NACT) = u, delta, z, dout (z skipped when absent), B / C. The global
// pointers are recomputed here from the parameters rather than kept live in registers.
template <class T, int G, int NACT, int NBC>
__device__ __forceinline__ void stage_chunk(char* buf, const ScanParams& p, int b, int t0, int d0) {
  using SL = StageLayout<T, G, NACT, NBC>;
  const int rows = min(kCS, p.L - t0), cols = min(kTD, p.D - d0);
  const int64_t act_off = (int64_t(b) * p.L + t0) * p.D + d0, bc_off = (int64_t(b) * p.L + t0) * p.N;
  const void* act[4] = {p.u, p.delta, p.z, p.dout};
#pragma unroll
  for (int a = 0; a < NACT; a++)
    if (act[a]) stage_tile<T>(SL::act(buf, a), static_cast<const T*>(act[a]) + act_off, p.D, kCS, kTD, rows, cols, p.vec_act);
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

// Phase A pieces common to forward and backward.
// B / C of the chunk to fp32 [kCS][kNPad], zero-padded past N (rows past L are already 0).
template <class T, int G>
__device__ __forceinline__ void convert_bc(float* dst, const T* src, int N) {
  constexpr int kNPad = 4 * G;
  for (int e = threadIdx.x; e < kCS * kNPad; e += blockDim.x) {
    const int t = e / kNPad, n = e - t * kNPad;
    dst[e] = n < N ? to_f(src[t * N + n]) : 0.f;
  }
}

// Bit t set when position t0 + t starts a new document (seq differs from t0 + t - 1). Called by
// warp 0; returns the mask in every lane of it.
__device__ __forceinline__ uint32_t doc_start_mask(const int32_t* sseq, int t0, int L) {
  const int t = threadIdx.x & 31;
  const bool start = t0 + t > 0 && t0 + t < L && sseq[t + 1] != sseq[t];
  return __ballot_sync(0xffffffffu, start);
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

// ---- forward kernel (also the backward's checkpoint pass) ---------------------------------
// kStates == false: out (and final_state) as in kernel_list.inc.
// kStates == true: no output; stores h before every step t % kSC == 0 into p.states (what the
// backward restarts from). Reads only u, delta, B, seq.
template <class T, int G, bool kStates>
struct ForwardLayout {
  static constexpr int kNAct = kStates ? 2 : 3;  // u, delta, [z]
  static constexpr int kNBC = kStates ? 1 : 2;   // B, [C]
  using Stage = StageLayout<T, G, kNAct, kNBC>;
  static constexpr int kNPad = 4 * G;
  static constexpr int kDtuOff = 2 * Stage::kBytes;                       // float2 [kCS][kTD]
  static constexpr int kBCOff = kDtuOff + align16(kCS * kTD * 8);        // float [kNBC][kCS][kNPad]
  static constexpr int kYOff = kBCOff + kNBC * align16(kCS * kNPad * 4);  // float [kCS][kTD]
  static constexpr int kMaskOff = kYOff + (kStates ? 0 : align16(kCS * kTD * 4));
  static constexpr int kBytes = kMaskOff + 16;
  static_assert(kBytes <= 227 * 1024, "forward shared memory exceeds the per-block limit");
};

template <class T, int G, bool kStates, bool kReset>
__device__ __forceinline__ void forward_chunk_recurrence(const float2* s_dtu, const float* s_B, const float* s_C,
                                                         float* s_y, uint32_t mask, const float (&A2)[kNP],
                                                         float (&h)[kNP], const ScanParams& p, int b, int t0,
                                                         int d, int g, int cl, int lane) {
  constexpr int kNPad = 4 * G;
  using Red = LaneReduce<4, G / 2, 1>;
#pragma unroll
  for (int tb = 0; tb < kCS; tb += 4) {
    float y[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const int t = tb + k;
      if constexpr (kStates) {
        if (t % kSC == 0 && t0 + t < p.L && d < p.D) {
          const int64_t s = (int64_t(b) * p.nsub + (t0 + t) / kSC) * p.D + d;
          reinterpret_cast<float4*>(p.states + s * kNPad)[g] = make_float4(h[0], h[1], h[2], h[3]);
        }
      }
      const float2 dd = s_dtu[t * kTD + cl];
      const float4 bv = reinterpret_cast<const float4*>(s_B + t * kNPad)[g];
      const float bb[4] = {bv.x, bv.y, bv.z, bv.w};
      const bool rs = kReset && ((mask >> t) & 1u);
      float acc = 0.f;
      if constexpr (!kStates) {
        const float4 cv = reinterpret_cast<const float4*>(s_C + t * kNPad)[g];
        const float cc[4] = {cv.x, cv.y, cv.z, cv.w};
#pragma unroll
        for (int i = 0; i < kNP; i++) {
          const float a = exp2_approx(dd.x * A2[i]), x = dd.y * bb[i];
          h[i] = rs ? x : fmaf(a, h[i], x);
          acc = fmaf(h[i], cc[i], acc);
        }
      } else {
#pragma unroll
        for (int i = 0; i < kNP; i++) {
          const float a = exp2_approx(dd.x * A2[i]), x = dd.y * bb[i];
          h[i] = rs ? x : fmaf(a, h[i], x);
        }
      }
      y[k] = acc;
    }
    if constexpr (!kStates) {
      int base = 0;
      Red::run(y, lane, base);
      if ((lane & Red::kWriterMask) == 0) {
#pragma unroll
        for (int j = 0; j < Red::kOut; j++) s_y[(tb + base + j) * kTD + cl] = y[j];
      }
    }
  }
}

template <class T, int G, bool kStates>
__global__ void __launch_bounds__(32 * G) scan_forward_kernel(ScanParams p) {
  using FL = ForwardLayout<T, G, kStates>;
  using SL = typename FL::Stage;
  constexpr int kNPad = 4 * G;
  extern __shared__ __align__(16) char smem[];
  float2* s_dtu = reinterpret_cast<float2*>(smem + FL::kDtuOff);
  float* s_B = reinterpret_cast<float*>(smem + FL::kBCOff);
  float* s_C = s_B + kCS * kNPad;  // only when !kStates
  float* s_y = reinterpret_cast<float*>(smem + FL::kYOff);
  uint32_t* s_mask = reinterpret_cast<uint32_t*>(smem + FL::kMaskOff);

  const int b = blockIdx.y, d0 = blockIdx.x * kTD;
  const int tid = threadIdx.x, lane = tid & 31;
  const int g = tid % G, cl = tid / G, d = d0 + cl;  // recurrence: channel cl, states 4g..4g+3
  const int ce = tid % kTD;                          // element-wise phases: channel ce
  const bool ce_ok = d0 + ce < p.D;
  const float bias_e = (p.delta_bias.p && ce_ok) ? p.delta_bias[d0 + ce] : 0.f;
  const float D_e = (p.Dskip.p && ce_ok) ? p.Dskip[d0 + ce] : 0.f;
  float A[kNP], A2[kNP];
  load_A(p, d, g, A, A2);

  const int64_t row = int64_t(b) * p.L;
  float h[kNP] = {0.f, 0.f, 0.f, 0.f};
  const int n_chunks = (p.L + kCS - 1) / kCS;
  stage_chunk<T, G, FL::kNAct, FL::kNBC>(smem, p, b, 0, d0);
  cp_async_commit();
  for (int c = 0; c < n_chunks; c++) {
    char* buf = smem + (c & 1) * SL::kBytes;
    const int t0 = c * kCS, rows = min(kCS, p.L - t0), cols = min(kTD, p.D - d0);
    cp_async_wait_all();
    __syncthreads();  // chunk c landed; every thread is past phase C of chunk c - 1
    if (c + 1 < n_chunks)
      stage_chunk<T, G, FL::kNAct, FL::kNBC>(smem + ((c + 1) & 1) * SL::kBytes, p, b, t0 + kCS, d0);
    cp_async_commit();

    // Phase A.
    const T* su = SL::act(buf, 0);
    const T* sdl = SL::act(buf, 1);
    for (int e = tid; e < kCS * kTD; e += blockDim.x) {
      const int t = e / kTD;
      float2 v = make_float2(0.f, 0.f);
      if (t < rows && ce < cols) {
        const float raw = to_f(sdl[e]) + bias_e;
        const float dt = p.softplus ? softplus_f(raw) : raw;
        v = make_float2(dt, dt * to_f(su[e]));
      }
      s_dtu[e] = v;
    }
    convert_bc<T, G>(s_B, SL::bc(buf, 0), p.N);
    if constexpr (!kStates) convert_bc<T, G>(s_C, SL::bc(buf, 1), p.N);
    if (p.seq && tid < 32) {
      const uint32_t m = doc_start_mask(SL::seq(buf), t0, p.L);
      if (tid == 0) *s_mask = m;
    }
    __syncthreads();

    // Phase B.
    const uint32_t mask = p.seq ? *s_mask : 0u;
    if (mask == 0u)
      forward_chunk_recurrence<T, G, kStates, false>(s_dtu, s_B, s_C, s_y, mask, A2, h, p, b, t0, d, g, cl, lane);
    else
      forward_chunk_recurrence<T, G, kStates, true>(s_dtu, s_B, s_C, s_y, mask, A2, h, p, b, t0, d, g, cl, lane);

    // Phase C.
    if constexpr (!kStates) {
      __syncthreads();
      const T* sz = SL::act(buf, 2);
      T* out = static_cast<T*>(p.out) + (row + t0) * p.D + d0;
      for (int e = tid; e < kCS * kTD; e += blockDim.x) {
        const int t = e / kTD;
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
  }
  if constexpr (!kStates) {
    if (p.final_state && d < p.D) {
#pragma unroll
      for (int i = 0; i < kNP; i++) {
        const int n = g * kNP + i;
        if (n < p.N) p.final_state[(int64_t(b) * p.D + d) * p.N + n] = h[i];
      }
    }
  }
  (void)A;
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

// The checkpoint pass / forward launch for one (T, G).
template <class T, int G, bool kStates>
void launch_scan_forward(const ScanParams& p) {
  constexpr int smem = ForwardLayout<T, G, kStates>::kBytes;
  auto kernel = scan_forward_kernel<T, G, kStates>;
  static std::atomic<uint64_t> prepared{0};
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem, prepared);
  const dim3 grid(unsigned((p.D + kTD - 1) / kTD), unsigned(p.B));
  kernel<<<grid, 32 * G, smem, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, bool kStates>
void launch_forward_any_g(const ScanParams& p) {
  switch (scan_groups(p.N)) {
    case 1: launch_scan_forward<T, 1, kStates>(p); break;
    case 2: launch_scan_forward<T, 2, kStates>(p); break;
    case 4: launch_scan_forward<T, 4, kStates>(p); break;
    default: launch_scan_forward<T, 8, kStates>(p); break;
  }
}

// Validates the CUDA-specific requirements (one activation dtype for u, delta, z, Bm, Cm, dout;
// N <= 32; i32 seq_idx) and fills the shared fields (defined in selective_scan.cu).
ScanParams make_scan_params(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A_log,
                            const Tensor& Bm, const Tensor& Cm, const Tensor& Dskip, const Tensor& z,
                            const Tensor& delta_bias, const Tensor& seq_idx, bool delta_softplus,
                            const Tensor& dout);

}  // namespace lmf::cuda::scan
