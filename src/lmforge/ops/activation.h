// Differentiable activations with HF transformers semantics (activations.py; PARITY.md §0):
//   gelu_erf  0.5 x (1 + erf(x / sqrt 2))                          HF "gelu"
//   gelu_tanh 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))      HF "gelu_new"
//   silu      x sigmoid(x);  relu max(x, 0);  tanh
//   softplus  F.softplus (beta 1, threshold 20): x when x > 20, else log1p(exp(x))
//
// Contract: x is a floating tensor (f32/bf16/f16; f64 on cpu), any shape and strides, on any
// device. Returns a new contiguous tensor of x's shape and dtype; math is fp32 (fp64 for f64).
// The backward recomputes act'(x) from the saved input. Errors: lmf::Error "[activation] ...".
#pragma once

#include "lmforge/backend/kernels.h"  // Activation
#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor activation(const Tensor& x, Activation act);
// Gated activation (GeGLU with gelu, SwiGLU with silu): x [..., 2I] -> [..., I],
// act(x[..., :I]) * x[..., I:] — HF's `input, gate = x.chunk(2, dim=-1); act(input) * gate`
// (ModernBertMLP) as one kernel each way instead of a split, an activation and a product.
// Errors: an odd or missing last dimension.
Tensor gated_activation(const Tensor& x, Activation act);
// Exact erf GELU, or the tanh approximation (HF gelu_new) when approximate_tanh.
Tensor gelu(const Tensor& x, bool approximate_tanh = false);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x);

}  // namespace lmf::ops
