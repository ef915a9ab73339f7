// CUDA row masking (contract in backend/mask_kernels.h; reference backend/cpu/mask.cc):
// a grid-stride map, fp32 arithmetic, one mask read per element (cached: rows are contiguous).
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/mask_kernels.h"

namespace lmf::cuda {

namespace {
template <class T>
__global__ void mul_rows_kernel(const T* x, const float* mask, T* out, int64_t n, int64_t C) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = from_f<T>(to_f(x[i]) * mask[i / C]);
}
}  // namespace

void mul_rows(const Tensor& x, const Tensor& mask, const Tensor& out) {
  const int64_t n = x.numel(), R = mask.numel();
  if (n == 0 || R == 0) return;
  const int64_t C = n / R;
  dispatch_floating(x.dtype(), "mul_rows", [&]<class T>() {
    mul_rows_kernel<T><<<blocks_for(n), 256, 0, current_stream()>>>(ptr<T>(x), ptr<float>(mask), ptr<T>(out), n, C);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lmf::cuda
