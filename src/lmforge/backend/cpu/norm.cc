// CPU reference: LayerNorm (PyTorch nn.LayerNorm: biased variance) and RMSNorm (HF
// MambaRMSNorm: normalise in fp32, cast back to the input dtype, then multiply by the weight;
// PARITY.md §1). Row statistics are summed in fp64; mean / rstd are stored as f32 (f64 for
// f64 inputs). dx is computed row by row; weight gradients column by column, so every sum has
// a fixed order and no two threads write the same element.
//
// dtypes (x, w, y): all equal, or (bf16, f32, bf16) (LayerNorm with fp32 weights), or
// (bf16, f32, f32) / (f32, bf16, f32) (RMSNorm promotes like `weight * h.to(input_dtype)`), or
// (f32, f32, bf16) (LayerNorm of an fp32 residual stream straight into a bf16 matmul input).
#include <cmath>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

namespace {

template <class F>
void dispatch_norm(const char* op, DType x, DType w, DType y, F&& f) {
  auto is = [&](DType a, DType b, DType c) { return x == a && w == b && y == c; };
  using D = DType;
  if (is(D::f32, D::f32, D::f32)) f.template operator()<float, float, float>();
  else if (is(D::f64, D::f64, D::f64)) f.template operator()<double, double, double>();
  else if (is(D::bf16, D::bf16, D::bf16)) f.template operator()<bf16, bf16, bf16>();
  else if (is(D::f16, D::f16, D::f16)) f.template operator()<f16, f16, f16>();
  else if (is(D::bf16, D::f32, D::bf16)) f.template operator()<bf16, float, bf16>();
  else if (is(D::bf16, D::f32, D::f32)) f.template operator()<bf16, float, float>();
  else if (is(D::f32, D::bf16, D::f32)) f.template operator()<float, bf16, float>();
  else if (is(D::f32, D::f32, D::bf16)) f.template operator()<float, float, bf16>();
  else fail(op, ": unsupported dtypes x ", dtype_name(x), ", weight ", dtype_name(w), ", output ", dtype_name(y));
}

// Statistics are f32, or f64 for f64 inputs.
template <class X> using stat_t = acc_t<X>;

int64_t rows_of(const Tensor& x) { return x.size(-1) == 0 ? 0 : x.numel() / x.size(-1); }

// acc[c] += v[c] for an f32/f64 accumulator.
void add_into(const Tensor& acc, int64_t c, double v) {
  store_any(acc.data_ptr(), c, acc.dtype(), load_any(acc.data_ptr(), c, acc.dtype()) + v);
}

}  // namespace

void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const Tensor& mean,
                       const Tensor& rstd, float eps) {
  const int64_t C = x.size(-1), N = rows_of(x);
  dispatch_norm("layernorm_forward", x.dtype(), w.dtype(), y.dtype(), [&]<class X, class W, class Y>() {
    using A = acc_t<X>;
    const X* px = x.data<X>();
    const W* pw = w.data<W>();
    const W* pb = b.defined() ? b.data<W>() : nullptr;
    Y* py = y.data<Y>();
    stat_t<X>* pm = mean.data<stat_t<X>>();
    stat_t<X>* pr = rstd.data<stat_t<X>>();
#pragma omp parallel for if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) {
      const X* xr = px + r * C;
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += double(load(xr[c]));
      const double mu = s / double(C);
      double q = 0;
      for (int64_t c = 0; c < C; c++) q += (double(load(xr[c])) - mu) * (double(load(xr[c])) - mu);
      const double rs = 1.0 / std::sqrt(q / double(C) + double(eps));
      pm[r] = stat_t<X>(mu);
      pr[r] = stat_t<X>(rs);
      const A m = A(pm[r]), rsa = A(pr[r]);
      for (int64_t c = 0; c < C; c++) {
        A v = (load(xr[c]) - m) * rsa * A(load(pw[c]));
        if (pb) v += A(load(pb[c]));
        py[r * C + c] = store<Y>(v);
      }
    }
  });
}

void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                        const Tensor& dx, const Tensor& dw_acc, const Tensor& db_acc) {
  const int64_t C = x.size(-1), N = rows_of(x);
  dispatch_norm("layernorm_backward", x.dtype(), w.dtype(), dy.dtype(), [&]<class X, class W, class Y>() {
    using A = acc_t<X>;
    const X* px = x.data<X>();
    const W* pw = w.data<W>();
    const Y* pdy = dy.data<Y>();
    const stat_t<X>* pm = mean.data<stat_t<X>>();
    const stat_t<X>* pr = rstd.data<stat_t<X>>();
    // xhat = (x - mean) * rstd, g = dy * w:
    // dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)).
    if (dx.defined()) {
      X* pdx = dx.data<X>();
#pragma omp parallel for if (N * C > 16384)
      for (int64_t r = 0; r < N; r++) {
        const A m = A(pm[r]), rs = A(pr[r]);
        double s1 = 0, s2 = 0;
        for (int64_t c = 0; c < C; c++) {
          const A g = A(load(pdy[r * C + c])) * A(load(pw[c]));
          s1 += double(g);
          s2 += double(g) * double((load(px[r * C + c]) - m) * rs);
        }
        const A m1 = A(s1 / double(C)), m2 = A(s2 / double(C));
        for (int64_t c = 0; c < C; c++) {
          const A g = A(load(pdy[r * C + c])) * A(load(pw[c]));
          const A xh = (load(px[r * C + c]) - m) * rs;
          pdx[r * C + c] = store<X>(rs * (g - m1 - xh * m2));
        }
      }
    }
    // dw[c] += sum_r dy * xhat, db[c] += sum_r dy.
    if (dw_acc.defined() || db_acc.defined()) {
#pragma omp parallel for if (N * C > 16384)
      for (int64_t c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int64_t r = 0; r < N; r++) {
          const double d = double(load(pdy[r * C + c]));
          sw += d * double((load(px[r * C + c]) - A(pm[r])) * A(pr[r]));
          sb += d;
        }
        if (dw_acc.defined()) add_into(dw_acc, c, sw);
        if (db_acc.defined()) add_into(db_acc, c, sb);
      }
    }
  });
}

void rmsnorm_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd, float eps) {
  const int64_t C = x.size(-1), N = rows_of(x);
  dispatch_norm("rmsnorm_forward", x.dtype(), w.dtype(), y.dtype(), [&]<class X, class W, class Y>() {
    using A = acc_t<X>;
    const X* px = x.data<X>();
    const W* pw = w.data<W>();
    Y* py = y.data<Y>();
    stat_t<X>* pr = rstd.data<stat_t<X>>();
#pragma omp parallel for if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) {
      const X* xr = px + r * C;
      double ss = 0;
      for (int64_t c = 0; c < C; c++) ss += double(load(xr[c])) * double(load(xr[c]));
      pr[r] = stat_t<X>(1.0 / std::sqrt(ss / double(C) + double(eps)));
      const A rs = A(pr[r]);
      for (int64_t c = 0; c < C; c++) {
        // HF: (x.float() * rsqrt(var + eps)).to(input_dtype), then weight * that.
        const A n = load(store<X>(load(xr[c]) * rs));
        py[r * C + c] = store<Y>(n * A(load(pw[c])));
      }
    }
  });
}

void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, const Tensor& dx,
                      const Tensor& dw_acc) {
  const int64_t C = x.size(-1), N = rows_of(x);
  dispatch_norm("rmsnorm_backward", x.dtype(), w.dtype(), dy.dtype(), [&]<class X, class W, class Y>() {
    using A = acc_t<X>;
    const X* px = x.data<X>();
    const W* pw = w.data<W>();
    const Y* pdy = dy.data<Y>();
    const stat_t<X>* pr = rstd.data<stat_t<X>>();
    // The cast back to the input dtype passes gradients unchanged. With g = dy * w:
    // dx = rstd * g - x * rstd^3 * mean_c(g * x).
    if (dx.defined()) {
      X* pdx = dx.data<X>();
#pragma omp parallel for if (N * C > 16384)
      for (int64_t r = 0; r < N; r++) {
        const A rs = A(pr[r]);
        double s = 0;
        for (int64_t c = 0; c < C; c++)
          s += double(A(load(pdy[r * C + c])) * A(load(pw[c]))) * double(load(px[r * C + c]));
        const A k = rs * rs * rs * A(s / double(C));
        for (int64_t c = 0; c < C; c++) {
          const A g = A(load(pdy[r * C + c])) * A(load(pw[c]));
          pdx[r * C + c] = store<X>(rs * g - load(px[r * C + c]) * k);
        }
      }
    }
    // dw[c] += sum_r dy * (x * rstd cast to the input dtype): the value the weight multiplied.
    if (dw_acc.defined()) {
#pragma omp parallel for if (N * C > 16384)
      for (int64_t c = 0; c < C; c++) {
        double sw = 0;
        for (int64_t r = 0; r < N; r++) {
          const A n = load(store<X>(load(px[r * C + c]) * A(pr[r])));
          sw += double(load(pdy[r * C + c])) * double(n);
        }
        add_into(dw_acc, c, sw);
      }
    }
  });
}

// The rounded variant: x (f32) is first rounded to bf16, the norm runs on that copy, and the
// gradient of the copy is rounded to bf16 before it reaches x (x.to(bf16)'s backward).
namespace {
void check_rounded(const char* op, const Tensor& x, const Tensor& w, DType y) {
  if (x.dtype() != DType::f32 || w.dtype() != DType::bf16 || y != DType::bf16)
    fail(op, ": expected f32 x with bf16 weight and output, got x ", dtype_name(x.dtype()), ", weight ",
         dtype_name(w.dtype()), ", output ", dtype_name(y));
}
inline float round_bf16(float v) { return load(store<bf16>(v)); }
}  // namespace

void rmsnorm_rounded_forward(const Tensor& x, const Tensor& h, const Tensor& w, const Tensor& s, const Tensor& y,
                             const Tensor& rstd, float eps) {
  check_rounded("rmsnorm_rounded_forward", x, w, y.dtype());
  if (h.defined() && (h.dtype() != DType::bf16 || !s.defined() || s.dtype() != DType::f32))
    fail("rmsnorm_rounded_forward: with h, expected bf16 h and an f32 s, got h ", dtype_name(h.dtype()));
  const int64_t C = x.size(-1), N = rows_of(x);
  const float* px = x.data<float>();
  const bf16* ph = h.defined() ? h.data<bf16>() : nullptr;
  float* ps = h.defined() ? s.data<float>() : nullptr;
  const bf16* pw = w.data<bf16>();
  bf16* py = y.data<bf16>();
  float* pr = rstd.data<float>();
#pragma omp parallel for if (N * C > 16384)
  for (int64_t r = 0; r < N; r++) {
    const float* xr = px + r * C;
    if (ph) {  // the residual sum first: f32 + bf16 in f32, as PyTorch promotes
      for (int64_t c = 0; c < C; c++) ps[r * C + c] = xr[c] + load(ph[r * C + c]);
      xr = ps + r * C;
    }
    double ss = 0;
    for (int64_t c = 0; c < C; c++) ss += double(round_bf16(xr[c])) * double(round_bf16(xr[c]));
    pr[r] = float(1.0 / std::sqrt(ss / double(C) + double(eps)));
    for (int64_t c = 0; c < C; c++) py[r * C + c] = store<bf16>(round_bf16(round_bf16(xr[c]) * pr[r]) * load(pw[c]));
  }
}

void rmsnorm_rounded_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, const Tensor& ds,
                              const Tensor& dx, bool accumulate, const Tensor& dh, const Tensor& dw_acc) {
  check_rounded("rmsnorm_rounded_backward", x, w, dy.dtype());
  if (dx.defined() && dx.dtype() != DType::f32)
    fail("rmsnorm_rounded_backward: dx must be f32, got ", dtype_name(dx.dtype()));
  if (ds.defined() && ds.dtype() != DType::f32)
    fail("rmsnorm_rounded_backward: ds must be f32, got ", dtype_name(ds.dtype()));
  if (dh.defined() && dh.dtype() != DType::bf16)
    fail("rmsnorm_rounded_backward: dh must be bf16, got ", dtype_name(dh.dtype()));
  const int64_t C = x.size(-1), N = rows_of(x);
  const float* px = x.data<float>();
  const bf16* pw = w.data<bf16>();
  const bf16* pdy = dy.data<bf16>();
  const float* pr = rstd.data<float>();
  const float* pds = ds.defined() ? ds.data<float>() : nullptr;
  if (dx.defined() || dh.defined()) {
    float* pdx = dx.defined() ? dx.data<float>() : nullptr;
    bf16* pdh = dh.defined() ? dh.data<bf16>() : nullptr;
#pragma omp parallel for if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) {
      const float rs = pr[r];
      double sum = 0;
      for (int64_t c = 0; c < C; c++)
        sum += double(load(pdy[r * C + c]) * load(pw[c])) * double(round_bf16(px[r * C + c]));
      const float k = rs * rs * rs * float(sum / double(C));
      for (int64_t c = 0; c < C; c++) {
        const int64_t i = r * C + c;
        const float g = load(pdy[i]) * load(pw[c]);
        float t = round_bf16(rs * g - round_bf16(px[i]) * k);
        if (pds) t = pds[i] + t;  // the tape's order: the residual path's gradient first
        if (pdh) pdh[i] = store<bf16>(t);
        if (pdx) pdx[i] = accumulate ? pdx[i] + t : t;
      }
    }
  }
  if (dw_acc.defined()) {
#pragma omp parallel for if (N * C > 16384)
    for (int64_t c = 0; c < C; c++) {
      double sw = 0;
      for (int64_t r = 0; r < N; r++)
        sw += double(load(pdy[r * C + c])) * double(round_bf16(round_bf16(px[r * C + c]) * pr[r]));
      add_into(dw_acc, c, sw);
    }
  }
}

}  // namespace lmf::cpu
