// Sum of squares over a flat fp32 buffer (the global gradient norm is its square root).
#pragma once

#include <cstdint>

namespace lmf::cpu {

// sum_i x[i]^2 over n contiguous host floats, accumulated in fp64. Deterministic: fixed-size
// chunks are summed in parallel (OpenMP), then the chunk sums in order, so the result does not
// depend on the thread count.
double sum_of_squares(const float* x, int64_t n);

}  // namespace lmf::cpu
