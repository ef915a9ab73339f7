// Differentiable softmax over the last dimension (torch.softmax(x, -1)).
//
// Contract: x is a floating tensor with at least one dimension (f32/bf16/f16; f64 on cpu), any
// strides. Returns a new contiguous tensor of x's shape and dtype. Max-subtracted, fp32 (cpu:
// fp64) accumulation; a row of all -inf gives NaN like PyTorch. The backward uses the saved
// output: dx = y * (dy - sum(dy * y)). Errors: lmf::Error "[softmax] ...".
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor softmax(const Tensor& x);

}  // namespace lmf::ops
