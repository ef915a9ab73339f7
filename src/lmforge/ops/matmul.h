// Differentiable matrix product (2-D, or batched 3-D with equal batch sizes).
//
// Contract
//  - a, b: floating, same dtype, same device (f64 on cpu only); any strides (made contiguous).
//  - 2-D: op(a) [M, K], op(b) [K, N] -> [M, N]; 3-D: op(a) [Bt, M, K], op(b) [Bt, K, N] ->
//    [Bt, M, N]. op(x) = x, or x transposed over its last two dims when trans_x is true.
//    No broadcasting of the batch dim.
//  - Output dtype = input dtype; accumulation is fp32 (fp64 for f64).
//  - Backward: gradients of a and b in their dtype; a parameter input's gradient is added
//    straight into its fp32 slot by the GEMM (beta = 1).
//  - Errors: lmf::Error prefixed "[matmul]" for bad ranks, mismatched inner/batch dimensions,
//    dtypes or devices.
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

}  // namespace lmf::ops
