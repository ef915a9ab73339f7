// CPU reference: rotary position embeddings (contract in backend/kernel_list.inc "rope").
#include <cmath>
#include <vector>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/backend/rope_math.h"

namespace lmf::cpu {

namespace {
template <class A>
A inv_freq(double theta, int64_t i, int64_t R) {
  if constexpr (std::is_same_v<A, double>) {
    return rope_inv_freq_f64(theta, i, R);
  } else {
    return rope_inv_freq_f32(theta, i, R);
  }
}
}  // namespace

void rope(const Tensor& x, const Tensor& positions, const Tensor& out, double theta, int64_t R, bool inverse) {
  const int64_t N = x.size(0), G = x.size(1), D = x.size(2), half = R / 2;
  const int64_t xs0 = x.strides()[0], xs1 = x.strides()[1], os0 = out.strides()[0], os1 = out.strides()[1];
  const int64_t* pos = positions.data<int64_t>();
  dispatch_floating(x.dtype(), "rope", [&]<class T>() {
    using A = acc_t<T>;
    std::vector<A> inv(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; i++) inv[size_t(i)] = inv_freq<A>(theta, i, R);
    const T* px = x.data<T>();
    T* po = out.data<T>();
#pragma omp parallel if (N * G * D > 65536)
    {
      std::vector<A> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
#pragma omp for
      for (int64_t n = 0; n < N; n++) {
        // cos/sin of the angle in the accumulation type, then rounded to T like HF's .to(dtype).
        for (int64_t i = 0; i < half; i++) {
          const A angle = A(pos[n]) * inv[size_t(i)];
          c[size_t(i)] = load(store<T>(std::cos(angle)));
          const A sn = load(store<T>(std::sin(angle)));
          s[size_t(i)] = inverse ? -sn : sn;
        }
        for (int64_t g = 0; g < G; g++) {
          const T* xr = px + n * xs0 + g * xs1;
          T* orow = po + n * os0 + g * os1;
          for (int64_t i = 0; i < half; i++) {
            const A a = load(xr[i]), b = load(xr[i + half]);
            orow[i] = store<T>(a * c[size_t(i)] - b * s[size_t(i)]);
            orow[i + half] = store<T>(b * c[size_t(i)] + a * s[size_t(i)]);
          }
          for (int64_t d = R; d < D; d++) orow[d] = xr[d];
        }
      }
    }
  });
}

}  // namespace lmf::cpu
