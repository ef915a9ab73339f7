// CPU reference: element-wise kernels (see backend/kernel_list.inc for contracts).
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

void add(const Tensor& a, const Tensor& b, const Tensor& out, float alpha, float beta) {
  dispatch_floating(out.dtype(), "add", [&]<class T>() {
    dispatch_floating(b.dtype(), "add", [&]<class U>() {
      const T* x = a.data<T>();
      const U* y = b.data<U>();
      T* o = out.data<T>();
      const int64_t n = out.numel();
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; i++) o[i] = store<T>(alpha * load(x[i]) + beta * load(y[i]));
    });
  });
}

void mul(const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_floating(out.dtype(), "mul", [&]<class T>() {
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    T* o = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) o[i] = store<T>(load(x[i]) * load(y[i]));
  });
}

void scale(const Tensor& a, float s, const Tensor& out) {
  dispatch_floating(out.dtype(), "scale", [&]<class T>() {
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) o[i] = store<T>(s * load(x[i]));
  });
}

void accumulate(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (dst.dtype() == src.dtype()) {
    dispatch_floating(dst.dtype(), "accumulate", [&]<class T>() {
      T* d = dst.data<T>();
      const T* s = src.data<T>();
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; i++) d[i] = store<T>(load(d[i]) + load(s[i]));
    });
    return;
  }
  void* d = dst.data_ptr();
  const void* s = src.data_ptr();
  for (int64_t i = 0; i < n; i++)
    store_any(d, i, dst.dtype(), load_any(d, i, dst.dtype()) + load_any(s, i, src.dtype()));
}

void cast(const Tensor& src, const Tensor& dst) {
  const int64_t n = dst.numel();
  const void* s = src.data_ptr();
  void* d = dst.data_ptr();
  if (src.dtype() == DType::f32 && dst.dtype() == DType::bf16) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) static_cast<bf16*>(d)[i] = float_to_bf16(static_cast<const float*>(s)[i]);
    return;
  }
  for (int64_t i = 0; i < n; i++) store_any(d, i, dst.dtype(), load_any(s, i, src.dtype()));
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  void* d = dst.data_ptr();
  for (int64_t i = 0; i < n; i++) store_any(d, i, dst.dtype(), value);
}

void add_row_vector(const Tensor& x, const Tensor& v, const Tensor& out) {
  const int64_t C = x.size(-1), N = x.numel() / C;
  dispatch_floating(x.dtype(), "add_row_vector", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const void* pv = v.data_ptr();
#pragma omp parallel for if (N * C > 65536)
    for (int64_t r = 0; r < N; r++)
      for (int64_t c = 0; c < C; c++)
        po[r * C + c] = store<T>(load(px[r * C + c]) + acc_t<T>(load_any(pv, c, v.dtype())));
  });
}

void sum_rows_acc(const Tensor& dy, const Tensor& dv_acc) {
  const int64_t C = dy.size(-1), N = dy.numel() / C;
  const void* p = dy.data_ptr();
  void* d = dv_acc.data_ptr();
#pragma omp parallel for if (N * C > 65536)
  for (int64_t c = 0; c < C; c++) {
    double s = 0;
    for (int64_t r = 0; r < N; r++) s += load_any(p, r * C + c, dy.dtype());
    store_any(d, c, dv_acc.dtype(), load_any(d, c, dv_acc.dtype()) + s);
  }
}

}  // namespace lmf::cpu
