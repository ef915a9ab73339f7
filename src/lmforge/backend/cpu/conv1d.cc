// CPU reference: causal depthwise conv1d with document boundaries (kernel_list.inc).
#include <cmath>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

namespace {
double silu(double v) { return v / (1.0 + std::exp(-v)); }
double silu_grad(double v) {
  double s = 1.0 / (1.0 + std::exp(-v));
  return s * (1.0 + v * (1.0 - s));
}
}  // namespace

// Pre-activation at (b, t, d), fp64 accumulation.
static double conv_at(const void* x, DType xt, const void* w, DType wt, const void* bias, DType bt,
                      const int32_t* seq, int64_t b, int64_t t, int64_t d, int64_t L, int64_t D, int64_t K) {
  double acc = bias ? load_any(bias, d, bt) : 0.0;
  for (int64_t j = 0; j < K; j++) {
    int64_t s = t - K + 1 + j;
    if (s < 0) continue;
    if (seq && seq[b * L + s] != seq[b * L + t]) continue;
    acc += load_any(w, d * K + j, wt) * load_any(x, (b * L + s) * D + d, xt);
  }
  return acc;
}

void causal_conv1d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& seq_idx,
                           const Tensor& y, bool act) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), K = w.size(1);
  const int32_t* seq = seq_idx.defined() ? seq_idx.data<int32_t>() : nullptr;
  const void* bp = bias.defined() ? bias.data_ptr() : nullptr;
  const DType bt = bias.defined() ? bias.dtype() : DType::f32;
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < L; t++)
      for (int64_t d = 0; d < D; d++) {
        double v = conv_at(x.data_ptr(), x.dtype(), w.data_ptr(), w.dtype(), bp, bt, seq, b, t, d, L, D, K);
        store_any(y.data_ptr(), (b * L + t) * D + d, y.dtype(), act ? silu(v) : v);
      }
}

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& seq_idx,
                            const Tensor& dy, const Tensor& dx, const Tensor& dw_acc, const Tensor& dbias_acc,
                            bool act) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), K = w.size(1);
  const int32_t* seq = seq_idx.defined() ? seq_idx.data<int32_t>() : nullptr;
  const void* bp = bias.defined() ? bias.data_ptr() : nullptr;
  const DType bt = bias.defined() ? bias.dtype() : DType::f32;
  // g[b,t,d] = dy * act'(pre): the gradient at the conv output before the activation.
  std::vector<double> g(size_t(B * L * D));
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < L; t++)
      for (int64_t d = 0; d < D; d++) {
        int64_t i = (b * L + t) * D + d;
        double gy = load_any(dy.data_ptr(), i, dy.dtype());
        if (act) gy *= silu_grad(conv_at(x.data_ptr(), x.dtype(), w.data_ptr(), w.dtype(), bp, bt, seq, b, t, d, L, D, K));
        g[size_t(i)] = gy;
      }
  // dx[s] = sum over outputs t = s + K-1-j that read s with weight j (same document).
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < L; s++)
      for (int64_t d = 0; d < D; d++) {
        double acc = 0;
        for (int64_t j = 0; j < K; j++) {
          int64_t t = s + K - 1 - j;
          if (t >= L) continue;
          if (seq && seq[b * L + s] != seq[b * L + t]) continue;
          acc += load_any(w.data_ptr(), d * K + j, w.dtype()) * g[size_t((b * L + t) * D + d)];
        }
        store_any(dx.data_ptr(), (b * L + s) * D + d, dx.dtype(), acc);
      }
#pragma omp parallel for
  for (int64_t d = 0; d < D; d++) {
    std::vector<double> dw(size_t(K), 0.0);
    double db = 0;
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < L; t++) {
        double gv = g[size_t((b * L + t) * D + d)];
        db += gv;
        for (int64_t j = 0; j < K; j++) {
          int64_t s = t - K + 1 + j;
          if (s < 0 || (seq && seq[b * L + s] != seq[b * L + t])) continue;
          dw[size_t(j)] += gv * load_any(x.data_ptr(), (b * L + s) * D + d, x.dtype());
        }
      }
    if (dw_acc.defined())
      for (int64_t j = 0; j < K; j++)
        store_any(dw_acc.data_ptr(), d * K + j, dw_acc.dtype(), load_any(dw_acc.data_ptr(), d * K + j, dw_acc.dtype()) + dw[size_t(j)]);
    if (dbias_acc.defined())
      store_any(dbias_acc.data_ptr(), d, dbias_acc.dtype(), load_any(dbias_acc.data_ptr(), d, dbias_acc.dtype()) + db);
  }
}

}  // namespace lmf::cpu
