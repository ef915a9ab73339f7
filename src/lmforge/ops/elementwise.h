// Differentiable element-wise ops and reductions.
//
// Contract: inputs are floating tensors on one device (any strides: they are made contiguous);
// binary ops need equal shapes and dtypes (no broadcasting except add_row_vector), except that
// add / sub / axpby take an f32 `a` with a bf16 / f16 `b` (an fp32 residual stream plus a
// low-precision branch, no cast kernel; b's gradient comes back in b's dtype). Outputs are
// new contiguous tensors of a's dtype; sum/mean return a [1] tensor in f32 (f64 for f64
// input). Errors: lmf::Error prefixed "[op]".
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor add(const Tensor& a, const Tensor& b);              // a + b
Tensor sub(const Tensor& a, const Tensor& b);              // a - b
Tensor axpby(const Tensor& a, const Tensor& b, float alpha, float beta);  // alpha a + beta b
Tensor mul(const Tensor& a, const Tensor& b);              // a * b
Tensor scale(const Tensor& a, float s);                    // s * a
Tensor add_row_vector(const Tensor& x, const Tensor& v);   // x[..., c] + v[c]
Tensor cast(const Tensor& x, DType dtype);                 // differentiable dtype change
Tensor sum(const Tensor& x);                               // [1]
Tensor mean(const Tensor& x);                              // [1]
Tensor sum_last_dim(const Tensor& x);                      // [...] (drops the last dim), f32/f64

}  // namespace lmf::ops
