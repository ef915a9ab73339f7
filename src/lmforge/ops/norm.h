// Differentiable normalisations over the last dimension C (rows = all leading dims).
//
// layer_norm: PyTorch nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b with the biased
//   variance; b may be undefined (ModernBERT's bias=False). Output dtype = x's dtype.
// rms_norm: HF MambaRMSNorm / LlamaRMSNorm (PARITY.md §1): upcast to fp32, var = mean(x^2),
//   h = x * rsqrt(var + eps), cast h back to x's dtype, then y = w * h, which promotes:
//   output dtype = x's dtype when w has it, f32 when one of them is f32 and the other bf16.
//
// Contract
//  - x floating with >= 1 dimension and C = x.size(-1) > 0, any strides; w (and b) 1-D of size
//    C on x's device. w has x's dtype, or is f32 with bf16 x; rms_norm also takes a bf16 w with
//    f32 x. b has w's dtype. eps finite and >= 0. Violations throw lmf::Error "[layer_norm] ...".
//  - Statistics (mean, rstd per row) are fp32 (fp64 for f64 inputs) and saved for backward.
//  - Backward gives dx (x's dtype), and dw / db: added into the parameter's fp32 gradient slot
//    when w / b is a parameter (autograd::make_param), else returned as a fresh f32 (f64) tensor.
#pragma once

#include <utility>

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps);
// The same with the output (and its gradient) in `out_dtype`: x's dtype, or bf16 for f32 x and
// weight (an fp32 residual stream normalised straight into a bf16 matmul input: one kernel
// instead of a norm and a cast). dx stays in x's dtype.
Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, DType out_dtype);
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps);
// rms_norm(cast(x, input_dtype), w, eps): HF MambaBlock normalising its fp32 residual as
// norm(residual.to(norm.weight.dtype)). For f32 x with a bf16 weight and input_dtype bf16 it is
// one kernel each way, and the backward adds the (bf16-rounded) gradient straight into the
// gradient x has collected so far (the residual path's); other dtypes run the cast and the norm.
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps, DType input_dtype);
// The residual add that ends a Mamba block fused with the next block's norm: returns {s, y},
// s = add(x, h) (x + h in the promoted dtype: f32 for an f32 residual and a bf16 block output)
// and y = rms_norm(s, w, eps, input_dtype). For f32 x, bf16 h and w and input_dtype bf16 it is
// one kernel each way: the forward writes s and y in one pass, the backward gives x's gradient
// (added into the one x has collected, when it has one), h's bf16 copy of it and the weight's.
// h must have x's shape (no broadcast on the fused path); other dtypes run add, then rms_norm.
std::pair<Tensor, Tensor> add_rms_norm(const Tensor& x, const Tensor& h, const Tensor& w, float eps, DType input_dtype);

}  // namespace lmf::ops
