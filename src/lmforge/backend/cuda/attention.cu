// CUDA attention entry points (contracts in backend/kernel_list.inc): parameter setup, the
// backward's pre-pass D_i = rowsum(dO_i * O_i). The kernels live in attention_fwd.cu / attention_bwd.cu.
#include <algorithm>
#include <climits>

#include "lmforge/backend/cuda/attention_common.cuh"
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

using attn::Params;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// A window at least as long as the longest sequence is no window (keeps r + w in int range).
int clamp_window(int64_t w, int64_t max_seqlen) { return (w < 0 || w >= max_seqlen) ? -1 : int(w); }

Params make_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_seqlens, int64_t max_seqlen,
                   float scale, bool causal, int64_t window_left, int64_t window_right) {
  if (max_seqlen >= (int64_t(1) << 30))
    fail("[attention] CUDA kernels take sequences shorter than 2^30 tokens, got ", max_seqlen);
  Params p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.q_st = q.strides()[0];
  p.q_sh = q.strides()[1];
  p.k_st = k.strides()[0];
  p.k_sh = k.strides()[1];
  p.v_st = v.strides()[0];
  p.v_sh = v.strides()[1];
  p.N = q.size(0);
  p.cu = static_cast<const int32_t*>(cu_seqlens.data_ptr());
  p.Hq = int(q.size(1));
  p.Hkv = int(k.size(1));
  p.group = p.Hq / p.Hkv;
  p.D = int(q.size(2));
  p.scale = scale;
  p.scale_log2 = scale * attn::kLog2e;
  p.causal = causal ? 1 : 0;
  p.wl = clamp_window(window_left, max_seqlen);
  p.wr = clamp_window(window_right, max_seqlen);
  // 16-byte row packs (8 elements of 16 bits) for the tensor-core tile loads.
  const bool rows8 = p.D % 8 == 0 && p.q_st % 8 == 0 && p.q_sh % 8 == 0 && p.k_st % 8 == 0 && p.k_sh % 8 == 0 &&
                     p.v_st % 8 == 0 && p.v_sh % 8 == 0;
  p.vec = (rows8 && aligned16(p.q) && aligned16(p.k) && aligned16(p.v)) ? 1 : 0;
  return p;
}

// Di[r] = sum_d dout[r, d] * out[r, d] for the N * Hq rows: one warp per row.
template <class T>
__global__ void rowdot_kernel(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ out, int64_t rows,
                              int D) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5); r < rows; r += warps) {
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += to_f(a[r * D + d]) * to_f(b[r * D + d]);
    s = attn::warp_sum(s);
    if (lane == 0) out[r] = s;
  }
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_seqlens,
                       int64_t max_seqlen, float scale, bool causal, int64_t window_left, int64_t window_right,
                       const Tensor& out, const Tensor& lse) {
  Params p = make_params(q, k, v, cu_seqlens, max_seqlen, scale, causal, window_left, window_right);
  p.out = out.data_ptr();
  p.lse = static_cast<float*>(lse.data_ptr());
  attn::launch_forward(p, q.dtype(), int(cu_seqlens.numel() - 1), int(max_seqlen));
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& dout,
                        const Tensor& lse, const Tensor& cu_seqlens, int64_t max_seqlen, float scale, bool causal,
                        int64_t window_left, int64_t window_right, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv) {
  Params p = make_params(q, k, v, cu_seqlens, max_seqlen, scale, causal, window_left, window_right);
  const int64_t N = q.size(0), rows = N * p.Hq;
  if (p.vec && !aligned16(dout.data_ptr())) p.vec = 0;
  Tensor Di = Tensor::empty({N, int64_t(p.Hq)}, DType::f32, q.device());
  dispatch_floating(q.dtype(), "attention_backward", [&]<class T>() {
    const int threads = 256;
    const int blocks = blocks_for(rows * 32, threads);
    rowdot_kernel<T><<<blocks, threads, 0, current_stream()>>>(ptr<T>(dout), ptr<T>(out), ptr<float>(Di), rows, p.D);
    LMF_CUDA_CHECK_LAUNCH();
  });
  p.dout = dout.data_ptr();
  p.lse_in = static_cast<const float*>(lse.data_ptr());
  p.Di = ptr<float>(Di);
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  // By default every kernel writes its dQ / dK / dV rows exactly once (no scratch, no atomics);
  // LMF_ATTN_BWD=atomic adds dQ into a zeroed fp32 scratch instead (one pass, see attention_bwd.cu).
  Tensor dq_acc;
  if (attn::use_atomic_dq(q.dtype(), p.D)) {
    dq_acc = Tensor::empty({N, int64_t(p.Hq), int64_t(p.D)}, DType::f32, q.device());
    dq_acc.zero_();
    p.dq_acc = ptr<float>(dq_acc);
  }
  attn::launch_backward(p, q.dtype(), int(cu_seqlens.numel() - 1), int(max_seqlen));
}

}  // namespace lmf::cuda
