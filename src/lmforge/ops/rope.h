// Differentiable rotary position embeddings with HF transformers semantics
// (apply_rotary_pos_emb with rotate_half, the GPT-NeoX layout; PARITY.md §4):
//   inv_freq_i = theta^(-2i/R) for i < R/2, angle = position * inv_freq_i, both in fp32;
//   cos / sin are rounded to the activation dtype (HF casts them to x's dtype), then for each head
//   x'[i] = x[i] cos - x[i + R/2] sin,  x'[i + R/2] = x[i + R/2] cos + x[i] sin   (i < R/2)
//   and channels R..D-1 pass through unchanged (a rotary_dim prefix; R = D is ModernBERT's case).
// The backward is the inverse rotation (sin -> -sin) with the same rounded cos / sin, so the
// gradient is the exact transpose of the forward.
//
// Contract (both ops)
//  - positions: [N] i64 (i32 accepted) on x's device: the position of each row (e.g. the token's
//    rank within its sequence for unpadded ModernBERT). Not differentiable.
//  - theta > 0 and finite; rotary_dim: 0 (= D) or even, 0 < rotary_dim <= D; D must be even when
//    rotary_dim = 0.
//  - dtypes: f32 / bf16 / f16 (f64 on cpu, computed in fp64 for gradchecks).
//  - Errors: lmf::Error "[rope] ..." naming the argument (rank, unit stride, dtype, device,
//    positions length, rotary_dim, theta).
#pragma once

#include <cstdint>

#include "lmforge/core/tensor.h"

namespace lmf::ops {

// x [N, H, D], any strides with unit stride in D (made contiguous otherwise).
// Returns a new contiguous [N, H, D] tensor of x's dtype; differentiable w.r.t. x.
Tensor rope(const Tensor& x, const Tensor& positions, double theta, int64_t rotary_dim = 0);

// The fused-QKV form: qkv [N, 3, H, D] (a view of a [N, 3*H*D] projection; the [3, H] dims must
// be mergeable, i.e. stride(1) == H * stride(2), and stride(3) == 1, else it is copied first).
// q and k are rotated in ONE kernel launch into one new [N, 2, H, D] buffer; the results are
// views of it (q = [:, 0], k = [:, 1], strides (2HD, D, 1)); v is a view of qkv[:, 2] (no copy).
// All three are [N, H, D] with unit stride in D, as ops::attention takes them, and all three
// are differentiable: their gradients are assembled into one gradient of qkv.
struct RopeQKV {
  Tensor q, k, v;
};
RopeQKV rope_qkv(const Tensor& qkv, const Tensor& positions, double theta, int64_t rotary_dim = 0);

}  // namespace lmf::ops
