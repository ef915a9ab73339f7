// CPU reference: row masking (backend/mask_kernels.h).
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/mask_kernels.h"

namespace lmf::cpu {

void mul_rows(const Tensor& x, const Tensor& mask, const Tensor& out) {
  const int64_t R = mask.numel(), C = R ? x.numel() / R : 0;
  dispatch_floating(x.dtype(), "mul_rows", [&]<class T>() {
    const T* px = x.data<T>();
    const float* pm = mask.data<float>();
    T* po = out.data<T>();
#pragma omp parallel for if (R * C > 65536)
    for (int64_t r = 0; r < R; r++) {
      const acc_t<T> m = acc_t<T>(pm[r]);
      for (int64_t c = 0; c < C; c++) po[r * C + c] = store<T>(load(px[r * C + c]) * m);
    }
  });
}

}  // namespace lmf::cpu
