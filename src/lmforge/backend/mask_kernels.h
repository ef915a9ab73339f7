// Kernels of ops/mask.h, declared for both backends (lmf::cpu in backend/cpu/mask.cc, lmf::cuda
// in backend/cuda/mask.cu). Kept out of kernel_list.inc so the op family stays self-contained;
// LMF_DISPATCH (backend/kernels.h) reaches them by name like any other kernel.
#pragma once

#include "lmforge/core/tensor.h"

namespace lmf {

namespace cpu {
// out[r, c] = x[r, c] * mask[r]: x, out contiguous [R, C] (leading dims flattened) of one
// floating dtype, mask contiguous f32 [R]. out may alias x.
void mul_rows(const Tensor& x, const Tensor& mask, const Tensor& out);
}  // namespace cpu

namespace cuda {
void mul_rows(const Tensor& x, const Tensor& mask, const Tensor& out);
}  // namespace cuda

}  // namespace lmf
