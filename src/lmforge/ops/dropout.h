// Differentiable dropout (nn.Dropout semantics: zero with probability p, scale kept values by
// 1 / (1 - p)) with a counter-based mask (core/philox.h).
//
// Contract: x floating (f32/bf16/f16; f64 on cpu), any shape and strides, any device.
//  - p must be in [0, 1); otherwise lmf::Error "[dropout] ...".
//  - When !training or p == 0, returns x itself (no copy, no tape node, no offset drawn).
//  - Otherwise draws one offset from gen (gen.next_offset()); element i (row-major) is kept iff
//    philox_uniform(gen.seed, offset, i) >= p, so the CPU and CUDA masks are bit-identical and
//    the backward recomputes the mask from (seed, offset) instead of storing it.
#pragma once

#include "lmforge/core/rng.h"
#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor dropout(const Tensor& x, float p, Generator& gen, bool training);

}  // namespace lmf::ops
