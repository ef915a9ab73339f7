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

#include "lmforge/backend/cuda/conv1d_backward.cuh"
#include "lmforge/backend/cuda/conv1d_common.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

using namespace conv;

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
