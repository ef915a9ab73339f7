// Differentiable row masking: every channel vector of a position scaled by that position's
// mask value. HF MambaMixer.slow_forward multiplies the conv input and the conv output by
// attention_mask.unsqueeze(1) (PARITY.md §1, mixer steps 2-3); this is that product,
// channels-last.
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

// out[b, l, d] = x[b, l, d] * mask[b, l].
//  - x: floating [..., D] (any strides; made contiguous), mask: f32 with x's leading shape
//    (x [B, L, D] -> mask [B, L]), on x's device. Values are used as given (0/1 for padding).
//  - Returns a new contiguous tensor of x's dtype and shape.
//  - Gradient: dx = dy * mask. The mask is a constant: it never receives a gradient.
//  - Throws lmf::Error "[mul_rows] ..." for an undefined/non-floating x, a mask that is not f32,
//    a mask shape that is not x's shape without its last dim, or tensors on different devices.
Tensor mul_rows(const Tensor& x, const Tensor& mask);

}  // namespace lmf::ops
