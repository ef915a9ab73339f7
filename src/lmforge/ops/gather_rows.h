// Differentiable row gather: out[m] = x[idx[m]]. The MLM loss runs the vocabulary projection on
// the masked rows only (HF BertForMaskedLM computes logits for every token; ModernBERT's
// sparse_prediction gathers the labelled ones first, as here), so M << N rows reach the
// decoder.
//
// Contract
//  - x: [N, H] floating; idx: [M] i32/i64 with values in [0, N) (repeats allowed), same device.
//  - Returns [M, H] in x's dtype (rows copied).
//  - Backward: dx [N, H] in x's dtype = scatter-add of the output gradient rows (zeros for rows
//    never gathered), accumulated in f32 (f64 for f64) by the embedding backward kernel.
//  - Errors: lmf::Error "[gather_rows] ..." for bad ranks, dtypes, devices, or an index out of
//    range (cpu: checked on the host; cuda: flagged by the gather kernel).
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor gather_rows(const Tensor& x, const Tensor& idx);

}  // namespace lmf::ops
