// Shared pieces of the causal conv1d kernels (conv1d.cu): parameters, packed register vectors,
// guarded loads and stores, the fp32 weights of a thread's channels, and the backward's
// per-block dw / dbias partial. Included by conv1d.cu only (one translation unit).
#pragma once

#include <climits>
#include <type_traits>

#include "lmforge/backend/cuda/mamba_common.cuh"

namespace lmf::cuda::conv {

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

}  // namespace lmf::cuda::conv
