// The causal conv1d backward kernels (the recomputing and the carrying kernel; conv1d.cu has
// the description and the launch choices). Included by conv1d.cu only.
#pragma once

#include "lmforge/backend/cuda/conv1d_common.cuh"

namespace lmf::cuda::conv {

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

}  // namespace lmf::cuda::conv
