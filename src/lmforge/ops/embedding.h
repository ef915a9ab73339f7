// Differentiable embedding lookup (PyTorch nn.Embedding without padding_idx / max_norm).
//
// Contract
//  - ids: any shape, i32 or i64, values in [0, V); table: [V, H] floating, same device.
//  - Returns [ids.shape..., H] of the table's dtype (rows copied, no arithmetic).
//  - Backward: table gradient = scatter-add of the output gradient rows (repeated ids summed,
//    deterministically on both backends), added straight into the table's fp32 slot when it is
//    a parameter, else returned as a new f32 (f64 for f64) [V, H] tensor. ids get no gradient.
//  - Errors: lmf::Error "[embedding] id 70000 out of range for vocabulary 50280" for a bad id
//    (cpu: checked on the host before the gather; cuda: flagged by the gather kernel, which costs
//    one 8-byte device-to-host copy per call, i.e. a stream synchronisation); "[embedding] ..."
//    for bad ranks, dtypes or devices.
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf::ops {

// ids_checked: the caller has verified every id is in [0, V) (e.g. on the host before the
// upload), so the CUDA gather skips its flag and the stream synchronisation it costs.
Tensor embedding(const Tensor& ids, const Tensor& table, bool ids_checked = false);

}  // namespace lmf::ops
