// CPU reference: reductions (fp64 accumulation).
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

void sum_all(const Tensor& x, const Tensor& out) {
  const int64_t n = x.numel();
  const void* p = x.data_ptr();
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
  for (int64_t i = 0; i < n; i++) s += load_any(p, i, x.dtype());
  store_any(out.data_ptr(), 0, out.dtype(), s);
}

void sum_last_dim(const Tensor& x, const Tensor& out) {
  const int64_t C = x.size(-1), N = x.numel() / C;
  const void* p = x.data_ptr();
#pragma omp parallel for if (N * C > 65536)
  for (int64_t r = 0; r < N; r++) {
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += load_any(p, r * C + c, x.dtype());
    store_any(out.data_ptr(), r, out.dtype(), s);
  }
}

}  // namespace lmf::cpu
