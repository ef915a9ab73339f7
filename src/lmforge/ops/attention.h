// Scaled dot-product attention over an unpadded (ragged) token stream: the one attention op
// every Transformer family uses (DESIGN.md §4 "Unpadding"). Padded batches are unpadded by the
// model first (models/token_batch.h), so padding never costs FLOPs or memory.
//
// Semantics, for each sequence s with tokens [cu[s], cu[s+1]) of the stream and each head h:
//   S_ij = scale * q_i . k_j                      (i, j local indices within sequence s)
//   key j is visible to query i iff
//       (!causal || j <= i)  and  (window_left  < 0 || i - j <= window_left)
//                            and  (window_right < 0 || j - i <= window_right)
//   P_i = softmax_j(S_ij over visible j) in fp32;  out_i = sum_j P_ij v_j.
//   A query with no visible key (impossible unless both windows are negative-sized) gets 0.
// Grouped heads: head h of q reads kv head h / (heads_q / heads_kv).
// Sliding windows: ModernBERT local layers use window_left = window_right = local_attention / 2
// (PARITY.md §4: |i - j| <= 64, 129 keys); GPT-Neo local layers: causal, window_left = 255.
//
// Contract
//  q        [N, Hq, D]  f32 / bf16 / f16 (f64 on cpu, for gradchecks); any strides with unit
//           stride in D (views of a fused QKV projection are fine).
//  k, v     [N, Hkv, D] same dtype and device; Hq % Hkv == 0.
//  cu_seqlens  host vector [S+1], cu[0] = 0, non-decreasing, cu[S] = N. Empty sequences allowed.
//  Returns  out [N, Hq, D] contiguous, q's dtype. Differentiable w.r.t. q, k and v (gradients in
//           their dtype). Softmax statistics are kept in fp32; memory is O(N * Hq) beyond the
//           inputs and outputs — never O(T^2) (no materialized score matrix on CUDA; the CPU
//           reference may use O(T) scratch per query).
//  D <= 256 on CUDA (64 and 128 are the fast paths).
// Throws lmf::Error "[attention] ..." for mismatched shapes/dtypes/devices, a bad cu_seqlens or
// an unsupported head size.
#pragma once

#include <cstdint>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::ops {

struct AttentionOptions {
  float scale = 0.f;          // 0 = 1 / sqrt(D)
  bool causal = false;
  int64_t window_left = -1;   // -1 = unlimited
  int64_t window_right = -1;  // -1 = unlimited
};

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int32_t>& cu_seqlens,
                 const AttentionOptions& options = AttentionOptions());

}  // namespace lmf::ops
