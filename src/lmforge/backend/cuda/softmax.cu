// CUDA softmax over the last dim (contracts in backend/kernel_list.inc). One warp per row for
// rows up to 128 packs, else one block per row (kernel_util.cuh row_launch). The forward keeps
// an online (max, sum) per thread, so x is read once for the statistics and once to write y.
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

template <class T, int VEC>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t N, int64_t C) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;  // warp mode only
  const T* xr = x + row * C;
  // Online softmax statistics (Milakov & Gimelshein 2018): s = sum exp(v - m) for the running max m.
  float m = -INFINITY, s = 0.f;
  for (int64_t p = threadIdx.x; p < C / VEC; p += blockDim.x) {
    float v[VEC];
    load_pack<VEC>(xr, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      if (v[k] > m) {
        s = s * expf(m - v[k]) + 1.f;
        m = v[k];
      } else if (v[k] != -INFINITY) {  // exp(-inf - -inf) would be NaN; its term is 0
        s += expf(v[k] - m);
      }
    }
  }
  const float M = row_max(m);
  s = m == -INFINITY ? 0.f : s * expf(m - M);
  const float inv = 1.f / row_sum(s);
  T* yr = y + row * C;
  for (int64_t p = threadIdx.x; p < C / VEC; p += blockDim.x) {
    float v[VEC];
    load_pack<VEC>(xr, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = expf(v[k] - M) * inv;
    store_pack<VEC>(yr, p * VEC, v);
  }
}

template <class T, int VEC>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, int64_t N, int64_t C) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;
  const T *yr = y + row * C, *dyr = dy + row * C;
  float dot = 0.f;
  for (int64_t p = threadIdx.x; p < C / VEC; p += blockDim.x) {
    float a[VEC], b[VEC];
    load_pack<VEC>(yr, p * VEC, a);
    load_pack<VEC>(dyr, p * VEC, b);
#pragma unroll
    for (int k = 0; k < VEC; k++) dot += a[k] * b[k];
  }
  dot = row_sum(dot);
  for (int64_t p = threadIdx.x; p < C / VEC; p += blockDim.x) {
    float a[VEC], b[VEC];
    load_pack<VEC>(yr, p * VEC, a);
    load_pack<VEC>(dyr, p * VEC, b);
#pragma unroll
    for (int k = 0; k < VEC; k++) a[k] = a[k] * (b[k] - dot);
    store_pack<VEC>(dx + row * C, p * VEC, a);
  }
}

}  // namespace

void softmax_forward(const Tensor& x, const Tensor& y) {
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  if (N == 0) return;
  dispatch_floating(x.dtype(), "softmax_forward", [&]<class T>() {
    constexpr int P = pack_size<T>();
    const T* px = ptr<T>(x);
    T* py = ptr<T>(y);
    with_pack<P>(rows_packable<P>(C, px, py), [&]<int VEC>() {
      const RowLaunch L = row_launch(N, C / VEC);
      softmax_forward_kernel<T, VEC><<<L.grid, L.block, 0, current_stream()>>>(px, py, N, C);
      LMF_CUDA_CHECK_LAUNCH();
    });
  });
}

void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) {
  const int64_t C = y.size(-1), N = C == 0 ? 0 : y.numel() / C;
  if (N == 0) return;
  dispatch_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    constexpr int P = pack_size<T>();
    const T *py = ptr<T>(y), *pdy = ptr<T>(dy);
    T* pdx = ptr<T>(dx);
    with_pack<P>(rows_packable<P>(C, py, pdy, static_cast<const T*>(pdx)), [&]<int VEC>() {
      const RowLaunch L = row_launch(N, C / VEC);
      softmax_backward_kernel<T, VEC><<<L.grid, L.block, 0, current_stream()>>>(py, pdy, pdx, N, C);
      LMF_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace lmf::cuda
