// Internal helpers for the backward closures of ops/ (not part of the op API).
#pragma once

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/tensor.h"

namespace lmf::ops::detail {

// Accumulation / statistics dtype for inputs of dtype t: f64 for f64 (CPU gradcheck), else f32.
inline DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// The upstream gradient as a contiguous tensor of `dtype` (the dtype the kernels expect).
inline Tensor grad_as(const Tensor& g, DType dtype) {
  Tensor c = g.contiguous();
  if (c.dtype() == dtype) return c;
  Tensor out = Tensor::empty(c.shape(), dtype, c.device());
  LMF_DISPATCH(out, cast, c, out);
  return out;
}

// Where the gradient of a weight-like input j goes: its parameter slot (added into; nothing is
// returned for it) or fresh zeros of the accumulation dtype that are returned to the tape.
struct WeightGrad {
  Tensor acc;     // what the kernel adds into (undefined when input j needs no gradient)
  Tensor result;  // what the backward closure returns for j
};
inline WeightGrad weight_grad(const autograd::GradContext& ctx, int j, const Shape& shape, DType dtype,
                              Device device) {
  if (!ctx.needs_grad(j)) return {};
  Tensor slot = ctx.param_grad_slot(j);
  if (slot.defined()) return {slot, Tensor()};
  Tensor t = Tensor::zeros(shape, acc_dtype(dtype), device);
  return {t, t};
}

}  // namespace lmf::ops::detail
