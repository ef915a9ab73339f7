// Causal depthwise conv1d (Mamba) on CUDA, channels-last [B, L, D] (kernel_list.inc).
//
// Forward: a thread owns 4 adjacent channels (one 8-byte bf16 / 16-byte f32 vector) and a run of
// kTT = 32 timesteps; the K-1 previous samples (and their document ids) stay in registers and
// shift by one per step, so x is read once plus a (K-1)/32 halo. A warp covers 128 channels of
// one timestep: coalesced. Loads are batched kU steps ahead to keep enough bytes in flight.
// Launch: block (32, 4) = (channel vectors, time runs), grid (ceil(D/128), ceil(L/128), B).
//
// Backward: the same decomposition. A thread recomputes the pre-activation and
// g = dy * silu'(pre) for its run plus the K-1 following steps (the transposed conv needs
// g[s .. s+K-1] for dx[s]); dx[s] = sum_j w[j] g[s+K-1-j] (same document). dw[d, j] and
// dbias[d] are summed per thread over its own 32 steps, then over the block's 4 time runs in
// shared memory, written as one partial per (b, block row of 128 steps); a second kernel sums
// the partials in a fixed order and adds them to dw_acc / dbias_acc: deterministic.
#include <climits>

#include "lmforge/backend/cuda/mamba_common.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

using mamba::ParamPtr;

constexpr int kCV = 4;   // channels per thread
constexpr int kBX = 32;  // threads along channels
constexpr int kBY = 4;   // threads along time
constexpr int kTT = 32;  // timesteps per thread
constexpr int kU = 8;    // forward: steps whose loads are issued together (bytes in flight)
constexpr int kUB = 2;   // backward (x and dy: twice the loads per step)
constexpr int kMaxK = 8;

struct ConvParams {
  const void* x = nullptr;
  const void* dy = nullptr;
  void* y = nullptr;
  void* dx = nullptr;
  ParamPtr w, bias;
  const int32_t* seq = nullptr;
  float* partial = nullptr;  // [P, D, K + 1]: dw then dbias, P = B * gridDim.y
  int B = 0, L = 0, D = 0;
  bool silu = false;
  bool vec = false;  // D % 4 == 0 and aligned pointers: vector loads / stores
};

// 4 channels from p[off .. off+3] (only the first `nvalid` exist).
template <class T>
__device__ __forceinline__ void load4(const T* p, int64_t off, int nvalid, bool vec, float (&v)[kCV]) {
  if (vec && nvalid == kCV) {
    if constexpr (sizeof(T) == 4) {
      const float4 q = __ldg(reinterpret_cast<const float4*>(p + off));
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      const uint2 q = __ldg(reinterpret_cast<const uint2*>(p + off));
      const T* e = reinterpret_cast<const T*>(&q);
#pragma unroll
      for (int c = 0; c < kCV; c++) v[c] = to_f(e[c]);
    }
  } else {
#pragma unroll
    for (int c = 0; c < kCV; c++) v[c] = c < nvalid ? to_f(p[off + c]) : 0.f;
  }
}

template <class T>
__device__ __forceinline__ void store4(T* p, int64_t off, int nvalid, bool vec, const float (&v)[kCV]) {
  if (vec && nvalid == kCV) {
    if constexpr (sizeof(T) == 4) {
      *reinterpret_cast<float4*>(p + off) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      uint2 q;
      T* e = reinterpret_cast<T*>(&q);
#pragma unroll
      for (int c = 0; c < kCV; c++) e[c] = from_f<T>(v[c]);
      *reinterpret_cast<uint2*>(p + off) = q;
    }
  } else {
#pragma unroll
    for (int c = 0; c < kCV; c++)
      if (c < nvalid) p[off + c] = from_f<T>(v[c]);
  }
}

__device__ __forceinline__ float silu_f(float v) { return v * mamba::sigmoid_f(v); }
__device__ __forceinline__ float silu_grad_f(float v) {
  const float s = mamba::sigmoid_f(v);
  return s * (1.f + v * (1.f - s));
}

template <int K>
__device__ __forceinline__ void load_weights(const ConvParams& p, int d, int nvalid, float (&w)[K][kCV],
                                             float (&bias)[kCV]) {
#pragma unroll
  for (int c = 0; c < kCV; c++) {
    const bool ok = c < nvalid;
#pragma unroll
    for (int j = 0; j < K; j++) w[j][c] = ok ? p.w[int64_t(d + c) * K + j] : 0.f;
    bias[c] = (ok && p.bias.p) ? p.bias[d + c] : 0.f;
  }
}

// Pre-activation at the newest window slot K-1: bias + sum_j w[j] x[slot j], slots of another
// document skipped (positions before 0 hold x = 0).
template <int K>
__device__ __forceinline__ void conv_pre(const float (&w)[K][kCV], const float (&bias)[kCV], const float (&win)[K][kCV],
                                         const int (&sw)[K], bool has_seq, float (&pre)[kCV]) {
#pragma unroll
  for (int c = 0; c < kCV; c++) pre[c] = bias[c];
#pragma unroll
  for (int j = 0; j < K; j++) {
    const bool keep = !has_seq || sw[j] == sw[K - 1];
#pragma unroll
    for (int c = 0; c < kCV; c++) pre[c] = keep ? fmaf(w[j][c], win[j][c], pre[c]) : pre[c];
  }
}

template <class T, int K>
__global__ void __launch_bounds__(kBX* kBY) conv_forward_kernel(ConvParams p) {
  const int d = (blockIdx.x * kBX + threadIdx.x) * kCV;
  const int b = blockIdx.z;
  const int t0 = (blockIdx.y * kBY + threadIdx.y) * kTT;
  if (d >= p.D || t0 >= p.L) return;
  const int nvalid = min(kCV, p.D - d);
  float w[K][kCV], bias[kCV];
  load_weights<K>(p, d, nvalid, w, bias);
  const T* x = static_cast<const T*>(p.x) + int64_t(b) * p.L * p.D;
  T* y = static_cast<T*>(p.y) + int64_t(b) * p.L * p.D;
  const int32_t* seq = p.seq ? p.seq + int64_t(b) * p.L : nullptr;

  float win[K][kCV];
  int sw[K];
#pragma unroll
  for (int j = 0; j < K - 1; j++) {
    const int s = t0 - (K - 1) + j;
    if (s >= 0) {
      load4(x, int64_t(s) * p.D + d, nvalid, p.vec, win[j]);
      sw[j] = seq ? seq[s] : 0;
    } else {
#pragma unroll
      for (int c = 0; c < kCV; c++) win[j][c] = 0.f;
      sw[j] = 0;
    }
  }
  const int t_end = min(t0 + kTT, p.L);
  for (int tb = t0; tb < t_end; tb += kU) {
    float xs[kU][kCV];
    int ss[kU];
#pragma unroll
    for (int u = 0; u < kU; u++) {
      const int t = tb + u;
      if (t < t_end) {
        load4(x, int64_t(t) * p.D + d, nvalid, p.vec, xs[u]);
        ss[u] = seq ? seq[t] : 0;
      }
    }
#pragma unroll
    for (int u = 0; u < kU; u++) {
      const int t = tb + u;
      if (t >= t_end) break;
#pragma unroll
      for (int c = 0; c < kCV; c++) win[K - 1][c] = xs[u][c];
      sw[K - 1] = ss[u];
      float v[kCV];
      conv_pre<K>(w, bias, win, sw, seq != nullptr, v);
      if (p.silu)
#pragma unroll
        for (int c = 0; c < kCV; c++) v[c] = silu_f(v[c]);
      store4(y, int64_t(t) * p.D + d, nvalid, p.vec, v);
#pragma unroll
      for (int j = 0; j < K - 1; j++) {
#pragma unroll
        for (int c = 0; c < kCV; c++) win[j][c] = win[j + 1][c];
        sw[j] = sw[j + 1];
      }
    }
  }
}

template <class T, int K>
__global__ void __launch_bounds__(kBX* kBY) conv_backward_kernel(ConvParams p) {
  __shared__ float s_part[kBY][kBX * kCV][K + 1];
  const int d = (blockIdx.x * kBX + threadIdx.x) * kCV;
  const int b = blockIdx.z;
  const int t0 = (blockIdx.y * kBY + threadIdx.y) * kTT;
  const bool active = d < p.D && t0 < p.L;
  float dw[K][kCV], db[kCV];
#pragma unroll
  for (int c = 0; c < kCV; c++) {
    db[c] = 0.f;
#pragma unroll
    for (int j = 0; j < K; j++) dw[j][c] = 0.f;
  }
  if (active) {
    const int nvalid = min(kCV, p.D - d);
    float w[K][kCV], bias[kCV];
    load_weights<K>(p, d, nvalid, w, bias);
    const int64_t base = int64_t(b) * p.L * p.D;
    const T* x = static_cast<const T*>(p.x) + base;
    const T* dy = static_cast<const T*>(p.dy) + base;
    T* dx = p.dx ? static_cast<T*>(p.dx) + base : nullptr;
    const int32_t* seq = p.seq ? p.seq + int64_t(b) * p.L : nullptr;

    // Window slot j holds position tp - (K-1) + j: x, document id, and g (0 before t0: not
    // needed, since dx is emitted only for s >= t0, which reads g at positions >= s).
    float win[K][kCV], gw[K][kCV];
    int sw[K];
#pragma unroll
    for (int j = 0; j < K; j++) {
#pragma unroll
      for (int c = 0; c < kCV; c++) win[j][c] = gw[j][c] = 0.f;
      sw[j] = 0;
    }
#pragma unroll
    for (int j = 0; j < K - 1; j++) {
      const int s = t0 - (K - 1) + j;
      if (s >= 0) {
        load4(x, int64_t(s) * p.D + d, nvalid, p.vec, win[j]);
        sw[j] = seq ? seq[s] : 0;
      }
    }
    const int own_end = min(t0 + kTT, p.L);
    const int tp_end = own_end + K - 1;  // dx[s] for s < own_end needs g up to s + K - 1
    for (int tb = t0; tb < tp_end; tb += kUB) {
      float xs[kUB][kCV], gs[kUB][kCV];
      int ss[kUB];
#pragma unroll
      for (int u = 0; u < kUB; u++) {
        const int t = tb + u;
        if (t < p.L && t < tp_end) {
          load4(x, int64_t(t) * p.D + d, nvalid, p.vec, xs[u]);
          load4(dy, int64_t(t) * p.D + d, nvalid, p.vec, gs[u]);
          ss[u] = seq ? seq[t] : 0;
        } else {
#pragma unroll
          for (int c = 0; c < kCV; c++) xs[u][c] = gs[u][c] = 0.f;  // past L: g = 0
          ss[u] = INT_MIN;
        }
      }
#pragma unroll
      for (int u = 0; u < kUB; u++) {
        const int tp = tb + u;
        if (tp >= tp_end) break;
#pragma unroll
        for (int c = 0; c < kCV; c++) win[K - 1][c] = xs[u][c];
        sw[K - 1] = ss[u];
        if (tp < p.L) {
          float pre[kCV];
          conv_pre<K>(w, bias, win, sw, seq != nullptr, pre);
#pragma unroll
          for (int c = 0; c < kCV; c++) gw[K - 1][c] = p.silu ? gs[u][c] * silu_grad_f(pre[c]) : gs[u][c];
          if (tp < own_end) {
#pragma unroll
            for (int j = 0; j < K; j++) {
              const bool keep = !seq || sw[j] == sw[K - 1];
#pragma unroll
              for (int c = 0; c < kCV; c++) dw[j][c] = keep ? fmaf(gw[K - 1][c], win[j][c], dw[j][c]) : dw[j][c];
            }
#pragma unroll
            for (int c = 0; c < kCV; c++) db[c] += gw[K - 1][c];
          }
        } else {
#pragma unroll
          for (int c = 0; c < kCV; c++) gw[K - 1][c] = 0.f;
        }
        const int s = tp - (K - 1);  // slot 0
        if (s >= t0 && dx) {
          float v[kCV] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
          for (int j = 0; j < K; j++) {  // output position s + K-1-j is slot K-1-j
            const bool keep = !seq || sw[0] == sw[K - 1 - j];
#pragma unroll
            for (int c = 0; c < kCV; c++) v[c] = keep ? fmaf(w[j][c], gw[K - 1 - j][c], v[c]) : v[c];
          }
          store4(dx, int64_t(s) * p.D + d, nvalid, p.vec, v);
        }
#pragma unroll
        for (int j = 0; j < K - 1; j++) {
#pragma unroll
          for (int c = 0; c < kCV; c++) {
            win[j][c] = win[j + 1][c];
            gw[j][c] = gw[j + 1][c];
          }
          sw[j] = sw[j + 1];
        }
      }
    }
  }
  // Block partial of dw / dbias: sum over the kBY time runs.
#pragma unroll
  for (int c = 0; c < kCV; c++) {
#pragma unroll
    for (int j = 0; j < K; j++) s_part[threadIdx.y][threadIdx.x * kCV + c][j] = dw[j][c];
    s_part[threadIdx.y][threadIdx.x * kCV + c][K] = db[c];
  }
  __syncthreads();
  const int tid = threadIdx.y * kBX + threadIdx.x;  // one channel of the block's 128 per thread
  const int dc = blockIdx.x * kBX * kCV + tid;
  if (dc < p.D) {
    float* out = p.partial + ((int64_t(b) * gridDim.y + blockIdx.y) * p.D + dc) * (K + 1);
#pragma unroll
    for (int j = 0; j <= K; j++) {
      float s = 0.f;
#pragma unroll
      for (int r = 0; r < kBY; r++) s += s_part[r][tid][j];
      out[j] = s;
    }
  }
}

// dw_acc[d, j] += sum_p partial[p, d, j]; dbias_acc[d] += sum_p partial[p, d, K].
__global__ void conv_weight_grads_kernel(const float* partial, int P, int D, int K, float* dw_acc, float* dbias_acc) {
  const int64_t n = int64_t(D) * (K + 1);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int q = 0; q < P; q++) s += partial[int64_t(q) * n + i];
    const int64_t dd = i / (K + 1);
    const int j = int(i - dd * (K + 1));
    if (j < K) {
      if (dw_acc) dw_acc[dd * K + j] += s;
    } else if (dbias_acc) {
      dbias_acc[dd] += s;
    }
  }
}

dim3 conv_grid(const ConvParams& p) {
  return dim3(unsigned((p.D + kBX * kCV - 1) / (kBX * kCV)), unsigned((p.L + kBY * kTT - 1) / (kBY * kTT)),
              unsigned(p.B));
}

template <class T, int K>
void launch_conv(const ConvParams& p, bool backward) {
  const dim3 block(kBX, kBY);
  if (backward)
    conv_backward_kernel<T, K><<<conv_grid(p), block, 0, current_stream()>>>(p);
  else
    conv_forward_kernel<T, K><<<conv_grid(p), block, 0, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_conv_any_k(const ConvParams& p, int K, bool backward) {
  switch (K) {
    case 1: launch_conv<T, 1>(p, backward); break;
    case 2: launch_conv<T, 2>(p, backward); break;
    case 3: launch_conv<T, 3>(p, backward); break;
    case 4: launch_conv<T, 4>(p, backward); break;
    case 5: launch_conv<T, 5>(p, backward); break;
    case 6: launch_conv<T, 6>(p, backward); break;
    case 7: launch_conv<T, 7>(p, backward); break;
    default: launch_conv<T, 8>(p, backward); break;
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
  const uintptr_t align = uintptr_t(kCV) * dtype_size(x.dtype());
  p.vec = D % kCV == 0 && reinterpret_cast<uintptr_t>(x.data_ptr()) % align == 0 &&
          reinterpret_cast<uintptr_t>(other.data_ptr()) % align == 0;
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
  dispatch_floating(x.dtype(), op, [&]<class T>() { launch_conv_any_k<T>(p, int(w.size(1)), false); });
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
  if (p.dx && reinterpret_cast<uintptr_t>(p.dx) % (uintptr_t(kCV) * dtype_size(x.dtype())) != 0) p.vec = false;
  p.silu = silu;
  const int K = int(w.size(1));
  const dim3 grid = conv_grid(p);
  const int P = p.B * int(grid.y);
  Tensor partial = Tensor::empty({int64_t(P), int64_t(p.D), int64_t(K + 1)}, DType::f32, x.device());
  p.partial = partial.data<float>();
  dispatch_floating(x.dtype(), op, [&]<class T>() { launch_conv_any_k<T>(p, K, true); });
  if (dw_acc.defined() || dbias_acc.defined()) {
    const int64_t n = int64_t(p.D) * (K + 1);
    conv_weight_grads_kernel<<<blocks_for(n), 256, 0, current_stream()>>>(
        p.partial, P, p.D, K, dw_acc.defined() ? dw_acc.data<float>() : nullptr,
        dbias_acc.defined() ? dbias_acc.data<float>() : nullptr);
    LMF_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace lmf::cuda
