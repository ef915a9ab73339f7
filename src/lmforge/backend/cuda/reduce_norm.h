// Sum of squares over a flat fp32 device buffer (the global gradient norm is its square root).
// No CUDA header here, so .cc files can include it. Built only with LMF_WITH_CUDA.
#pragma once

#include <cstdint>

namespace lmf::cuda {

// sum_i x[i]^2 over n contiguous floats on CUDA device `device`, accumulated in fp64 by a
// two-pass block reduction (fixed grid for a given n: deterministic). Synchronizes with the
// legacy default stream to return the value. Throws lmf::Error when a CUDA call fails.
double sum_of_squares(int device, const float* x, int64_t n);

}  // namespace lmf::cuda
