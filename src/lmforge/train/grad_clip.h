// Global gradient norm and the clip factor of torch.nn.utils.clip_grad_norm_ (norm_type 2).
// The factor is not applied here: pass it to AdamW::step as grad_scale, so clipping costs no
// extra pass over the gradients.
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf {

// L2 norm sqrt(sum g_i^2) of a contiguous f32 tensor (any shape) on cpu or cuda, accumulated in
// fp64 (cpu: chunked OpenMP; cuda: two-pass block reduction); deterministic for a given size.
// Throws lmf::Error "grad_norm: ..." for an undefined, non-f32 or non-contiguous tensor, or a
// cuda tensor in a build without CUDA. NaN/Inf in the gradients give a NaN/Inf norm.
double grad_norm(const Tensor& grads_f32);

// min(1, max_norm / (norm + 1e-6)), torch.nn.utils.clip_grad_norm_'s clip_coef_clamped
// (computed here in fp64; torch does it in the norm's dtype). As in torch, a NaN norm gives NaN
// and an infinite norm gives 0: callers should skip the step on a non-finite norm.
// Throws lmf::Error for max_norm not finite and > 0, or norm < 0.
double clip_factor(double norm, double max_norm);

}  // namespace lmf
