// Causal depthwise conv1d (Mamba) on CUDA, channels-last [B, L, D] (kernel_list.inc).
//
// Both directions are bandwidth kernels. A thread owns V = 4 adjacent channels (8 bytes in bf16,
// 16 in f32) and walks a segment of `runs` runs of TT = 8 timesteps; a warp covers 32·V
// channels of one timestep (coalesced), a block stacks kWarps segments along time. Before
// computing run r a thread issues the loads of run r+1 (register double buffer), so every warp
// keeps a run of vectors in flight while it computes: the latency of HBM is hidden by a few
// warps per scheduler. The raw vectors stay packed in registers and are widened to fp32 when
// used; the K-tap window slides over them at compile time (fully unrolled), and its K-1 step
// halo moves from run to run in registers, so x (and dy) are read once plus one halo per
// segment. `runs` is the fewest that fit the grid in one wave of resident blocks.
//
// Forward: y[t] = act(bias + sum_j w[j] x[t-K+1+j]) (same document only).
//
// Backward: dx[s] = sum_j w[j] g[s+K-1-j] (same document), g = dy * silu'(pre). The carrying
// kernel (bf16, K = 4, no documents) computes g once per position and keeps the last K-1 in
// registers from run to run; the recomputing kernel (every other case: fewer registers with
// documents / f32 / larger K) recomputes g for the K-1 steps after each run. dw[d, j] and
// dbias[d] are summed per thread over its own steps, then over the block's kWarps warps in
// shared memory, written as one partial per (b, block row); conv_weight_grads_kernel sums the
// partials in a fixed order into dw_acc / dbias_acc (deterministic, no atomics), launched with
// programmatic dependent launch so that it is scheduled while the backward drains.
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
constexpr int kMaxRuns = 32;  // runs per thread (see choose_runs)

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
// Grid (ceil(D / 32V), ceil(L / (kWarps TT runs)), B), block (32, kWarps). A thread walks `runs`
// runs of TT steps; the loads of run r+1 are issued before run r is computed (register double
// buffer), so a warp always has a run's vectors in flight. kSeq: compiled with document checks
// (seq may still be null: ids read as 0).
template <class T, int K, int V, int TT, bool kSeq, int kMB>
__global__ void __launch_bounds__(kLanes* kWarps, kMB) conv_fwd_kernel(ConvParams p) {
  const int d = (blockIdx.x * kLanes + threadIdx.x) * V;
  const int b = blockIdx.z;
  const int t_begin = (blockIdx.y * kWarps + threadIdx.y) * TT * p.runs;
  if (d >= p.D || t_begin >= p.L) return;
  const int t_stop = min(t_begin + TT * p.runs, p.L);
  const int nvalid = min(V, p.D - d);
  const T* x = static_cast<const T*>(p.x) + int64_t(b) * p.L * p.D + d;
  T* y = static_cast<T*>(p.y) + int64_t(b) * p.L * p.D + d;
  const int32_t* seq = kSeq && p.seq ? p.seq + int64_t(b) * p.L : nullptr;

  // Slot i of the window holds position s0 - (K-1) + i; outside [0, L): x = 0, id INT_MIN.
  constexpr int NX = TT + K - 1;
  Raw<T, V> xr[NX], xn[TT];
  int sq[kSeq ? NX : 1], sn[kSeq ? TT : 1];
  (void)sq, (void)sn;
  auto load = [&](Raw<T, V>& r, int& id, int s) {
    if (s >= 0 && s < p.L) {
      load_raw<T, V>(x, int64_t(s) * p.D, nvalid, p.vec, r);
      if constexpr (kSeq) id = seq ? __ldg(seq + s) : 0;
    } else {
      zero_raw(r);
      if constexpr (kSeq) id = INT_MIN;
    }
  };
#pragma unroll
  for (int i = 0; i < NX; i++) load(xr[i], sq[kSeq ? i : 0], t_begin - (K - 1) + i);
  float w[K][V], bias[V];
  load_params<K, V>(p, d, nvalid, w, bias);
  for (int s0 = t_begin; s0 < t_stop; s0 += TT) {
    const int s1 = s0 + TT;
    if (s1 < t_stop) {
#pragma unroll
      for (int i = 0; i < TT; i++) load(xn[i], sn[kSeq ? i : 0], s1 + i);
    }
#pragma unroll
    for (int i = 0; i < TT; i++) {
      const int t = s0 + i;
      if (t >= t_stop) break;
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
      store_vals<T, V>(y, int64_t(t) * p.D, nvalid, p.vec, v);
    }
#pragma unroll
    for (int i = 0; i < K - 1; i++) {
      xr[i] = xr[i + TT];
      if constexpr (kSeq) sq[i] = sq[i + TT];
    }
#pragma unroll
    for (int i = 0; i < TT; i++) {
      xr[K - 1 + i] = xn[i];
      if constexpr (kSeq) sq[K - 1 + i] = sn[i];
    }
  }
}

// ---- backward --------------------------------------------------------------------------------
// The block's dw / dbias partial: the kWarps segments summed in warp order into
// partial[b * gridDim.y + blockIdx.y, d, 0..K]; then lets a programmatically dependent
// conv_weight_grads_kernel start (PDL; a no-op otherwise).
template <int K, int V>
__device__ __forceinline__ void write_block_partial(const ConvParams& p, const float (&dw)[K][V], const float (&db)[V]) {
  __shared__ float s_part[kWarps][kLanes * V][K + 1];
#pragma unroll
  for (int c = 0; c < V; c++) {
#pragma unroll
    for (int j = 0; j < K; j++) s_part[threadIdx.y][threadIdx.x * V + c][j] = dw[j][c];
    s_part[threadIdx.y][threadIdx.x * V + c][K] = db[c];
  }
  __syncthreads();
  const int tid = threadIdx.y * kLanes + threadIdx.x;
  const int ch0 = blockIdx.x * kLanes * V;
  for (int ch = tid; ch < kLanes * V; ch += kLanes * kWarps) {
    if (ch0 + ch >= p.D) continue;
    float* out = p.partial + ((int64_t(blockIdx.z) * gridDim.y + blockIdx.y) * p.D + ch0 + ch) * (K + 1);
#pragma unroll
    for (int j = 0; j <= K; j++) {
      float s = 0.f;
#pragma unroll
      for (int r = 0; r < kWarps; r++) s += s_part[r][ch][j];
      out[j] = s;
    }
  }
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// Recomputing kernel: grid (ceil(D / 32V), ceil(L / (kWarps TT runs)), B), block (32, kWarps);
// run loop and prefetch as in the forward. A run recomputes g for the K-1 positions after it.
// ---- backward --------------------------------------------------------------------------------
// Grid (ceil(D / 32V), ceil(L / (kWarps TT runs)), B), block (32, kWarps); run loop and
// prefetch as in the forward.
template <class T, int K, int V, int TT, bool kSeq, int kMB>
__global__ void __launch_bounds__(kLanes* kWarps, kMB) conv_bwd_kernel(ConvParams p) {
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
    const int64_t base = int64_t(b) * p.L * p.D + d;
    const T* x = static_cast<const T*>(p.x) + base;
    const T* dy = static_cast<const T*>(p.dy) + base;
    T* dx = p.dx ? static_cast<T*>(p.dx) + base : nullptr;
    const int32_t* seq = kSeq && p.seq ? p.seq + int64_t(b) * p.L : nullptr;

    // For the run starting at s0: x slot i = position s0 - (K-1) + i (NX slots: the
    // pre-activations of positions s0 .. s0+TT+K-2), dy slot i = position s0 + i (NG slots).
    // Positions outside [0, L) hold 0 (g = 0 past L; x = 0 before 0) and the id INT_MIN.
    // xn / gn: the TT new slots of the next run (positions s0 + TT + K-1 ...), loaded early.
    constexpr int NX = TT + 2 * (K - 1);
    constexpr int NG = TT + K - 1;
    Raw<T, V> xr[NX], gr[NG], xn[TT], gn[TT];
    int sq[kSeq ? NX : 1], sn[kSeq ? TT : 1];
    (void)sq, (void)sn;
    auto load_x = [&](Raw<T, V>& r, int& id, int s) {
      if (s >= 0 && s < p.L) {
        load_raw<T, V>(x, int64_t(s) * p.D, nvalid, p.vec, r);
        if constexpr (kSeq) id = seq ? __ldg(seq + s) : 0;
      } else {
        zero_raw(r);
        if constexpr (kSeq) id = INT_MIN;
      }
    };
    auto load_g = [&](Raw<T, V>& r, int s) {
      if (s < p.L)
        load_raw<T, V>(dy, int64_t(s) * p.D, nvalid, p.vec, r);
      else
        zero_raw(r);
    };
#pragma unroll
    for (int i = 0; i < NX; i++) load_x(xr[i], sq[kSeq ? i : 0], t_begin - (K - 1) + i);
#pragma unroll
    for (int i = 0; i < NG; i++) load_g(gr[i], t_begin + i);
    float w[K][V], bias[V];
    load_params<K, V>(p, d, nvalid, w, bias);

    for (int s0 = t_begin; s0 < t_stop; s0 += TT) {
      const int s1 = s0 + TT;
      if (s1 < t_stop) {
#pragma unroll
        for (int i = 0; i < TT; i++) load_x(xn[i], sn[kSeq ? i : 0], s1 + K - 1 + i);
#pragma unroll
        for (int i = 0; i < TT; i++) load_g(gn[i], s1 + K - 1 + i);
      }
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
          store_vals<T, V>(dx, int64_t(s) * p.D, nvalid, p.vec, v);
        }
      }
      // The next run starts TT steps later: its first slots are this run's tail.
#pragma unroll
      for (int i = 0; i < 2 * (K - 1); i++) {
        xr[i] = xr[i + TT];
        if constexpr (kSeq) sq[i] = sq[i + TT];
      }
#pragma unroll
      for (int i = 0; i < TT; i++) {
        xr[2 * (K - 1) + i] = xn[i];
        if constexpr (kSeq) sq[2 * (K - 1) + i] = sn[i];
      }
#pragma unroll
      for (int i = 0; i < K - 1; i++) gr[i] = gr[i + TT];
#pragma unroll
      for (int i = 0; i < TT; i++) gr[K - 1 + i] = gn[i];
    }
  }
  write_block_partial<K, V>(p, dw, db);
}

// Carrying kernel (bf16, K = 4, no documents): as conv_bwd_kernel, but g = dy * act'(pre) is computed once per position: a run computes
// it for positions s0+K-1 .. s0+TT+K-2 and emits dx and the dw / dbias terms of positions
// s0 .. s0+TT-1, whose g values are those K-1 steps behind (gwin, which carries over from run
// to run; a prologue computes the segment's first K-1).
template <class T, int K, int V, int TT, bool kSeq, int kMB>
__global__ void __launch_bounds__(kLanes* kWarps, kMB) conv_bwd_carry_kernel(ConvParams p) {
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
    const int64_t base = int64_t(b) * p.L * p.D + d;
    const T* x = static_cast<const T*>(p.x) + base;
    const T* dy = static_cast<const T*>(p.dy) + base;
    T* dx = p.dx ? static_cast<T*>(p.dx) + base : nullptr;
    const int32_t* seq = kSeq && p.seq ? p.seq + int64_t(b) * p.L : nullptr;

    // Run at s0: x slot i = position s0 - (K-1) + i (NX slots), dy slot m = position s0+K-1+m
    // (TT slots). Outside [0, L): 0 (g = 0 past L; x = 0 before 0) and the id INT_MIN.
    // xn / gn: the TT new slots of the next run, loaded before this run is computed.
    constexpr int NX = TT + 2 * (K - 1);
    Raw<T, V> xr[NX], gr[TT], xn[TT], gn[TT];
    int sq[kSeq ? NX : 1], sn[kSeq ? TT : 1];
    (void)sq, (void)sn;
    auto load_x = [&](Raw<T, V>& r, int& id, int s) {
      if (s >= 0 && s < p.L) {
        load_raw<T, V>(x, int64_t(s) * p.D, nvalid, p.vec, r);
        if constexpr (kSeq) id = seq ? __ldg(seq + s) : 0;
      } else {
        zero_raw(r);
        if constexpr (kSeq) id = INT_MIN;
      }
    };
    auto load_g = [&](Raw<T, V>& r, int s) {
      if (s < p.L)
        load_raw<T, V>(dy, int64_t(s) * p.D, nvalid, p.vec, r);
      else
        zero_raw(r);
    };
    Raw<T, V> g0[K > 1 ? K - 1 : 1];  // dy of the segment's first K-1 positions
#pragma unroll
    for (int i = 0; i < NX; i++) load_x(xr[i], sq[kSeq ? i : 0], t_begin - (K - 1) + i);
#pragma unroll
    for (int k = 0; k < K - 1; k++) load_g(g0[k], t_begin + k);
#pragma unroll
    for (int m = 0; m < TT; m++) load_g(gr[m], t_begin + K - 1 + m);
    float w[K][V], bias[V];
    load_params<K, V>(p, d, nvalid, w, bias);

    // g at position q whose newest x slot is `hi` (x slots hi-K+1 .. hi), dy `gy`.
    auto grad_pre = [&](int hi, const Raw<T, V>& gy, float (&g)[V]) {
      float pre[V];
#pragma unroll
      for (int c = 0; c < V; c++) pre[c] = bias[c];
#pragma unroll
      for (int j = 0; j < K; j++) {
        bool keep = true;
        if constexpr (kSeq) keep = sq[hi - K + 1 + j] == sq[hi];
#pragma unroll
        for (int c = 0; c < V; c++) pre[c] = keep ? fmaf(w[j][c], elem(xr[hi - K + 1 + j], c), pre[c]) : pre[c];
      }
#pragma unroll
      for (int c = 0; c < V; c++) g[c] = p.silu ? elem(gy, c) * silu_grad_f(pre[c]) : elem(gy, c);
    };
    // gwin[k] = g at position s - 1 + k before step m (s = s0 + m); the prologue fills
    // gwin[1..K-1] with the g of positions t_begin .. t_begin+K-2 (x slots K-1 .. 2K-3).
    float gwin[K][V];
#pragma unroll
    for (int c = 0; c < V; c++) gwin[0][c] = 0.f;
#pragma unroll
    for (int k = 0; k < K - 1; k++) grad_pre(K - 1 + k, g0[k], gwin[k + 1]);

    for (int s0 = t_begin; s0 < t_stop; s0 += TT) {
      const int s1 = s0 + TT;
      if (s1 < t_stop) {
#pragma unroll
        for (int i = 0; i < TT; i++) load_x(xn[i], sn[kSeq ? i : 0], s1 + K - 1 + i);
#pragma unroll
        for (int i = 0; i < TT; i++) load_g(gn[i], s1 + K - 1 + i);
      }
#pragma unroll
      for (int m = 0; m < TT; m++) {
        // New g at position s0+K-1+m (x slot m+2K-2); then gwin = g(s .. s+K-1), s = s0+m.
#pragma unroll
        for (int k = 0; k < K - 1; k++)
#pragma unroll
          for (int c = 0; c < V; c++) gwin[k][c] = gwin[k + 1][c];
        grad_pre(m + 2 * (K - 1), gr[m], gwin[K - 1]);
        const int s = s0 + m;  // x slot m + K - 1
        if (s >= t_stop) break;
#pragma unroll
        for (int j = 0; j < K; j++) {  // dw[j] += g(s) x(s-K+1+j), x slot m + j
          bool keep = true;
          if constexpr (kSeq) keep = sq[m + j] == sq[m + K - 1];
#pragma unroll
          for (int c = 0; c < V; c++) dw[j][c] = keep ? fmaf(gwin[0][c], elem(xr[m + j], c), dw[j][c]) : dw[j][c];
        }
#pragma unroll
        for (int c = 0; c < V; c++) db[c] += gwin[0][c];
        if (dx) {  // dx(s) = sum_j w[j] g(s+K-1-j), x slot m + 2K-2-j
          float v[V];
#pragma unroll
          for (int c = 0; c < V; c++) v[c] = 0.f;
#pragma unroll
          for (int j = 0; j < K; j++) {
            bool keep = true;
            if constexpr (kSeq) keep = sq[m + K - 1] == sq[m + 2 * K - 2 - j];
#pragma unroll
            for (int c = 0; c < V; c++) v[c] = keep ? fmaf(w[j][c], gwin[K - 1 - j][c], v[c]) : v[c];
          }
          store_vals<T, V>(dx, int64_t(s) * p.D, nvalid, p.vec, v);
        }
      }
      // The next run starts TT steps later: its first x slots are this run's tail (gwin
      // already holds g of its first K-1 positions).
#pragma unroll
      for (int i = 0; i < 2 * (K - 1); i++) {
        xr[i] = xr[i + TT];
        if constexpr (kSeq) sq[i] = sq[i + TT];
      }
#pragma unroll
      for (int i = 0; i < TT; i++) {
        xr[2 * (K - 1) + i] = xn[i];
        if constexpr (kSeq) sq[2 * (K - 1) + i] = sn[i];
        gr[i] = gn[i];
      }
    }
  }
  write_block_partial<K, V>(p, dw, db);
}

// dw_acc[d, j] += sum_q partial[q, d, j]; dbias_acc[d] += sum_q partial[q, d, K]. Block (32, 8):
// 32 columns of the [P, n] partial matrix; row group y sums rows y, y+8, ... in order, then the
// 8 group sums are added in group order: a fixed order whatever the scheduling.
constexpr int kRedX = 32, kRedY = 8;
__global__ void __launch_bounds__(kRedX* kRedY)
    conv_weight_grads_kernel(const float* partial, int P, int64_t n, int K, float* dw_acc, float* dbias_acc) {
  __shared__ float s_sum[kRedY][kRedX];
  asm volatile("griddepcontrol.wait;\n" ::: "memory");  // the backward's partials (PDL)
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
// Tiles: 4 channels (8 bytes bf16, 16 bytes f32) and runs of TT = 8 steps, both directions
// (measured on H100 against 8-channel and 16/32-step tiles: fewer registers, more warps per SM
// win). The bf16 backward at K = 4 without documents (the Mamba training shape) uses the
// carrying kernel held to 3 resident blocks per SM (<= 168 registers): 0.64 of memcpy at the
// 130m shape against 0.55 for the recomputing kernel. LMF_CONV_FWD_RUNS / LMF_CONV_BWD_RUNS
// force the runs per thread; LMF_CONV_PDL=0 launches the partial sum without programmatic
// dependent launch (by default it is scheduled while the backward finishes: 2-4 us less).
int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

// Runs per thread: the fewest that fit the grid in one wave of resident blocks (a thread then
// streams its rows with the next run's loads in flight), at most kMaxRuns.
int choose_runs(int64_t blocks_one_run_per_row, int64_t tiles, int slots_per_sm) {
  const int64_t slots = int64_t(slots_per_sm) * sm_count();
  int runs = 1;
  while (runs < kMaxRuns && blocks_one_run_per_row * ((tiles + runs - 1) / runs) > slots) runs++;
  return runs;
}

template <class KernelFn>
int resident_blocks(KernelFn kernel) {
  int n = 0;
  LMF_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kLanes * kWarps, 0));
  return n < 1 ? 1 : n;
}

struct BwdLaunch {
  Tensor partial;  // [P, D, K + 1]
  int P = 0;
};

using ConvKernel = void (*)(ConvParams);

// One launch of `kernel` (tile V channels x runs of TT steps); `slots`: its resident blocks per SM.
template <class T, int V, int TT>
void launch_tile(ConvKernel kernel, int slots, ConvParams p, bool backward, int K, BwdLaunch* out, Device dev) {
  const int64_t per_block = int64_t(kWarps) * TT;
  const int64_t gx = (p.D + kLanes * V - 1) / (kLanes * V);
  const int64_t tiles = (p.L + per_block - 1) / per_block;
  const uintptr_t align = uintptr_t(V) * sizeof(T);
  auto al = [&](const void* q) { return q == nullptr || reinterpret_cast<uintptr_t>(q) % align == 0; };
  p.vec = p.D % V == 0 && al(p.x) && al(p.y) && al(p.dy) && al(p.dx);
  p.runs = choose_runs(gx * p.B, tiles, slots);
  if (const int r = env_int(backward ? "LMF_CONV_BWD_RUNS" : "LMF_CONV_FWD_RUNS"); r > 0) p.runs = r;
  const int64_t gy = (tiles + p.runs - 1) / p.runs;
  if (backward) {
    out->P = p.B * int(gy);
    out->partial = Tensor::empty({int64_t(out->P), int64_t(p.D), int64_t(K + 1)}, DType::f32, dev);
    p.partial = out->partial.data<float>();
  }
  kernel<<<dim3(unsigned(gx), unsigned(gy), unsigned(p.B)), dim3(kLanes, kWarps), 0, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, int K, bool kSeq, int V, int TT, int kMB>
void launch_fwd(const ConvParams& p) {
  static const int slots = resident_blocks(conv_fwd_kernel<T, K, V, TT, kSeq, kMB>);
  launch_tile<T, V, TT>(conv_fwd_kernel<T, K, V, TT, kSeq, kMB>, slots, p, false, K, nullptr, Device::cpu());
}

template <class T, int K, bool kSeq, int V, int TT, int kMB>
void launch_bwd(const ConvParams& p, BwdLaunch* out, Device dev) {
  static const int slots = resident_blocks(conv_bwd_kernel<T, K, V, TT, kSeq, kMB>);
  launch_tile<T, V, TT>(conv_bwd_kernel<T, K, V, TT, kSeq, kMB>, slots, p, true, K, out, dev);
}

template <class T, int K, bool kSeq, int V, int TT, int kMB>
void launch_bwd_carry(const ConvParams& p, BwdLaunch* out, Device dev) {
  static const int slots = resident_blocks(conv_bwd_carry_kernel<T, K, V, TT, kSeq, kMB>);
  launch_tile<T, V, TT>(conv_bwd_carry_kernel<T, K, V, TT, kSeq, kMB>, slots, p, true, K, out, dev);
}

template <class T, int K>
void launch_k(const ConvParams& p, bool backward, BwdLaunch* out, Device dev) {
  // K = 4 in f32 / bf16 (every Mamba checkpoint) without documents gets kernels without the
  // document checks; other cases share the kernels with the checks (seq may be null).
  if constexpr (K == 4 && std::is_same_v<T, __nv_bfloat16>) {
    if (!p.seq) {
      if (backward) return launch_bwd_carry<T, K, false, 4, 8, 3>(p, out, dev);
      return launch_fwd<T, K, false, 4, 8, 1>(p);
    }
  }
  if constexpr (K == 4 && std::is_same_v<T, float>) {
    if (!p.seq) {
      if (backward) return launch_bwd<T, K, false, 4, 8, 1>(p, out, dev);
      return launch_fwd<T, K, false, 4, 8, 1>(p);
    }
  }
  if (backward) return launch_bwd<T, K, true, 4, 8, 1>(p, out, dev);
  launch_fwd<T, K, true, 4, 8, 1>(p);
}

template <class T>
void launch_any_k(const ConvParams& p, int K, bool backward, BwdLaunch* out, Device dev) {
  switch (K) {
    case 1: launch_k<T, 1>(p, backward, out, dev); break;
    case 2: launch_k<T, 2>(p, backward, out, dev); break;
    case 3: launch_k<T, 3>(p, backward, out, dev); break;
    case 4: launch_k<T, 4>(p, backward, out, dev); break;
    case 5: launch_k<T, 5>(p, backward, out, dev); break;
    case 6: launch_k<T, 6>(p, backward, out, dev); break;
    case 7: launch_k<T, 7>(p, backward, out, dev); break;
    default: launch_k<T, 8>(p, backward, out, dev); break;
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
  dispatch_floating(x.dtype(), op, [&]<class T>() { launch_any_k<T>(p, int(w.size(1)), false, nullptr, x.device()); });
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
  BwdLaunch bl;  // the partials; freed (stream-ordered) after the reduction is enqueued
  dispatch_floating(x.dtype(), op, [&]<class T>() { launch_any_k<T>(p, K, true, &bl, x.device()); });
  if (dw_acc.defined() || dbias_acc.defined()) {
    const int64_t n = int64_t(p.D) * (K + 1);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(unsigned((n + kRedX - 1) / kRedX));
    cfg.blockDim = dim3(kRedX, kRedY);
    cfg.stream = current_stream();
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    const char* pdl = std::getenv("LMF_CONV_PDL");
    cfg.numAttrs = pdl && std::atoi(pdl) == 0 ? 0 : 1;
    LMF_CUDA_CHECK(cudaLaunchKernelEx(&cfg, conv_weight_grads_kernel, static_cast<const float*>(bl.partial.data<float>()),
                                      bl.P, n, K, dw_acc.defined() ? dw_acc.data<float>() : nullptr,
                                      dbias_acc.defined() ? dbias_acc.data<float>() : nullptr));
  }
}

}  // namespace lmf::cuda
