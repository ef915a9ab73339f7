// Causal depthwise conv1d (Mamba) on CUDA, channels-last [B, L, D] (kernel_list.inc).
//
// Both directions are bandwidth kernels: a thread owns V adjacent channels (one 16-byte vector
// forward: 8 bf16 / 4 f32; 4 channels backward) and a run of TT timesteps, and issues ALL the
// loads of its run (plus the K-1 step halo) before using any of them, so each thread keeps
// (TT + K - 1) vectors in flight: with ~400 threads per SM that is well over the ~30 KB per SM
// that HBM3 needs to stay busy. The raw vectors stay packed in registers and are widened to
// fp32 when used; the K-tap window slides over them at compile time (fully unrolled). A warp
// covers 32·V channels of one timestep (coalesced); a block stacks kWarps runs along time, so
// the halo of one warp is the tail of its neighbour's rows (an L1/L2 hit, not a DRAM read).
//
// Forward: y[t] = act(bias + sum_j w[j] x[t-K+1+j]) (same document only).
//
// Backward: a thread walks `runs` consecutive runs of TT steps. For its run it recomputes the
// pre-activation and g = dy * silu'(pre) for the TT own steps plus the K-1 following ones (the
// transposed conv needs g[s .. s+K-1] for dx[s]): dx[s] = sum_j w[j] g[s+K-1-j] (same document).
// The last 2(K-1) x vectors and K-1 dy vectors of a run are the first of the next (register
// moves), so x and dy are loaded once per thread apart from the first halo. dw[d, j] and
// dbias[d] are summed per thread over its own steps, then over the block's kWarps warps in
// shared memory, written as one partial per (b, block row); conv_weight_grads_kernel sums the
// partials in a fixed order into dw_acc / dbias_acc: deterministic, no atomics.
//
// D % V != 0 or unaligned pointers: the same kernels with element loads (p.vec = false).
#include <climits>
#include <cstdlib>
#include <type_traits>

#include "lmforge/backend/cuda/mamba_common.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

using mamba::ParamPtr;

constexpr int kLanes = 32;  // threads along channels (a warp)
constexpr int kWarps = 4;   // warps per block, along time
constexpr int kMaxK = 8;
constexpr int kMaxRuns = 8;  // backward: runs per thread (bounds the partial count from below)

struct ConvParams {
  const void* x = nullptr;
  const void* dy = nullptr;
  void* y = nullptr;
  void* dx = nullptr;
  ParamPtr w, bias;
  const int32_t* seq = nullptr;
  float* partial = nullptr;  // [P, D, K + 1]: dw then dbias, P = B * gridDim.y
  int B = 0, L = 0, D = 0;
  int runs = 1;  // backward: runs of TT steps per thread
  bool silu = false;
  bool vec = false;  // D % V == 0 and V-aligned pointers: vector loads / stores
};

// V elements of T as raw bits (packed: 2 bf16 / f16 per word), one 4/8/16-byte vector.
template <class T, int V>
struct Raw {
  static constexpr int kWords = V * int(sizeof(T)) / 4;
  static_assert(kWords == 1 || kWords == 2 || kWords == 4, "vector of 4, 8 or 16 bytes");
  uint32_t w[kWords];
};

template <class T>
__device__ __forceinline__ uint32_t bits_of(T v) {
  if constexpr (sizeof(T) == 4) {
    return __float_as_uint(v);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat16_as_ushort(v);
  } else {
    return __half_as_ushort(v);
  }
}

template <class T, int V>
__device__ __forceinline__ float elem(const Raw<T, V>& r, int c) {
  if constexpr (sizeof(T) == 4) {
    return __uint_as_float(r.w[c]);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __uint_as_float((c & 1) ? (r.w[c >> 1] & 0xffff0000u) : (r.w[c >> 1] << 16));
  } else {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(r.w[c >> 1] >> (16 * (c & 1)))));
  }
}

template <class T, int V>
__device__ __forceinline__ void zero_raw(Raw<T, V>& r) {
#pragma unroll
  for (int k = 0; k < Raw<T, V>::kWords; k++) r.w[k] = 0u;
}

// p[off .. off+V) (only the first `nvalid` exist; with `vec` all V do and off is V-aligned).
template <class T, int V>
__device__ __forceinline__ void load_raw(const T* p, int64_t off, int nvalid, bool vec, Raw<T, V>& r) {
  constexpr int W = Raw<T, V>::kWords;
  if (vec) {
    if constexpr (W == 4) {
      const uint4 q = __ldg(reinterpret_cast<const uint4*>(p + off));
      r.w[0] = q.x, r.w[1] = q.y, r.w[2] = q.z, r.w[3] = q.w;
    } else if constexpr (W == 2) {
      const uint2 q = __ldg(reinterpret_cast<const uint2*>(p + off));
      r.w[0] = q.x, r.w[1] = q.y;
    } else {
      r.w[0] = __ldg(reinterpret_cast<const unsigned int*>(p + off));
    }
  } else {
    zero_raw(r);
#pragma unroll
    for (int c = 0; c < V; c++) {
      if (c < nvalid) {
        if constexpr (sizeof(T) == 4)
          r.w[c] = bits_of(p[off + c]);
        else
          r.w[c >> 1] |= bits_of(p[off + c]) << (16 * (c & 1));
      }
    }
  }
}

template <class T, int V>
__device__ __forceinline__ void store_vals(T* p, int64_t off, int nvalid, bool vec, const float (&v)[V]) {
  constexpr int W = Raw<T, V>::kWords;
  if (vec) {
    Raw<T, V> r;
    if constexpr (sizeof(T) == 4) {
#pragma unroll
      for (int c = 0; c < V; c++) r.w[c] = __float_as_uint(v[c]);
    } else {
#pragma unroll
      for (int k = 0; k < W; k++)
        r.w[k] = bits_of(from_f<T>(v[2 * k])) | (bits_of(from_f<T>(v[2 * k + 1])) << 16);
    }
    if constexpr (W == 4) {
      *reinterpret_cast<uint4*>(p + off) = make_uint4(r.w[0], r.w[1], r.w[2], r.w[3]);
    } else if constexpr (W == 2) {
      *reinterpret_cast<uint2*>(p + off) = make_uint2(r.w[0], r.w[1]);
    } else {
      *reinterpret_cast<unsigned int*>(p + off) = r.w[0];
    }
  } else {
#pragma unroll
    for (int c = 0; c < V; c++)
      if (c < nvalid) p[off + c] = from_f<T>(v[c]);
  }
}

__device__ __forceinline__ float silu_f(float v) { return v * mamba::sigmoid_f(v); }
__device__ __forceinline__ float silu_grad_f(float v) {
  const float s = mamba::sigmoid_f(v);
  return s * (1.f + v * (1.f - s));
}

// w[j][c] = w[d+c, j], bias[c] = bias[d+c] (0 for channels past nvalid / no bias), in fp32.
template <class P, int K, int V>
__device__ __forceinline__ void load_params_as(const ConvParams& p, int d, int nvalid, float (&w)[K][V],
                                               float (&bias)[V]) {
  const P* wp = static_cast<const P*>(p.w.p);
  const P* bp = static_cast<const P*>(p.bias.p);
#pragma unroll
  for (int c = 0; c < V; c++) {
    const bool ok = c < nvalid;
#pragma unroll
    for (int j = 0; j < K; j++) w[j][c] = ok ? to_f(wp[int64_t(d + c) * K + j]) : 0.f;
    bias[c] = (ok && bp) ? to_f(bp[d + c]) : 0.f;
  }
}

template <int K, int V>
__device__ __forceinline__ void load_params(const ConvParams& p, int d, int nvalid, float (&w)[K][V],
                                            float (&bias)[V]) {
  // One dtype switch per thread (ParamPtr::operator[] would switch per element); w and bias
  // share the kind whenever bias is given (the op casts both to one dtype).
  const int kind = p.w.kind;
  if (p.bias.p && p.bias.kind != kind) {
#pragma unroll
    for (int c = 0; c < V; c++) {
#pragma unroll
      for (int j = 0; j < K; j++) w[j][c] = c < nvalid ? p.w[int64_t(d + c) * K + j] : 0.f;
      bias[c] = c < nvalid ? p.bias[d + c] : 0.f;
    }
  } else if (kind == 0) {
    load_params_as<float, K, V>(p, d, nvalid, w, bias);
  } else if (kind == 1) {
    load_params_as<__nv_bfloat16, K, V>(p, d, nvalid, w, bias);
  } else {
    load_params_as<__half, K, V>(p, d, nvalid, w, bias);
  }
}

// ---- forward ---------------------------------------------------------------------------------
// Grid (ceil(D / 32V), ceil(L / (kWarps TT)), B), block (32, kWarps).
template <class T, int K, int V, int TT, bool kSeq>
__global__ void __launch_bounds__(kLanes* kWarps) conv_fwd_kernel(ConvParams p) {
  const int d = (blockIdx.x * kLanes + threadIdx.x) * V;
  const int b = blockIdx.z;
  const int t0 = (blockIdx.y * kWarps + threadIdx.y) * TT;
  if (d >= p.D || t0 >= p.L) return;
  const int nvalid = min(V, p.D - d);
  const T* x = static_cast<const T*>(p.x) + int64_t(b) * p.L * p.D;
  T* y = static_cast<T*>(p.y) + int64_t(b) * p.L * p.D;
  const int32_t* seq = kSeq ? p.seq + int64_t(b) * p.L : nullptr;

  // Slot i holds position t0 - (K-1) + i; all loads first (bytes in flight), then the math.
  constexpr int NX = TT + K - 1;
  Raw<T, V> xr[NX];
  int sq[kSeq ? NX : 1];
  (void)sq;
#pragma unroll
  for (int i = 0; i < NX; i++) {
    const int s = t0 - (K - 1) + i;
    if (s >= 0 && s < p.L) {
      load_raw<T, V>(x, int64_t(s) * p.D + d, nvalid, p.vec, xr[i]);
      if constexpr (kSeq) sq[i] = __ldg(seq + s);
    } else {
      zero_raw(xr[i]);
      if constexpr (kSeq) sq[i] = INT_MIN;  // before the sequence: x = 0 contributes nothing
    }
  }
  float w[K][V], bias[V];
  load_params<K, V>(p, d, nvalid, w, bias);
#pragma unroll
  for (int i = 0; i < TT; i++) {
    const int t = t0 + i;
    if (t >= p.L) break;
    float v[V];
#pragma unroll
    for (int c = 0; c < V; c++) v[c] = bias[c];
#pragma unroll
    for (int j = 0; j < K; j++) {
      bool keep = true;
      if constexpr (kSeq) keep = sq[i + j] == sq[i + K - 1];
#pragma unroll
      for (int c = 0; c < V; c++) v[c] = keep ? fmaf(w[j][c], elem(xr[i + j], c), v[c]) : v[c];
    }
    if (p.silu) {
#pragma unroll
      for (int c = 0; c < V; c++) v[c] = silu_f(v[c]);
    }
    store_vals<T, V>(y, int64_t(t) * p.D + d, nvalid, p.vec, v);
  }
}

// ---- backward --------------------------------------------------------------------------------
// Grid (ceil(D / 32V), ceil(L / (kWarps TT runs)), B), block (32, kWarps).
template <class T, int K, int V, int TT, bool kSeq>
__global__ void __launch_bounds__(kLanes* kWarps) conv_bwd_kernel(ConvParams p) {
  __shared__ float s_part[kWarps][kLanes * V][K + 1];
  const int d = (blockIdx.x * kLanes + threadIdx.x) * V;
  const int b = blockIdx.z;
  const int t_begin = (blockIdx.y * kWarps + threadIdx.y) * TT * p.runs;
  const int t_stop = min(t_begin + TT * p.runs, p.L);
  float dw[K][V], db[V];
#pragma unroll
  for (int c = 0; c < V; c++) {
    db[c] = 0.f;
#pragma unroll
    for (int j = 0; j < K; j++) dw[j][c] = 0.f;
  }
  if (d < p.D && t_begin < p.L) {
    const int nvalid = min(V, p.D - d);
    const int64_t base = int64_t(b) * p.L * p.D;
    const T* x = static_cast<const T*>(p.x) + base;
    const T* dy = static_cast<const T*>(p.dy) + base;
    T* dx = p.dx ? static_cast<T*>(p.dx) + base : nullptr;
    const int32_t* seq = kSeq ? p.seq + int64_t(b) * p.L : nullptr;

    // For a run starting at s0: x slot i = position s0 - (K-1) + i (NX slots: the pre-activations
    // of positions s0 .. s0+TT+K-2), dy slot i = position s0 + i (NG slots). Positions outside
    // [0, L) hold 0 (g = 0 past L; x = 0 before 0) and the document id INT_MIN.
    constexpr int NX = TT + 2 * (K - 1);
    constexpr int NG = TT + K - 1;
    Raw<T, V> xr[NX], gr[NG];
    int sq[kSeq ? NX : 1];
    (void)sq;
    auto load_x = [&](int i, int s) {
      if (s >= 0 && s < p.L) {
        load_raw<T, V>(x, int64_t(s) * p.D + d, nvalid, p.vec, xr[i]);
        if constexpr (kSeq) sq[i] = __ldg(seq + s);
      } else {
        zero_raw(xr[i]);
        if constexpr (kSeq) sq[i] = INT_MIN;
      }
    };
    auto load_g = [&](int i, int s) {
      if (s < p.L)
        load_raw<T, V>(dy, int64_t(s) * p.D + d, nvalid, p.vec, gr[i]);
      else
        zero_raw(gr[i]);
    };
    // The halo of the first run; later runs inherit it from the previous one.
#pragma unroll
    for (int i = 0; i < 2 * (K - 1); i++) load_x(i, t_begin - (K - 1) + i);
#pragma unroll
    for (int i = 0; i < K - 1; i++) load_g(i, t_begin + i);
    float w[K][V], bias[V];
    load_params<K, V>(p, d, nvalid, w, bias);

    for (int s0 = t_begin; s0 < t_stop; s0 += TT) {
#pragma unroll
      for (int i = 2 * (K - 1); i < NX; i++) load_x(i, s0 - (K - 1) + i);
#pragma unroll
      for (int i = K - 1; i < NG; i++) load_g(i, s0 + i);
      // gwin[k] = g at position tp - (K-1) + k for the step tp being processed.
      float gwin[K][V];
#pragma unroll
      for (int k = 0; k < K; k++)
#pragma unroll
        for (int c = 0; c < V; c++) gwin[k][c] = 0.f;
#pragma unroll
      for (int i = 0; i < NG; i++) {
        const int tp = s0 + i;  // newest x slot i + K - 1
#pragma unroll
        for (int k = 0; k < K - 1; k++)
#pragma unroll
          for (int c = 0; c < V; c++) gwin[k][c] = gwin[k + 1][c];
        float pre[V];
#pragma unroll
        for (int c = 0; c < V; c++) pre[c] = bias[c];
#pragma unroll
        for (int j = 0; j < K; j++) {
          bool keep = true;
          if constexpr (kSeq) keep = sq[i + j] == sq[i + K - 1];
#pragma unroll
          for (int c = 0; c < V; c++) pre[c] = keep ? fmaf(w[j][c], elem(xr[i + j], c), pre[c]) : pre[c];
        }
        // Past L dy = 0, so g = 0 there without a branch.
#pragma unroll
        for (int c = 0; c < V; c++) {
          const float gy = elem(gr[i], c);
          gwin[K - 1][c] = p.silu ? gy * silu_grad_f(pre[c]) : gy;
        }
        if (i < TT && tp < t_stop) {  // an own step: its g feeds dw / dbias once
#pragma unroll
          for (int j = 0; j < K; j++) {
            bool keep = true;
            if constexpr (kSeq) keep = sq[i + j] == sq[i + K - 1];
#pragma unroll
            for (int c = 0; c < V; c++)
              dw[j][c] = keep ? fmaf(gwin[K - 1][c], elem(xr[i + j], c), dw[j][c]) : dw[j][c];
          }
#pragma unroll
          for (int c = 0; c < V; c++) db[c] += gwin[K - 1][c];
        }
        const int s = tp - (K - 1);  // x slot i; outputs s + K-1-j are gwin[K-1-j], x slot i+K-1-j
        if (i >= K - 1 && s < t_stop && dx) {
          float v[V];
#pragma unroll
          for (int c = 0; c < V; c++) v[c] = 0.f;
#pragma unroll
          for (int j = 0; j < K; j++) {
            bool keep = true;
            if constexpr (kSeq) keep = sq[i] == sq[i + K - 1 - j];
#pragma unroll
            for (int c = 0; c < V; c++) v[c] = keep ? fmaf(w[j][c], gwin[K - 1 - j][c], v[c]) : v[c];
          }
          store_vals<T, V>(dx, int64_t(s) * p.D + d, nvalid, p.vec, v);
        }
      }
      // The next run starts TT steps later: its halo is this run's tail.
#pragma unroll
      for (int i = 0; i < 2 * (K - 1); i++) {
        xr[i] = xr[i + TT];
        if constexpr (kSeq) sq[i] = sq[i + TT];
      }
#pragma unroll
      for (int i = 0; i < K - 1; i++) gr[i] = gr[i + TT];
    }
  }
  // Block partial of dw / dbias: the kWarps time runs summed in warp order.
#pragma unroll
  for (int c = 0; c < V; c++) {
#pragma unroll
    for (int j = 0; j < K; j++) s_part[threadIdx.y][threadIdx.x * V + c][j] = dw[j][c];
    s_part[threadIdx.y][threadIdx.x * V + c][K] = db[c];
  }
  __syncthreads();
  const int tid = threadIdx.y * kLanes + threadIdx.x;
  for (int ch = tid; ch < kLanes * V; ch += kLanes * kWarps) {
    const int dc = blockIdx.x * kLanes * V + ch;
    if (dc >= p.D) continue;
    float* out = p.partial + ((int64_t(b) * gridDim.y + blockIdx.y) * p.D + dc) * (K + 1);
#pragma unroll
    for (int j = 0; j <= K; j++) {
      float s = 0.f;
#pragma unroll
      for (int r = 0; r < kWarps; r++) s += s_part[r][ch][j];
      out[j] = s;
    }
  }
}

// dw_acc[d, j] += sum_q partial[q, d, j]; dbias_acc[d] += sum_q partial[q, d, K]. Block (32, 8):
// 32 columns of the [P, n] partial matrix; row group y sums rows y, y+8, ... in order, then the
// 8 group sums are added in group order: a fixed order whatever the scheduling.
constexpr int kRedX = 32, kRedY = 8;
__global__ void __launch_bounds__(kRedX* kRedY)
    conv_weight_grads_kernel(const float* partial, int P, int64_t n, int K, float* dw_acc, float* dbias_acc) {
  __shared__ float s_sum[kRedY][kRedX];
  const int64_t i = int64_t(blockIdx.x) * kRedX + threadIdx.x;
  float acc = 0.f;
  if (i < n) {
#pragma unroll 4
    for (int q = threadIdx.y; q < P; q += kRedY) acc += partial[int64_t(q) * n + i];
  }
  s_sum[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || i >= n) return;
  float s = 0.f;
#pragma unroll
  for (int r = 0; r < kRedY; r++) s += s_sum[r][threadIdx.x];
  const int64_t dd = i / (K + 1);
  const int j = int(i - dd * (K + 1));
  if (j < K) {
    if (dw_acc) dw_acc[dd * K + j] += s;
  } else if (dbias_acc) {
    dbias_acc[dd] += s;
  }
}

// ---- launch ----------------------------------------------------------------------------------
// A kernel configuration: V channels per thread, TT steps per run.
struct Tile {
  int V, TT;
};

// Defaults: forward one 16-byte vector and 16 steps; backward 4 channels and 16 steps (x and dy
// both in flight: twice the registers per step). LMF_CONV_FWD_VARIANT / LMF_CONV_BWD_VARIANT
// (0 = default, 1..3 below) pick other tiles for bf16 / f16 at K = 4, for benchmarking.
//   forward:  1 = (8, 8), 2 = (4, 16), 3 = (8, 32)    backward: 1 = (4, 8), 2 = (8, 8), 3 = (4, 32)
int env_variant(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

template <class T, int K, bool kSeq, int V, int TT>
void launch_one(ConvParams p, bool backward, float** partial_out, int* P_out, Tensor* partial_holder,
                Device dev) {
  const int64_t per_block = int64_t(kWarps) * TT;
  const unsigned gx = unsigned((p.D + kLanes * V - 1) / (kLanes * V));
  const uintptr_t align = uintptr_t(V) * sizeof(T);
  auto al = [&](const void* q) { return q == nullptr || reinterpret_cast<uintptr_t>(q) % align == 0; };
  p.vec = p.D % V == 0 && al(p.x) && al(p.y) && al(p.dy) && al(p.dx);
  const dim3 block(kLanes, kWarps);
  if (!backward) {
    const dim3 grid(gx, unsigned((p.L + per_block - 1) / per_block), unsigned(p.B));
    conv_fwd_kernel<T, K, V, TT, kSeq><<<grid, block, 0, current_stream()>>>(p);
    LMF_CUDA_CHECK_LAUNCH();
    return;
  }
  // Runs per thread: the largest power of two <= kMaxRuns that still leaves >= 4 blocks per SM
  // (fewer, longer blocks mean fewer dw / dbias partials to write and sum).
  const int64_t tiles = (p.L + per_block - 1) / per_block;
  const int64_t target = 4 * int64_t(sm_count());
  int runs = 1;
  while (runs < kMaxRuns && int64_t(gx) * p.B * ((tiles + 2 * runs - 1) / (2 * runs)) >= target) runs *= 2;
  if (const char* e = std::getenv("LMF_CONV_BWD_RUNS"); e && std::atoi(e) > 0) runs = std::atoi(e);
  p.runs = runs;
  const int64_t gy = (p.L + per_block * runs - 1) / (per_block * runs);
  const int P = p.B * int(gy);
  *partial_holder = Tensor::empty({int64_t(P), int64_t(p.D), int64_t(K + 1)}, DType::f32, dev);
  p.partial = partial_holder->data<float>();
  const dim3 grid(gx, unsigned(gy), unsigned(p.B));
  conv_bwd_kernel<T, K, V, TT, kSeq><<<grid, block, 0, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
  *partial_out = p.partial;
  *P_out = P;
}

template <class T, int K, bool kSeq>
void launch_k(const ConvParams& p, bool backward, float** partial, int* P, Tensor* holder, Device dev) {
  constexpr int VF = 16 / int(sizeof(T));
  if constexpr (K == 4 && sizeof(T) == 2) {
    const int var = env_variant(backward ? "LMF_CONV_BWD_VARIANT" : "LMF_CONV_FWD_VARIANT");
    if (!backward) {
      if (var == 1) return launch_one<T, K, kSeq, 8, 8>(p, false, partial, P, holder, dev);
      if (var == 2) return launch_one<T, K, kSeq, 4, 16>(p, false, partial, P, holder, dev);
      if (var == 3) return launch_one<T, K, kSeq, 8, 32>(p, false, partial, P, holder, dev);
    } else {
      if (var == 1) return launch_one<T, K, kSeq, 4, 8>(p, true, partial, P, holder, dev);
      if (var == 2) return launch_one<T, K, kSeq, 8, 8>(p, true, partial, P, holder, dev);
      if (var == 3) return launch_one<T, K, kSeq, 4, 32>(p, true, partial, P, holder, dev);
    }
  }
  if (backward)
    launch_one<T, K, kSeq, 4, 16>(p, true, partial, P, holder, dev);
  else
    launch_one<T, K, kSeq, VF, 16>(p, false, partial, P, holder, dev);
}

template <class T, int K>
void launch_seq(const ConvParams& p, bool backward, float** partial, int* P, Tensor* holder, Device dev) {
  if (p.seq)
    launch_k<T, K, true>(p, backward, partial, P, holder, dev);
  else
    launch_k<T, K, false>(p, backward, partial, P, holder, dev);
}

template <class T>
void launch_any_k(const ConvParams& p, int K, bool backward, float** partial, int* P, Tensor* holder, Device dev) {
  switch (K) {
    case 1: launch_seq<T, 1>(p, backward, partial, P, holder, dev); break;
    case 2: launch_seq<T, 2>(p, backward, partial, P, holder, dev); break;
    case 3: launch_seq<T, 3>(p, backward, partial, P, holder, dev); break;
    case 4: launch_seq<T, 4>(p, backward, partial, P, holder, dev); break;
    case 5: launch_seq<T, 5>(p, backward, partial, P, holder, dev); break;
    case 6: launch_seq<T, 6>(p, backward, partial, P, holder, dev); break;
    case 7: launch_seq<T, 7>(p, backward, partial, P, holder, dev); break;
    default: launch_seq<T, 8>(p, backward, partial, P, holder, dev); break;
  }
}

ConvParams make_conv_params(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias,
                            const Tensor& seq_idx, const Tensor& other) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), K = w.size(1);
  if (K < 1 || K > kMaxK) fail(op, ": the CUDA kernel supports kernel sizes 1..", kMaxK, ", got ", K);
  if (other.dtype() != x.dtype())
    fail(op, ": the CUDA kernel needs x and its output/gradient in one dtype, got ", dtype_name(x.dtype()), " and ",
         dtype_name(other.dtype()));
  if (seq_idx.defined() && seq_idx.dtype() != DType::i32)
    fail(op, ": seq_idx must be i32, got ", dtype_name(seq_idx.dtype()));
  if (B > 65535 || L > INT32_MAX / 2 || D > INT32_MAX / 2)
    fail(op, ": shape [", B, ", ", L, ", ", D, "] exceeds the CUDA kernel's limits (B <= 65535)");
  ConvParams p;
  p.x = x.data_ptr();
  p.w = mamba::param_ptr(w, op, "w");
  p.bias = mamba::param_ptr(bias, op, "bias");
  p.seq = seq_idx.defined() ? seq_idx.data<int32_t>() : nullptr;
  p.B = int(B);
  p.L = int(L);
  p.D = int(D);
  return p;
}

}  // namespace

void causal_conv1d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& seq_idx,
                           const Tensor& y, bool silu) {
  const char* op = "causal_conv1d_forward";
  ConvParams p = make_conv_params(op, x, w, bias, seq_idx, y);
  p.y = y.data_ptr();
  p.silu = silu;
  if (x.numel() == 0) return;
  float* partial = nullptr;
  int P = 0;
  Tensor holder;
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    launch_any_k<T>(p, int(w.size(1)), false, &partial, &P, &holder, x.device());
  });
}

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& seq_idx,
                            const Tensor& dy, const Tensor& dx, const Tensor& dw_acc, const Tensor& dbias_acc,
                            bool silu) {
  const char* op = "causal_conv1d_backward";
  ConvParams p = make_conv_params(op, x, w, bias, seq_idx, dy);
  if (dx.defined() && dx.dtype() != x.dtype()) fail(op, ": dx must have x's dtype ", dtype_name(x.dtype()));
  for (const Tensor* acc : {&dw_acc, &dbias_acc})
    if (acc->defined() && acc->dtype() != DType::f32)
      fail(op, ": dw_acc / dbias_acc must be f32 on CUDA, got ", dtype_name(acc->dtype()));
  if (x.numel() == 0) return;
  p.dy = dy.data_ptr();
  p.dx = dx.defined() ? dx.data_ptr() : nullptr;
  p.silu = silu;
  const int K = int(w.size(1));
  float* partial = nullptr;
  int P = 0;
  Tensor holder;  // the partials; freed (stream-ordered) after the reduction is enqueued
  dispatch_floating(x.dtype(), op, [&]<class T>() { launch_any_k<T>(p, K, true, &partial, &P, &holder, x.device()); });
  if (dw_acc.defined() || dbias_acc.defined()) {
    const int64_t n = int64_t(p.D) * (K + 1);
    conv_weight_grads_kernel<<<unsigned((n + kRedX - 1) / kRedX), dim3(kRedX, kRedY), 0, current_stream()>>>(
        partial, P, n, K, dw_acc.defined() ? dw_acc.data<float>() : nullptr,
        dbias_acc.defined() ? dbias_acc.data<float>() : nullptr);
    LMF_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace lmf::cuda
