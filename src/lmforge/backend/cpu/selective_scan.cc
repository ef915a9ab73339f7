// CPU reference: Mamba-1 selective scan with document boundaries (kernel_list.inc).
// Arithmetic in acc_t<T>: fp32 for f32/bf16 inputs (HF's slow path is fp32 too), fp64 for f64
// inputs (exact finite-difference gradient checks). A = -exp(A_log) is formed once per call.
#include <cmath>
#include <vector>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

namespace {

template <class A>
A softplus(A x) {  // PyTorch F.softplus(beta=1, threshold=20)
  return x > A(20) ? x : std::log1p(std::exp(x));
}
template <class A>
A sigmoid(A x) {
  return A(1) / (A(1) + std::exp(-x));
}

// Typed views of the (optional) inputs; every pointer is contiguous.
template <class T>
struct Scan {
  using Acc = acc_t<T>;
  const T *u, *delta, *Bm, *Cm, *z;
  const void *A_log, *Dskip, *delta_bias;
  DType A_t, D_t, bias_t;
  const int32_t* seq;
  bool sp;
  int64_t B, L, D, N;
  std::vector<Acc> A;  // -exp(A_log), [D, N]

  Scan(const Tensor& u_, const Tensor& delta_, const Tensor& A_log_, const Tensor& Bm_, const Tensor& Cm_,
       const Tensor& Dskip_, const Tensor& z_, const Tensor& bias_, const Tensor& seq_, bool sp_)
      : u(u_.data<T>()), delta(delta_.data<T>()), Bm(Bm_.data<T>()), Cm(Cm_.data<T>()),
        z(z_.defined() ? z_.data<T>() : nullptr), A_log(A_log_.data_ptr()),
        Dskip(Dskip_.defined() ? Dskip_.data_ptr() : nullptr), delta_bias(bias_.defined() ? bias_.data_ptr() : nullptr),
        A_t(A_log_.dtype()), D_t(Dskip_.defined() ? Dskip_.dtype() : DType::f32),
        bias_t(bias_.defined() ? bias_.dtype() : DType::f32), seq(seq_.defined() ? seq_.data<int32_t>() : nullptr),
        sp(sp_), B(u_.size(0)), L(u_.size(1)), D(u_.size(2)), N(A_log_.size(1)), A(size_t(D * N)) {
    for (int64_t i = 0; i < D * N; i++) A[size_t(i)] = -std::exp(Acc(load_any(A_log, i, A_t)));
  }
  bool doc_start(int64_t b, int64_t t) const {
    return t == 0 || (seq && seq[b * L + t] != seq[b * L + t - 1]);
  }
  Acc bias(int64_t d) const { return delta_bias ? Acc(load_any(delta_bias, d, bias_t)) : Acc(0); }
  Acc dskip(int64_t d) const { return Dskip ? Acc(load_any(Dskip, d, D_t)) : Acc(0); }
};

template <class T>
void scan_forward(const Scan<T>& s, T* out, const Tensor& final_state) {
  using Acc = acc_t<T>;
  const int64_t B = s.B, L = s.L, D = s.D, N = s.N;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t d = 0; d < D; d++) {
      std::vector<Acc> h(size_t(N), Acc(0));
      const Acc* A = s.A.data() + d * N;
      const Acc bias = s.bias(d), Dd = s.dskip(d);
      for (int64_t t = 0; t < L; t++) {
        if (s.doc_start(b, t)) std::fill(h.begin(), h.end(), Acc(0));
        const int64_t i = (b * L + t) * D + d;
        const Acc raw = load(s.delta[i]) + bias;
        const Acc dt = s.sp ? softplus(raw) : raw, uu = load(s.u[i]);
        const T* Bt = s.Bm + (b * L + t) * N;
        const T* Ct = s.Cm + (b * L + t) * N;
        Acc y = 0;
        for (int64_t n = 0; n < N; n++) {
          h[size_t(n)] = std::exp(dt * A[n]) * h[size_t(n)] + dt * load(Bt[n]) * uu;
          y += h[size_t(n)] * load(Ct[n]);
        }
        y += uu * Dd;
        if (s.z) {
          const Acc zz = load(s.z[i]);
          y *= zz * sigmoid(zz);
        }
        out[i] = store<T>(y);
      }
      if (final_state.defined())
        for (int64_t n = 0; n < N; n++)
          store_any(final_state.data_ptr(), (b * D + d) * N + n, final_state.dtype(), double(h[size_t(n)]));
    }
}

template <class T>
void scan_backward(const Scan<T>& s, const T* dout, T* du, T* ddelta, T* dBm, T* dCm, T* dz, const Tensor& dA_log_acc,
                   const Tensor& dD_acc, const Tensor& dbias_acc) {
  using Acc = acc_t<T>;
  const int64_t B = s.B, L = s.L, D = s.D, N = s.N;
  std::vector<double> gA(size_t(D * N), 0.0), gD(size_t(D), 0.0), gbias(size_t(D), 0.0);
#pragma omp parallel
  {
    std::vector<double> lA(size_t(D * N), 0.0), lD(size_t(D), 0.0), lbias(size_t(D), 0.0);
    std::vector<Acc> hs(size_t(L * N)), gB(size_t(L * N)), gC(size_t(L * N));
    std::vector<Acc> g(static_cast<size_t>(N));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; b++) {
      std::fill(gB.begin(), gB.end(), Acc(0));
      std::fill(gC.begin(), gC.end(), Acc(0));
      for (int64_t d = 0; d < D; d++) {
        const Acc* A = s.A.data() + d * N;
        const Acc bias = s.bias(d), Dd = s.dskip(d);
        // Forward again, keeping this (b, d) row's states.
        {
          std::fill(g.begin(), g.end(), Acc(0));  // g doubles as h here
          for (int64_t t = 0; t < L; t++) {
            if (s.doc_start(b, t)) std::fill(g.begin(), g.end(), Acc(0));
            const int64_t i = (b * L + t) * D + d;
            const Acc raw = load(s.delta[i]) + bias;
            const Acc dt = s.sp ? softplus(raw) : raw, uu = load(s.u[i]);
            const T* Bt = s.Bm + (b * L + t) * N;
            for (int64_t n = 0; n < N; n++) {
              g[size_t(n)] = std::exp(dt * A[n]) * g[size_t(n)] + dt * load(Bt[n]) * uu;
              hs[size_t(t * N + n)] = g[size_t(n)];
            }
          }
        }
        // Reverse sweep; g[n] = dLoss/dh_t[n] including the carry from t+1.
        std::fill(g.begin(), g.end(), Acc(0));
        for (int64_t t = L - 1; t >= 0; t--) {
          const int64_t i = (b * L + t) * D + d;
          const Acc uu = load(s.u[i]), raw = load(s.delta[i]) + bias;
          const Acc dt = s.sp ? softplus(raw) : raw;
          const T* Bt = s.Bm + (b * L + t) * N;
          const T* Ct = s.Cm + (b * L + t) * N;
          Acc gy = load(dout[i]);
          if (s.z) {  // out = y0 * silu(z): recompute y0 from the stored state
            Acc y0 = uu * Dd;
            for (int64_t n = 0; n < N; n++) y0 += hs[size_t(t * N + n)] * load(Ct[n]);
            const Acc zz = load(s.z[i]), sg = sigmoid(zz);
            dz[i] = store<T>(gy * y0 * sg * (Acc(1) + zz * (Acc(1) - sg)));
            gy *= zz * sg;
          }
          Acc gu = gy * Dd;
          lD[size_t(d)] += double(gy * uu);
          Acc gdt = 0;
          const bool start = s.doc_start(b, t);
          for (int64_t n = 0; n < N; n++) {
            const Acc dA = std::exp(dt * A[n]);
            const Acc bn = load(Bt[n]);
            gC[size_t(t * N + n)] += gy * hs[size_t(t * N + n)];
            g[size_t(n)] += gy * load(Ct[n]);
            const Acc hprev = start ? Acc(0) : hs[size_t((t - 1) * N + n)];
            const Acc g_dA = g[size_t(n)] * hprev;  // h_t = dA * hprev + dt * B * u
            gdt += g_dA * dA * A[n] + g[size_t(n)] * bn * uu;
            lA[size_t(d * N + n)] += double(g_dA * dA * dt * A[n]);  // d/dA_log = d/dA * A
            gB[size_t(t * N + n)] += g[size_t(n)] * dt * uu;
            gu += g[size_t(n)] * dt * bn;
            g[size_t(n)] = start ? Acc(0) : g[size_t(n)] * dA;
          }
          const Acc graw = s.sp ? gdt * (raw > Acc(20) ? Acc(1) : sigmoid(raw)) : gdt;
          lbias[size_t(d)] += double(graw);
          ddelta[i] = store<T>(graw);
          du[i] = store<T>(gu);
        }
      }
      for (int64_t k = 0; k < L * N; k++) {
        dBm[b * L * N + k] = store<T>(gB[size_t(k)]);
        dCm[b * L * N + k] = store<T>(gC[size_t(k)]);
      }
    }
#pragma omp critical
    {
      for (size_t k = 0; k < gA.size(); k++) gA[k] += lA[k];
      for (size_t k = 0; k < gD.size(); k++) gD[k] += lD[k];
      for (size_t k = 0; k < gbias.size(); k++) gbias[k] += lbias[k];
    }
  }
  auto add_to = [](const Tensor& acc, const std::vector<double>& v) {
    if (!acc.defined()) return;
    for (size_t k = 0; k < v.size(); k++)
      store_any(acc.data_ptr(), int64_t(k), acc.dtype(), load_any(acc.data_ptr(), int64_t(k), acc.dtype()) + v[k]);
  };
  add_to(dA_log_acc, gA);
  add_to(dD_acc, gD);
  add_to(dbias_acc, gbias);
}

}  // namespace

void selective_scan_forward(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm,
                            const Tensor& Cm, const Tensor& Dskip, const Tensor& z, const Tensor& delta_bias,
                            const Tensor& seq_idx, bool delta_softplus, const Tensor& out,
                            const Tensor& final_state) {
  dispatch_floating(u.dtype(), "selective_scan", [&]<class T>() {
    Scan<T> s(u, delta, A_log, Bm, Cm, Dskip, z, delta_bias, seq_idx, delta_softplus);
    scan_forward(s, out.data<T>(), final_state);
  });
}

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm,
                             const Tensor& Cm, const Tensor& Dskip, const Tensor& z, const Tensor& delta_bias,
                             const Tensor& seq_idx, bool delta_softplus, const Tensor& dout, const Tensor& du,
                             const Tensor& ddelta, const Tensor& dBm, const Tensor& dCm, const Tensor& dz,
                             const Tensor& dA_log_acc, const Tensor& dD_acc, const Tensor& ddelta_bias_acc) {
  dispatch_floating(u.dtype(), "selective_scan", [&]<class T>() {
    Scan<T> s(u, delta, A_log, Bm, Cm, Dskip, z, delta_bias, seq_idx, delta_softplus);
    scan_backward(s, dout.data<T>(), du.data<T>(), ddelta.data<T>(), dBm.data<T>(), dCm.data<T>(),
                  z.defined() ? dz.data<T>() : nullptr, dA_log_acc, dD_acc, ddelta_bias_acc);
  });
}

}  // namespace lmf::cpu
