// CUDA Mamba decode step (contract in backend/mamba_decode_kernels.h; reference
// backend/cpu/mamba_decode.cc): one thread per (row, channel), fp32 arithmetic, fp32 states.
// A decode step is a few hundred thousand channel updates: latency, not bandwidth, matters, so
// the kernels stay simple and the projections around them are cuBLAS GEMVs.
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/mamba_decode_kernels.h"

namespace lmf::cuda {

namespace {

__device__ __forceinline__ float silu_f(float v) { return v / (1.f + __expf(-v)); }
__device__ __forceinline__ float softplus_f(float v) { return v > 20.f ? v : log1pf(__expf(v)); }

template <class T, class W>
__global__ void conv_step_kernel(const T* uz, float* state, const W* w, const W* bias, T* c, int64_t B, int64_t I,
                                 int K) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * I) return;
  const int64_t b = t / I, i = t % I;
  float* st = state + t * K;
  for (int j = 0; j + 1 < K; j++) st[j] = st[j + 1];
  st[K - 1] = to_f(uz[b * 2 * I + i]);
  float acc = bias ? to_f(bias[i]) : 0.f;
  for (int j = 0; j < K; j++) acc += st[j] * to_f(w[i * K + j]);
  c[t] = from_f<T>(silu_f(acc));
}

template <class T>
__global__ void ssm_step_kernel(const T* c, const T* dt_lin, const float* dt_bias, const float* A_log, const T* xdbl,
                                int64_t R, const float* D, const T* uz, float* state, T* y, int64_t B, int64_t I,
                                int N) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * I) return;
  const int64_t b = t / I, i = t % I, XD = R + 2 * N;
  const float dt = softplus_f(to_f(dt_lin[t]) + dt_bias[i]);
  const float u = to_f(c[t]);
  const T* Bm = xdbl + b * XD + R;
  const T* Cm = Bm + N;
  float* h = state + t * N;
  float acc = 0.f;
  for (int n = 0; n < N; n++) {
    const float a = -__expf(A_log[i * N + n]);
    const float hn = __expf(dt * a) * h[n] + dt * to_f(Bm[n]) * u;
    h[n] = hn;
    acc += hn * to_f(Cm[n]);
  }
  acc += u * D[i];
  y[t] = from_f<T>(acc * silu_f(to_f(uz[b * 2 * I + I + i])));
}

}  // namespace

void mamba_conv_step(const Tensor& uz, const Tensor& conv_state, const Tensor& w, const Tensor& bias,
                     const Tensor& c) {
  const int64_t B = conv_state.size(0), I = conv_state.size(1);
  const int K = int(conv_state.size(2));
  if (B * I == 0) return;
  dispatch_floating(uz.dtype(), "mamba_conv_step", [&]<class T>() {
    auto launch = [&]<class W>() {
      conv_step_kernel<T, W><<<blocks_for(B * I), 256, 0, current_stream()>>>(
          ptr<T>(uz), ptr<float>(conv_state), ptr<W>(w), bias.defined() ? ptr<W>(bias) : nullptr, ptr<T>(c), B, I, K);
      LMF_CUDA_CHECK_LAUNCH();
    };
    if (w.dtype() == DType::f32) {
      launch.template operator()<float>();
    } else {
      if (w.dtype() != uz.dtype()) fail("mamba_conv_step: conv weight must be f32 or the activation dtype");
      launch.template operator()<T>();
    }
  });
}

void mamba_ssm_step(const Tensor& c, const Tensor& dt_lin, const Tensor& dt_bias, const Tensor& A_log,
                    const Tensor& xdbl, int64_t R, const Tensor& D, const Tensor& uz, const Tensor& ssm_state,
                    const Tensor& y) {
  const int64_t B = ssm_state.size(0), I = ssm_state.size(1);
  const int N = int(ssm_state.size(2));
  if (B * I == 0) return;
  dispatch_floating(c.dtype(), "mamba_ssm_step", [&]<class T>() {
    ssm_step_kernel<T><<<blocks_for(B * I), 256, 0, current_stream()>>>(
        ptr<T>(c), ptr<T>(dt_lin), ptr<float>(dt_bias), ptr<float>(A_log), ptr<T>(xdbl), R, ptr<float>(D), ptr<T>(uz),
        ptr<float>(ssm_state), ptr<T>(y), B, I, N);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lmf::cuda
