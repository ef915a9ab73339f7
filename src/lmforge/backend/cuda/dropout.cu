// CUDA dropout (contracts in backend/kernel_list.inc). Each thread handles one group of 4
// consecutive elements: one Philox4x32-10 call gives their 4 words, exactly as the CPU
// reference consumes the stream, so masks and f32 values are bit-identical across backends.
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/philox.h"

namespace lmf::cuda {

namespace {

template <class T, bool PACKED>
__global__ void dropout_kernel(const T* src, T* dst, int64_t n, float p, float scale, uint64_t seed,
                               uint64_t offset) {
  const int64_t groups = (n + 3) / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const Philox4 r = philox4x32_10(seed, uint64_t(g), offset);
    const int64_t i0 = 4 * g;
    if (PACKED && i0 + 4 <= n) {
      float v[4];
      load_pack<4>(src, i0, v);
#pragma unroll
      for (int k = 0; k < 4; k++) v[k] = philox_uniform01(r.v[k]) >= p ? v[k] * scale : 0.f;
      store_pack<4>(dst, i0, v);
    } else {
      for (int k = 0; k < 4 && i0 + k < n; k++)
        dst[i0 + k] = from_f<T>(philox_uniform01(r.v[k]) >= p ? to_f(src[i0 + k]) * scale : 0.f);
    }
  }
}

void apply_mask(const Tensor& src, const Tensor& dst, float p, uint64_t seed, uint64_t offset, const char* op) {
  const int64_t n = src.numel();
  if (n == 0) return;
  const float scale = 1.0f / (1.0f - p);  // same fp32 value as the CPU reference
  dispatch_floating(src.dtype(), op, [&]<class T>() {
    const T* s = ptr<T>(src);
    T* d = ptr<T>(dst);
    const int blocks = blocks_for((n + 3) / 4);
    if (pack_aligned<T, 4>(s) && pack_aligned<T, 4>(d)) {
      dropout_kernel<T, true><<<blocks, 256, 0, current_stream()>>>(s, d, n, p, scale, seed, offset);
    } else {
      dropout_kernel<T, false><<<blocks, 256, 0, current_stream()>>>(s, d, n, p, scale, seed, offset);
    }
    LMF_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void dropout_forward(const Tensor& x, const Tensor& y, float p, uint64_t seed, uint64_t offset) {
  apply_mask(x, y, p, seed, offset, "dropout_forward");
}

void dropout_backward(const Tensor& dy, const Tensor& dx, float p, uint64_t seed, uint64_t offset) {
  apply_mask(dy, dx, p, seed, offset, "dropout_backward");
}

}  // namespace lmf::cuda
