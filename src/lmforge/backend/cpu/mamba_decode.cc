// CPU reference of the Mamba decode step (backend/mamba_decode_kernels.h): fp64 arithmetic
// per channel, fp32 states between steps (what the host decoder in models/mamba_decoder.cc does).
#include <cmath>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/mamba_decode_kernels.h"

namespace lmf::cpu {

namespace {
double silu(double v) { return v / (1.0 + std::exp(-v)); }
double softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }
double read(const Tensor& t, int64_t i) { return load_element(t.data_ptr(), i, t.dtype()); }
void write(const Tensor& t, int64_t i, double v) { store_element(t.data_ptr(), i, t.dtype(), v); }
}  // namespace

void mamba_conv_step(const Tensor& uz, const Tensor& conv_state, const Tensor& w, const Tensor& bias,
                     const Tensor& c) {
  const int64_t B = conv_state.size(0), I = conv_state.size(1), K = conv_state.size(2);
  float* s = conv_state.data<float>();
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < I; i++) {
      float* st = s + (b * I + i) * K;
      for (int64_t j = 0; j + 1 < K; j++) st[j] = st[j + 1];
      st[K - 1] = float(read(uz, b * 2 * I + i));
      double acc = bias.defined() ? read(bias, i) : 0.0;
      for (int64_t j = 0; j < K; j++) acc += double(st[j]) * read(w, i * K + j);
      write(c, b * I + i, silu(acc));
    }
}

void mamba_ssm_step(const Tensor& c, const Tensor& dt_lin, const Tensor& dt_bias, const Tensor& A_log,
                    const Tensor& xdbl, int64_t R, const Tensor& D, const Tensor& uz, const Tensor& ssm_state,
                    const Tensor& y) {
  const int64_t B = ssm_state.size(0), I = ssm_state.size(1), N = ssm_state.size(2), XD = R + 2 * N;
  float* hs = ssm_state.data<float>();
  const float *A_l = A_log.data<float>(), *Dp = D.data<float>(), *db = dt_bias.data<float>();
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < I; i++) {
      const double dt = softplus(read(dt_lin, b * I + i) + double(db[i]));
      const double u = read(c, b * I + i);
      float* h = hs + (b * I + i) * N;
      double acc = 0;
      for (int64_t n = 0; n < N; n++) {
        const double a = -std::exp(double(A_l[i * N + n]));
        const double hn = std::exp(dt * a) * double(h[n]) + dt * read(xdbl, b * XD + R + n) * u;
        h[n] = float(hn);
        acc += hn * read(xdbl, b * XD + R + N + n);
      }
      acc += u * double(Dp[i]);
      write(y, b * I + i, acc * silu(read(uz, b * 2 * I + I + i)));
    }
}

}  // namespace lmf::cpu
