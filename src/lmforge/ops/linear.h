// Differentiable affine map, PyTorch nn.Linear semantics: y = x W^T + b.
//
// Contract
//  - x: [..., in] floating (at least 1-D); w: [out, in], same dtype and device as x;
//    b: undefined, or [out] of x's dtype or f32. f64 on cpu only.
//  - Returns y: [..., out] of x's dtype (fp32 accumulation; on CUDA the bias is fused into the
//    cuBLASLt epilogue when its dtype equals y's).
//  - Backward: dx = dy W (assigned, x's dtype); dW += dy^T x and db += sum over rows of dy,
//    added straight into the parameters' fp32 gradient slots (no temporaries); for
//    non-parameter w / b the gradient is a new f32 (f64 for f64) tensor.
//  - Errors: lmf::Error prefixed "[linear]" naming the argument (rank, feature size, dtype,
//    device mismatch).
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

}  // namespace lmf::ops
