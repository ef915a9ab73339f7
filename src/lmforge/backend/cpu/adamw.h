// Fused AdamW over flat fp32 buffers: the CPU reference (the specification the CUDA kernel in
// backend/cuda/adamw.cu follows; it calls adamw_update_element below, so the per-element
// arithmetic exists once). Callers use lmf::AdamW (train/adamw.h), which validates tensors and
// resolves the per-range factors; these functions take raw pointers and trust them.
//
// Per element, in the order torch.optim.AdamW (_single_tensor_adam, decoupled weight decay)
// applies it, all in fp32 with the scalars precomputed in fp64 by the caller:
//   g  = grad * grad_scale                  (clip factor folded in: clipping costs no pass)
//   p  = p * (1 - lr*wd)                    param.mul_(1 - lr * weight_decay)
//   m  = lerp(m, g, 1 - beta1)              exp_avg.lerp_(grad, 1 - beta1)
//   v  = v * beta2 + (1 - beta2) * g * g    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
//   d  = sqrt(v) / sqrt(1 - beta2^t) + eps  (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//   p  = p + (-lr / (1 - beta1^t)) * m / d  param.addcdiv_(exp_avg, denom, value=-step_size)
// which equals p -= lr*wd*p; p -= lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m/(1-beta1^t),
// v_hat = v/(1-beta2^t). lerp follows ATen's two-branch form (exact at both ends).
#pragma once

#include <cmath>
#include <cstdint>

#include "lmforge/core/dtype.h"

namespace lmf {

// One contiguous range [begin, end) of the flat buffers and its factors for this step.
struct AdamWRange {
  int64_t begin = 0, end = 0;
  float decay_factor = 1.f;  // 1 - lr * lr_scale * weight_decay
  float step_size = 0.f;     // lr * lr_scale / (1 - beta1^t)
};

// Step-wide scalars, computed in fp64 by the caller and rounded once to fp32 (as PyTorch does
// when it passes Python floats to fp32 tensor ops).
struct AdamWScalars {
  float beta2 = 0.999f;
  float one_minus_beta1 = 0.1f, one_minus_beta2 = 0.001f;
  float eps = 1e-8f;
  float bias_correction2_sqrt = 1.f;  // sqrt(1 - beta2^t)
  float grad_scale = 1.f;             // clip factor
};

// Updates one element in place (host and device).
LMF_HD inline void adamw_update_element(float& p, float& m, float& v, float grad,
                                        float decay_factor, float step_size,
                                        const AdamWScalars& s) {
  const float g = grad * s.grad_scale;
  p = p * decay_factor;
  // ATen lerp: self + w * (end - self) for |w| < 0.5, else end - (end - self) * (1 - w).
  m = (s.one_minus_beta1 < 0.5f) ? m + s.one_minus_beta1 * (g - m)
                                 : g - (g - m) * (1.f - s.one_minus_beta1);
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
  p = p + (-step_size) * m / denom;
}

namespace cpu {

// One AdamW step over n elements of contiguous host buffers.
//  params, exp_avg, exp_avg_sq: fp32 [n], updated in place; grads: fp32 [n], read only.
//  copy: nullptr, or [n] elements of copy_dtype (f32 or bf16) written with the updated params
//        (bf16 rounded to nearest even, as float_to_bf16).
//  ranges: num_ranges entries sorted by begin, disjoint, inside [0, n). Elements outside every
//        range are not touched (frozen). Violations are programming errors (LMF_CHECK).
// Parallel over elements with OpenMP; the result does not depend on the thread count.
void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, void* copy,
                DType copy_dtype, int64_t n, const AdamWRange* ranges, int num_ranges,
                const AdamWScalars& scalars);

}  // namespace cpu
}  // namespace lmf
