// CUDA activations (contracts in backend/kernel_list.inc). The math is shared with the CPU
// reference through backend/activation_math.h; here it runs in fp32 over 16-byte packs.
#include "lmforge/backend/activation_math.h"
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {
template <Activation A>
struct ActForward {
  __device__ float operator()(float x) const { return actmath::forward<A>(x); }
};
template <Activation A>
struct ActBackward {  // (x, dy) -> dy * act'(x)
  __device__ float operator()(float x, float dy) const { return dy * actmath::derivative<A>(x); }
};
// Gated activation, VEC elements of one row's half per thread: y[n, i] = act(x[n, i]) x[n, I + i].
template <class T, int VEC, Activation A>
__global__ void gated_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t N, int64_t I) {
  const int64_t packs_per_row = I / VEC, packs = N * packs_per_row;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = p / packs_per_row, i = (p - n * packs_per_row) * VEC;
    float a[VEC], b[VEC];
    load_pack<VEC>(x + n * 2 * I, i, a);
    load_pack<VEC>(x + n * 2 * I + I, i, b);
#pragma unroll
    for (int k = 0; k < VEC; k++) a[k] = actmath::forward<A>(a[k]) * b[k];
    store_pack<VEC>(y + n * I, i, a);
  }
}

template <class T, int VEC, Activation A>
__global__ void gated_backward_kernel(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx, int64_t N,
                                      int64_t I) {
  const int64_t packs_per_row = I / VEC, packs = N * packs_per_row;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = p / packs_per_row, i = (p - n * packs_per_row) * VEC;
    float a[VEC], b[VEC], g[VEC];
    load_pack<VEC>(x + n * 2 * I, i, a);
    load_pack<VEC>(x + n * 2 * I + I, i, b);
    load_pack<VEC>(dy + n * I, i, g);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      const float da = g[k] * actmath::derivative<A>(a[k]) * b[k];
      b[k] = g[k] * actmath::forward<A>(a[k]);
      a[k] = da;
    }
    store_pack<VEC>(dx + n * 2 * I, i, a);
    store_pack<VEC>(dx + n * 2 * I + I, i, b);
  }
}

// Calls f<VEC>() with 16-byte packs when I and every pointer allow them.
template <class T, class F>
void with_gated_pack(int64_t I, const T* a, const T* b, const T* c, F&& f) {
  constexpr int P = pack_size<T>();
  with_pack<P>(rows_packable<P>(I, a, b, c), std::forward<F>(f));
}

}  // namespace

void gated_activation_forward(Activation act, const Tensor& x, const Tensor& y) {
  const int64_t I = y.size(-1), N = I == 0 ? 0 : y.numel() / I;
  if (N == 0) return;
  dispatch_floating(x.dtype(), "gated_activation_forward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      const T* px = ptr<T>(x);
      T* py = ptr<T>(y);
      with_gated_pack(I, px, static_cast<const T*>(py), px, [&]<int VEC>() {
        gated_forward_kernel<T, VEC, A><<<blocks_for(N * I / VEC), 256, 0, current_stream()>>>(px, py, N, I);
        LMF_CUDA_CHECK_LAUNCH();
      });
    });
  });
}

void gated_activation_backward(Activation act, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  const int64_t I = dy.size(-1), N = I == 0 ? 0 : dy.numel() / I;
  if (N == 0) return;
  dispatch_floating(x.dtype(), "gated_activation_backward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      const T *px = ptr<T>(x), *pdy = ptr<T>(dy);
      T* pdx = ptr<T>(dx);
      with_gated_pack(I, px, pdy, static_cast<const T*>(pdx), [&]<int VEC>() {
        gated_backward_kernel<T, VEC, A><<<blocks_for(N * I / VEC), 256, 0, current_stream()>>>(px, pdy, pdx, N, I);
        LMF_CUDA_CHECK_LAUNCH();
      });
    });
  });
}

void activation_forward(Activation act, const Tensor& x, const Tensor& y) {
  dispatch_floating(x.dtype(), "activation_forward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      launch_unary_map(ptr<T>(x), ptr<T>(y), x.numel(), ActForward<A>{});
    });
  });
}

void activation_backward(Activation act, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  dispatch_floating(x.dtype(), "activation_backward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      launch_binary_map(ptr<T>(x), ptr<T>(dy), ptr<T>(dx), x.numel(), ActBackward<A>{});
    });
  });
}

}  // namespace lmf::cuda
