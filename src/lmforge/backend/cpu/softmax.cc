// CPU reference: softmax over the last dim. Max-subtracted (stable), fp64 row sums.
#include <cmath>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

void softmax_forward(const Tensor& x, const Tensor& y) {
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  dispatch_floating(x.dtype(), "softmax_forward", [&]<class T>() {
    using A = acc_t<T>;
    const T* px = x.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) {
      const T* xr = px + r * C;
      T* yr = py + r * C;
      A m = -INFINITY;
      for (int64_t c = 0; c < C; c++) m = std::max(m, load(xr[c]));
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += double(std::exp(load(xr[c]) - m));
      const A inv = A(1.0 / s);
      for (int64_t c = 0; c < C; c++) yr[c] = store<T>(std::exp(load(xr[c]) - m) * inv);
    }
  });
}

void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) {
  const int64_t C = y.size(-1), N = C == 0 ? 0 : y.numel() / C;
  dispatch_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* py = y.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
#pragma omp parallel for if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) {
      const T *yr = py + r * C, *dyr = pdy + r * C;
      double dot = 0;
      for (int64_t c = 0; c < C; c++) dot += double(load(yr[c])) * double(load(dyr[c]));
      for (int64_t c = 0; c < C; c++) pdx[r * C + c] = store<T>(load(yr[c]) * (load(dyr[c]) - A(dot)));
    }
  });
}

}  // namespace lmf::cpu
