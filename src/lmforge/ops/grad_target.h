// Internal helper for ops backward closures (not part of the op API): where a weight-like
// input's gradient is written.
#pragma once

#include "lmforge/autograd/tape.h"
#include "lmforge/core/tensor.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops::detail {

// The gradient destination of input j: a parameter's fp32 slot, to be ADDED into (beta = 1,
// `result` undefined so the tape does nothing more), or a fresh tensor of `shape`/`dtype` that
// the kernel overwrites (beta = 0) and that is returned to the tape as `result`. Kernels that
// can only accumulate (sum_rows_acc, embedding_backward) ask for `zeroed` fresh tensors.
struct GradTarget {
  Tensor target;
  float beta = 0.f;
  Tensor result;
};

inline GradTarget grad_target(const autograd::GradContext& ctx, int j, const Shape& shape, DType dtype,
                              Device device, bool zeroed = false) {
  Tensor slot = ctx.param_grad_slot(j);
  if (slot.defined()) return {slot, 1.f, Tensor()};
  Tensor t = zeroed ? Tensor::zeros(shape, dtype, device) : Tensor::empty(shape, dtype, device);
  return {t, 0.f, t};
}

// Accumulation dtype of a weight gradient: f64 for f64 inputs (CPU gradcheck), else f32.
inline DType grad_acc_dtype(DType t) { return acc_dtype(t); }

}  // namespace lmf::ops::detail
