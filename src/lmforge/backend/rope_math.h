// Rotary-embedding frequencies shared by the CPU and CUDA rope kernels (kernel_list.inc "rope"),
// so both backends round exactly like HF's default RoPE init
// (modeling_rope_utils._compute_default_rope_parameters, PARITY.md §4):
//   inv_freq = 1.0 / (theta ** (arange(0, R, 2).float() / R))   -- every step in fp32.
#pragma once

#include <cmath>
#include <cstdint>

#include "lmforge/core/dtype.h"  // LMF_HD

namespace lmf {

// fp32 inv_freq_i: the exponent 2i/R is an fp32 division, the power is rounded to fp32 (computed
// in double, then rounded once, as a correctly rounded powf would), the reciprocal is fp32.
LMF_HD inline float rope_inv_freq_f32(double theta, int64_t i, int64_t rotary_dim) {
  const float e = float(2 * i) / float(rotary_dim);
  const float p = float(pow(double(float(theta)), double(e)));
  return 1.0f / p;
}

// fp64 version for the f64 reference path (gradchecks).
LMF_HD inline double rope_inv_freq_f64(double theta, int64_t i, int64_t rotary_dim) {
  return 1.0 / pow(theta, double(2 * i) / double(rotary_dim));
}

}  // namespace lmf
