// CUDA LayerNorm and RMSNorm (contracts in backend/kernel_list.inc; the CPU reference
// backend/cpu/norm.cc is the specification, including the dtype combinations).
//  - Forward and dx: one warp per row (rows up to 128 packs) or one block per row, 16-byte packs
//    when the row length allows, fp32 statistics and math.
//  - dw / db: a separate deterministic column reduction (column_reduce.cuh) over the saved
//    per-row statistics: per-block partial sums, then a second pass that adds them into the
//    f32 accumulators in a fixed order. It re-reads x and dy instead of keeping partials per
//    row group, which works for any row length and needs no atomics.
// The Mamba block norm of an fp32 residual read as bf16 is in rmsnorm_rounded.cu.
#include "lmforge/backend/cuda/column_reduce.cuh"
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

using bf16_t = __nv_bfloat16;

// (x, weight, output) dtypes: all equal, (bf16, f32, bf16), (bf16, f32, f32), (f32, bf16, f32),
// (f32, f32, bf16).
template <class F>
void dispatch_norm(const char* op, DType x, DType w, DType y, F&& f) {
  auto is = [&](DType a, DType b, DType c) { return x == a && w == b && y == c; };
  using D = DType;
  if (is(D::f32, D::f32, D::f32)) f.template operator()<float, float, float>();
  else if (is(D::bf16, D::bf16, D::bf16)) f.template operator()<bf16_t, bf16_t, bf16_t>();
  else if (is(D::f16, D::f16, D::f16)) f.template operator()<__half, __half, __half>();
  else if (is(D::bf16, D::f32, D::bf16)) f.template operator()<bf16_t, float, bf16_t>();
  else if (is(D::bf16, D::f32, D::f32)) f.template operator()<bf16_t, float, float>();
  else if (is(D::f32, D::bf16, D::f32)) f.template operator()<float, bf16_t, float>();
  else if (is(D::f32, D::f32, D::bf16)) f.template operator()<float, float, bf16_t>();
  else fail(op, ": unsupported CUDA dtypes x ", dtype_name(x), ", weight ", dtype_name(w), ", output ", dtype_name(y));
}

void check_stats(const char* op, const Tensor& t) {
  if (t.dtype() != DType::f32) fail(op, ": CUDA statistics are f32, got ", dtype_name(t.dtype()));
}
void check_acc(const char* op, const Tensor& t) {
  if (t.defined() && t.dtype() != DType::f32) fail(op, ": CUDA gradient accumulators are f32, got ", dtype_name(t.dtype()));
}
// ---- LayerNorm ---------------------------------------------------------------------------------

template <class X, class W, class Y, int VEC>
__global__ void layernorm_forward_kernel(const X* x, const W* w, const W* b, Y* y, float* mean, float* rstd,
                                         int64_t N, int64_t C, float eps) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;  // warp mode only (see row_launch)
  const X* xr = x + row * C;
  const int64_t packs = C / VEC;
  // Two passes over the row (the second hits L1/L2): mean, then the biased variance around it,
  // which avoids the cancellation of E[x^2] - E[x]^2.
  float s = 0.f;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[VEC];
    load_pack<VEC>(xr, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) s += v[k];
  }
  const float mu = row_sum(s) / float(C);
  float q = 0.f;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[VEC];
    load_pack<VEC>(xr, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) q += (v[k] - mu) * (v[k] - mu);
  }
  const float rs = rsqrtf(row_sum(q) / float(C) + eps);
  if (threadIdx.x == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[VEC], wv[VEC], bv[VEC];
    load_pack<VEC>(xr, p * VEC, v);
    load_pack<VEC>(w, p * VEC, wv);
    if (b) {
      load_pack<VEC>(b, p * VEC, bv);
    } else {
#pragma unroll
      for (int k = 0; k < VEC; k++) bv[k] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = (v[k] - mu) * rs * wv[k] + bv[k];
    store_pack<VEC>(y + row * C, p * VEC, v);
  }
}

// dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)), g = dy * w, xhat = (x - mean) * rstd.
template <class X, class W, class Y, int VEC>
__global__ void layernorm_backward_dx_kernel(const X* x, const W* w, const float* mean, const float* rstd,
                                             const Y* dy, X* dx, int64_t N, int64_t C) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;
  const X* xr = x + row * C;
  const Y* dyr = dy + row * C;
  const int64_t packs = C / VEC;
  const float mu = mean[row], rs = rstd[row];
  float s1 = 0.f, s2 = 0.f;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float xv[VEC], wv[VEC], dv[VEC];
    load_pack<VEC>(xr, p * VEC, xv);
    load_pack<VEC>(w, p * VEC, wv);
    load_pack<VEC>(dyr, p * VEC, dv);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      const float g = dv[k] * wv[k];
      s1 += g;
      s2 += g * (xv[k] - mu) * rs;
    }
  }
  const float m1 = row_sum(s1) / float(C), m2 = row_sum(s2) / float(C);
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float xv[VEC], wv[VEC], dv[VEC];
    load_pack<VEC>(xr, p * VEC, xv);
    load_pack<VEC>(w, p * VEC, wv);
    load_pack<VEC>(dyr, p * VEC, dv);
#pragma unroll
    for (int k = 0; k < VEC; k++) xv[k] = rs * (dv[k] * wv[k] - m1 - (xv[k] - mu) * rs * m2);
    store_pack<VEC>(dx + row * C, p * VEC, xv);
  }
}

// Element (r, c) of dw (= dy * xhat) and, with NOUT == 2, of db (= dy).
template <class X, class Y, int NOUT>
struct LayerNormWeightGrad {
  const X* x;
  const Y* dy;
  const float *mean, *rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&out)[NOUT]) const {
    const float d = to_f(dy[r * C + c]);
    out[0] = d * (to_f(x[r * C + c]) - mean[r]) * rstd[r];
    if constexpr (NOUT == 2) out[1] = d;
  }
};

// ---- RMSNorm -----------------------------------------------------------------------------------

// HF MambaRMSNorm: h = (x.float() * rsqrt(mean(x^2) + eps)).to(x dtype); y = w * h.
template <class X, class W, class Y, int VEC>
__global__ void rmsnorm_forward_kernel(const X* x, const W* w, Y* y, float* rstd, int64_t N, int64_t C, float eps) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;
  const X* xr = x + row * C;
  const int64_t packs = C / VEC;
  float q = 0.f;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[VEC];
    load_pack<VEC>(xr, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) q += v[k] * v[k];
  }
  const float rs = rsqrtf(row_sum(q) / float(C) + eps);
  if (threadIdx.x == 0) rstd[row] = rs;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[VEC], wv[VEC];
    load_pack<VEC>(xr, p * VEC, v);
    load_pack<VEC>(w, p * VEC, wv);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = to_f(from_f<X>(v[k] * rs)) * wv[k];
    store_pack<VEC>(y + row * C, p * VEC, v);
  }
}

// dx = rstd * g - x * rstd^3 * mean_c(g * x), g = dy * w (the cast back passes gradients through).
template <class X, class W, class Y, int VEC>
__global__ void rmsnorm_backward_dx_kernel(const X* x, const W* w, const float* rstd, const Y* dy, X* dx, int64_t N,
                                           int64_t C) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;
  const X* xr = x + row * C;
  const Y* dyr = dy + row * C;
  const int64_t packs = C / VEC;
  const float rs = rstd[row];
  float s = 0.f;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float xv[VEC], wv[VEC], dv[VEC];
    load_pack<VEC>(xr, p * VEC, xv);
    load_pack<VEC>(w, p * VEC, wv);
    load_pack<VEC>(dyr, p * VEC, dv);
#pragma unroll
    for (int k = 0; k < VEC; k++) s += dv[k] * wv[k] * xv[k];
  }
  const float kcoef = rs * rs * rs * row_sum(s) / float(C);
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float xv[VEC], wv[VEC], dv[VEC];
    load_pack<VEC>(xr, p * VEC, xv);
    load_pack<VEC>(w, p * VEC, wv);
    load_pack<VEC>(dyr, p * VEC, dv);
#pragma unroll
    for (int k = 0; k < VEC; k++) xv[k] = rs * dv[k] * wv[k] - xv[k] * kcoef;
    store_pack<VEC>(dx + row * C, p * VEC, xv);
  }
}

// Element (r, c) of dw: dy times the value the weight multiplied (h, rounded to x's dtype).
template <class X, class Y>
struct RmsNormWeightGrad {
  const X* x;
  const Y* dy;
  const float* rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&out)[1]) const {
    out[0] = to_f(dy[r * C + c]) * to_f(from_f<X>(to_f(x[r * C + c]) * rstd[r]));
  }
};

int64_t rows_of(const Tensor& x) { return x.size(-1) == 0 ? 0 : x.numel() / x.size(-1); }

// RMSNorm launches for storage dtypes X / W / Y.
template <class X, class W, class Y>
void rms_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd, float eps) {
  const int64_t C = x.size(-1), N = rows_of(x);
  if (N == 0) return;
  constexpr int P = pack_size<X>();
  const X* px = ptr<X>(x);
  const W* pw = ptr<W>(w);
  Y* py = ptr<Y>(y);
  with_pack<P>(rows_packable<P>(C, px, pw, static_cast<const Y*>(py)), [&]<int VEC>() {
    const RowLaunch L = row_launch(N, C / VEC);
    rmsnorm_forward_kernel<X, W, Y, VEC><<<L.grid, L.block, 0, current_stream()>>>(px, pw, py, ptr<float>(rstd), N,
                                                                                        C, eps);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

template <class X, class W, class Y>
void rms_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, const Tensor& dx,
                  const Tensor& dw_acc) {
  const int64_t C = x.size(-1), N = rows_of(x);
  if (N == 0) return;
  const X* px = ptr<X>(x);
  const Y* pdy = ptr<Y>(dy);
  const float* pr = ptr<float>(rstd);
  if (dx.defined()) {
    constexpr int P = pack_size<X>();
    const W* pw = ptr<W>(w);
    X* pdx = ptr<X>(dx);
    with_pack<P>(rows_packable<P>(C, px, pw, pdy, static_cast<const X*>(pdx)), [&]<int VEC>() {
      const RowLaunch L = row_launch(N, C / VEC);
      rmsnorm_backward_dx_kernel<X, W, Y, VEC>
          <<<L.grid, L.block, 0, current_stream()>>>(px, pw, pr, pdy, pdx, N, C);
      LMF_CUDA_CHECK_LAUNCH();
    });
  }
  if (dw_acc.defined())
    column_reduce_acc<1>(N, C, RmsNormWeightGrad<X, Y>{px, pdy, pr, C}, ColumnTargets<1>{{ptr<float>(dw_acc)}},
                         x.device());
}

}  // namespace

void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const Tensor& mean,
                       const Tensor& rstd, float eps) {
  check_stats("layernorm_forward", mean);
  check_stats("layernorm_forward", rstd);
  const int64_t C = x.size(-1), N = rows_of(x);
  if (N == 0) return;
  dispatch_norm("layernorm_forward", x.dtype(), w.dtype(), y.dtype(), [&]<class X, class W, class Y>() {
    constexpr int P = pack_size<X>();
    const X* px = ptr<X>(x);
    const W* pw = ptr<W>(w);
    const W* pb = b.defined() ? ptr<W>(b) : nullptr;
    Y* py = ptr<Y>(y);
    with_pack<P>(rows_packable<P>(C, px, pw, pb, static_cast<const Y*>(py)), [&]<int VEC>() {
      const RowLaunch L = row_launch(N, C / VEC);
      layernorm_forward_kernel<X, W, Y, VEC><<<L.grid, L.block, 0, current_stream()>>>(
          px, pw, pb, py, ptr<float>(mean), ptr<float>(rstd), N, C, eps);
      LMF_CUDA_CHECK_LAUNCH();
    });
  });
}

void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                        const Tensor& dx, const Tensor& dw_acc, const Tensor& db_acc) {
  check_stats("layernorm_backward", mean);
  check_stats("layernorm_backward", rstd);
  check_acc("layernorm_backward", dw_acc);
  check_acc("layernorm_backward", db_acc);
  const int64_t C = x.size(-1), N = rows_of(x);
  if (N == 0) return;
  dispatch_norm("layernorm_backward", x.dtype(), w.dtype(), dy.dtype(), [&]<class X, class W, class Y>() {
    const X* px = ptr<X>(x);
    const Y* pdy = ptr<Y>(dy);
    const float *pm = ptr<float>(mean), *pr = ptr<float>(rstd);
    if (dx.defined()) {
      constexpr int P = pack_size<X>();
      const W* pw = ptr<W>(w);
      X* pdx = ptr<X>(dx);
      with_pack<P>(rows_packable<P>(C, px, pw, pdy, static_cast<const X*>(pdx)), [&]<int VEC>() {
        const RowLaunch L = row_launch(N, C / VEC);
        layernorm_backward_dx_kernel<X, W, Y, VEC><<<L.grid, L.block, 0, current_stream()>>>(px, pw, pm, pr, pdy,
                                                                                             pdx, N, C);
        LMF_CUDA_CHECK_LAUNCH();
      });
    }
    if (dw_acc.defined() && db_acc.defined()) {
      column_reduce_acc<2>(N, C, LayerNormWeightGrad<X, Y, 2>{px, pdy, pm, pr, C},
                           ColumnTargets<2>{{ptr<float>(dw_acc), ptr<float>(db_acc)}}, x.device());
    } else if (dw_acc.defined()) {
      column_reduce_acc<1>(N, C, LayerNormWeightGrad<X, Y, 1>{px, pdy, pm, pr, C},
                           ColumnTargets<1>{{ptr<float>(dw_acc)}}, x.device());
    } else if (db_acc.defined()) {
      sum_rows_acc(dy, db_acc);
    }
  });
}

void rmsnorm_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd, float eps) {
  check_stats("rmsnorm_forward", rstd);
  dispatch_norm("rmsnorm_forward", x.dtype(), w.dtype(), y.dtype(),
                [&]<class X, class W, class Y>() { rms_forward<X, W, Y>(x, w, y, rstd, eps); });
}

void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, const Tensor& dx,
                      const Tensor& dw_acc) {
  check_stats("rmsnorm_backward", rstd);
  check_acc("rmsnorm_backward", dw_acc);
  dispatch_norm("rmsnorm_backward", x.dtype(), w.dtype(), dy.dtype(),
                [&]<class X, class W, class Y>() { rms_backward<X, W, Y>(x, w, rstd, dy, dx, dw_acc); });
}

}  // namespace lmf::cuda
