// CPU reference: dense matrix products through OpenBLAS (see backend/kernel_list.inc).
//
// f32 x f32 -> f32 and f64 x f64 -> f64 call cblas_sgemm / cblas_dgemm straight on the
// tensors. Every other combination (bf16/f16 inputs, mixed output dtype, f64 inputs into an f32
// gradient slot) computes the product op(A) op(B) into an fp32 (fp64 for f64 inputs) scratch
// buffer and then forms C = alpha * P + beta * C + bias element by element, rounding once —
// the same order cuBLASLt's epilogue uses, so CPU and CUDA agree on bf16 outputs.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

namespace {

// One row-major 2-D problem: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C + bias[N].
struct Gemm {
  int64_t M = 0, N = 0, K = 0;
  bool ta = false, tb = false;
  float alpha = 1, beta = 0;
  DType ab = DType::f32, c = DType::f32, bias = DType::f32;
  const void* bias_ptr = nullptr;  // null: no bias
  // Leading dimensions of the stored (row-major) matrices; at least 1 as BLAS demands.
  int lda() const { return int(std::max<int64_t>(1, ta ? M : K)); }
  int ldb() const { return int(std::max<int64_t>(1, tb ? K : N)); }
  int ldc() const { return int(std::max<int64_t>(1, N)); }
};

CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

// Copies n elements of floating dtype t into fp32.
std::vector<float> to_f32(const void* p, int64_t n, DType t) {
  std::vector<float> out(size_t(n), 0.f);
  dispatch_floating(t, "matmul", [&]<class T>() {
    const T* src = static_cast<const T*>(p);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[size_t(i)] = float(load(src[i]));
  });
  return out;
}

// P = op(A) op(B) in the accumulation type P (float, or double for f64 inputs).
template <class P>
std::vector<P> product(const Gemm& g, const void* a, const void* b) {
  std::vector<P> out(size_t(g.M * g.N), P(0));
  if (g.K == 0) return out;
  if constexpr (std::is_same_v<P, double>) {
    cblas_dgemm(CblasRowMajor, tr(g.ta), tr(g.tb), int(g.M), int(g.N), int(g.K), 1.0,
                static_cast<const double*>(a), g.lda(), static_cast<const double*>(b), g.ldb(), 0.0,
                out.data(), g.ldc());
  } else {
    std::vector<float> af, bf;
    const float* pa = static_cast<const float*>(a);
    const float* pb = static_cast<const float*>(b);
    if (g.ab != DType::f32) {
      af = to_f32(a, g.M * g.K, g.ab);
      bf = to_f32(b, g.K * g.N, g.ab);
      pa = af.data();
      pb = bf.data();
    }
    cblas_sgemm(CblasRowMajor, tr(g.ta), tr(g.tb), int(g.M), int(g.N), int(g.K), 1.f, pa, g.lda(), pb,
                g.ldb(), 0.f, out.data(), g.ldc());
  }
  return out;
}

std::vector<double> bias_values(const Gemm& g) {
  std::vector<double> v(size_t(g.N), 0.0);
  if (g.bias_ptr)
    for (int64_t n = 0; n < g.N; n++) v[size_t(n)] = load_any(g.bias_ptr, n, g.bias);
  return v;
}

// C = alpha P + beta C + bias, computed in P's precision, rounded once into C's dtype.
// beta == 0 never reads C (it may hold garbage or NaN), as BLAS specifies.
template <class P>
void combine(const Gemm& g, const std::vector<P>& prod, void* c) {
  const std::vector<double> bias = bias_values(g);
  dispatch_floating(g.c, "matmul", [&]<class T>() {
    T* pc = static_cast<T*>(c);
#pragma omp parallel for if (g.M * g.N > 65536)
    for (int64_t m = 0; m < g.M; m++) {
      for (int64_t n = 0; n < g.N; n++) {
        const size_t i = size_t(m * g.N + n);
        P v = P(g.alpha) * prod[i] + P(bias[size_t(n)]);
        if (g.beta != 0.f) v += P(g.beta) * P(load(pc[i]));
        pc[i] = store<T>(acc_t<T>(v));
      }
    }
  });
}

// Adds bias[n] to every row of an f32/f64 C in place (fast paths only).
template <class T>
void add_bias_inplace(const Gemm& g, T* c) {
  if (!g.bias_ptr) return;
  const std::vector<double> bias = bias_values(g);
#pragma omp parallel for if (g.M * g.N > 65536)
  for (int64_t m = 0; m < g.M; m++)
    for (int64_t n = 0; n < g.N; n++) c[m * g.N + n] += T(bias[size_t(n)]);
}

void gemm(const Gemm& g, const void* a, const void* b, void* c) {
  if (g.M == 0 || g.N == 0) return;
  LMF_CHECK(g.M <= INT_MAX && g.N <= INT_MAX && g.K <= INT_MAX, "matmul dims exceed BLAS int");
  if (g.K > 0 && g.ab == DType::f32 && g.c == DType::f32) {
    cblas_sgemm(CblasRowMajor, tr(g.ta), tr(g.tb), int(g.M), int(g.N), int(g.K), g.alpha,
                static_cast<const float*>(a), g.lda(), static_cast<const float*>(b), g.ldb(), g.beta,
                static_cast<float*>(c), g.ldc());
    add_bias_inplace(g, static_cast<float*>(c));
  } else if (g.K > 0 && g.ab == DType::f64 && g.c == DType::f64) {
    cblas_dgemm(CblasRowMajor, tr(g.ta), tr(g.tb), int(g.M), int(g.N), int(g.K), double(g.alpha),
                static_cast<const double*>(a), g.lda(), static_cast<const double*>(b), g.ldb(),
                double(g.beta), static_cast<double*>(c), g.ldc());
    add_bias_inplace(g, static_cast<double*>(c));
  } else if (g.ab == DType::f64) {
    combine(g, product<double>(g, a, b), c);
  } else {
    combine(g, product<float>(g, a, b), c);
  }
}

Gemm make_gemm(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C, float alpha,
               float beta) {
  Gemm g;
  g.M = C.size(-2);
  g.N = C.size(-1);
  g.K = ta ? A.size(-2) : A.size(-1);
  g.ta = ta;
  g.tb = tb;
  g.alpha = alpha;
  g.beta = beta;
  g.ab = A.dtype();
  g.c = C.dtype();
  LMF_CHECK(B.dtype() == A.dtype(), "matmul: A and B dtypes differ");
  LMF_CHECK((tb ? B.size(-1) : B.size(-2)) == g.K, "matmul: inner dimensions differ");
  return g;
}

}  // namespace

void matmul(const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, const Tensor& C, float alpha,
            float beta, const Tensor& bias) {
  Gemm g = make_gemm(A, trans_a, B, trans_b, C, alpha, beta);
  if (bias.defined()) {
    LMF_CHECK(bias.numel() == g.N, "matmul: bias length");
    g.bias_ptr = bias.data_ptr();
    g.bias = bias.dtype();
  }
  gemm(g, A.data_ptr(), B.data_ptr(), C.data_ptr());
}

void matmul_batched(const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, const Tensor& C,
                    float alpha, float beta) {
  const Gemm g = make_gemm(A, trans_a, B, trans_b, C, alpha, beta);
  const int64_t batch = C.size(0);
  LMF_CHECK(A.size(0) == batch && B.size(0) == batch, "matmul_batched: batch sizes differ");
  const size_t ab = dtype_size(g.ab), cs = dtype_size(g.c);
  const char* pa = static_cast<const char*>(A.data_ptr());
  const char* pb = static_cast<const char*>(B.data_ptr());
  char* pc = static_cast<char*>(C.data_ptr());
  for (int64_t i = 0; i < batch; i++)
    gemm(g, pa + size_t(i * g.M * g.K) * ab, pb + size_t(i * g.K * g.N) * ab, pc + size_t(i * g.M * g.N) * cs);
}

}  // namespace lmf::cpu
