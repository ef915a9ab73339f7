// CPU reference: activations and their derivatives (formulas in backend/activation_math.h).
#include "lmforge/backend/activation_math.h"
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

void activation_forward(Activation act, const Tensor& x, const Tensor& y) {
  dispatch_floating(x.dtype(), "activation_forward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      const T* px = x.data<T>();
      T* py = y.data<T>();
      const int64_t n = x.numel();
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; i++) py[i] = store<T>(actmath::forward<A>(load(px[i])));
    });
  });
}

void activation_backward(Activation act, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  dispatch_floating(x.dtype(), "activation_backward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      const T* px = x.data<T>();
      const T* pdy = dy.data<T>();
      T* pdx = dx.data<T>();
      const int64_t n = x.numel();
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; i++) pdx[i] = store<T>(load(pdy[i]) * actmath::derivative<A>(load(px[i])));
    });
  });
}

void gated_activation_forward(Activation act, const Tensor& x, const Tensor& y) {
  const int64_t I = y.size(-1), N = I == 0 ? 0 : y.numel() / I;
  dispatch_floating(x.dtype(), "gated_activation_forward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      const T* px = x.data<T>();
      T* py = y.data<T>();
#pragma omp parallel for if (N * I > 65536)
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < I; i++) {
          const T* row = px + n * 2 * I;
          py[n * I + i] = store<T>(actmath::forward<A>(load(row[i])) * load(row[I + i]));
        }
    });
  });
}

void gated_activation_backward(Activation act, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  const int64_t I = dy.size(-1), N = I == 0 ? 0 : dy.numel() / I;
  dispatch_floating(x.dtype(), "gated_activation_backward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      const T* px = x.data<T>();
      const T* pdy = dy.data<T>();
      T* pdx = dx.data<T>();
#pragma omp parallel for if (N * I > 65536)
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < I; i++) {
          const auto a = load(px[n * 2 * I + i]), b = load(px[n * 2 * I + I + i]), g = load(pdy[n * I + i]);
          pdx[n * 2 * I + i] = store<T>(g * actmath::derivative<A>(a) * b);
          pdx[n * 2 * I + I + i] = store<T>(g * actmath::forward<A>(a));
        }
    });
  });
}

}  // namespace lmf::cpu
