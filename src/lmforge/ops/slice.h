// Differentiable slicing and concatenation along the last dimension.
//
// Contract: x [..., C]; slice_last returns a new contiguous [..., end - start] tensor (a copy,
// so later kernels get contiguous inputs); concat_last joins tensors of equal leading shape
// and dtype. Backward scatters into / splits the gradient. Throws "[slice_last] ..." on bad
// ranges.
#pragma once

#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::ops {

Tensor slice_last(const Tensor& x, int64_t start, int64_t end);
// Splits [..., sum(sizes)] into pieces of the given widths (one copy each).
std::vector<Tensor> split_last(const Tensor& x, const std::vector<int64_t>& sizes);
Tensor concat_last(const std::vector<Tensor>& xs);

}  // namespace lmf::ops
