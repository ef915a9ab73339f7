// Differentiable Mamba-1 primitives: causal depthwise conv1d and the selective scan.
// Kernel semantics (exact formulas, document boundaries) are in backend/kernel_list.inc.
//
// Contract
//  - Channels-last activations: x, u, delta, z [B, L, D]; Bm, Cm [B, L, N]; seq_idx [B, L] i32
//    or undefined. Parameters: conv w [D, K] (HF stores [D, 1, K]: pass a view), conv bias [D];
//    A_log [D, N], Dskip [D], delta_bias [D] are f32 (kept fp32 under bf16).
//  - Inputs of any strides are made contiguous. Outputs have the activation dtype.
//  - Gradients flow to every input that requires grad; parameter grads accumulate into slots.
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& seq_idx, bool silu);

struct SelectiveScanArgs {
  Tensor u, delta, A_log, Bm, Cm;
  Tensor Dskip, z, delta_bias, seq_idx;  // optional
  bool delta_softplus = true;
};
Tensor selective_scan(const SelectiveScanArgs& args);
// Forward only, also returning the final state [B, D, N] f32 (generation prefill).
Tensor selective_scan_with_state(const SelectiveScanArgs& args, Tensor* final_state);

}  // namespace lmf::ops
