// Kernels of one Mamba-1 decode step (one token per row), for the device-resident decoder
// (models/mamba_step_decoder.h). Declared for both backends (lmf::cpu in
// backend/cpu/mamba_decode.cc, lmf::cuda in backend/cuda/mamba_decode.cu); LMF_DISPATCH
// reaches them by name. Formulas: HF MambaMixer.slow_forward with a cache (PARITY.md §1).
//
// Shapes (B rows, I channels, K conv taps, N state size, R dt rank). Activations (uz, c, dt,
// xdbl, y) share one floating dtype; states and A_log / D / dt_bias are f32; conv w may be the
// activation dtype or f32. All contiguous.
#pragma once

#include <cstdint>

#include "lmforge/core/tensor.h"

namespace lmf {

#define LMF_MAMBA_DECODE_KERNELS                                                                          \
  /* Conv step: state [B, I, K] rolled left by one with u = uz[:, :I] written at K-1, then              \
     c[b, i] = SiLU(sum_j state[b, i, j] w[i, j] + bias[i]). uz [B, 2I]; w [I, K]; bias [I] or undefined. */ \
  void mamba_conv_step(const Tensor& uz, const Tensor& conv_state, const Tensor& w, const Tensor& bias,     \
                       const Tensor& c);                                                                   \
  /* SSM step: dt = softplus(dt_lin + dt_bias), h = exp(dt A) h + dt B c with A = -exp(A_log),           \
     y = (h . C + D c) * SiLU(z); B = xdbl[:, R:R+N], C = xdbl[:, R+N:R+2N], z = uz[:, I:2I].           \
     c, dt_lin, y [B, I]; xdbl [B, R + 2N]; ssm_state [B, I, N] updated in place. */                    \
  void mamba_ssm_step(const Tensor& c, const Tensor& dt_lin, const Tensor& dt_bias, const Tensor& A_log,   \
                      const Tensor& xdbl, int64_t R, const Tensor& D, const Tensor& uz, const Tensor& ssm_state, \
                      const Tensor& y);

namespace cpu {
LMF_MAMBA_DECODE_KERNELS
}  // namespace cpu

namespace cuda {
LMF_MAMBA_DECODE_KERNELS
}  // namespace cuda

#undef LMF_MAMBA_DECODE_KERNELS

}  // namespace lmf
