// CUDA dense matrix products (see backend/kernel_list.inc): cuBLASLt with fp32 accumulation,
// bias fused in the epilogue when its dtype equals C's, else added by bias_beta_kernel below.
#include "lmforge/backend/cuda/cublaslt.h"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

// c[r, n] = beta * c[r, n] + bias[n] over a [rows, N] matrix. beta == 0 never reads c. Used for
// the bias when the epilogue cannot take it, and for K == 0 (an empty product).
template <class TC, class TB>
__global__ void bias_beta_kernel(TC* c, const TB* bias, int64_t total, int64_t N, float beta) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = beta == 0.f ? 0.f : beta * to_f(c[i]);
    if (bias) v += to_f(bias[i % N]);
    c[i] = from_f<TC>(v);
  }
}

void bias_beta(const Tensor& C, int64_t N, float beta, const Tensor& bias) {
  const int64_t total = C.numel();
  if (total == 0) return;
  dispatch_floating(C.dtype(), "matmul", [&]<class TC>() {
    auto launch = [&](const auto* b) {
      bias_beta_kernel<<<blocks_for(total), 256, 0, current_stream()>>>(ptr<TC>(C), b, total, N, beta);
      LMF_CUDA_CHECK_LAUNCH();
    };
    if (!bias.defined())
      launch(static_cast<const TC*>(nullptr));
    else if (bias.dtype() == C.dtype())
      launch(ptr<const TC>(bias));
    else if (bias.dtype() == DType::f32)
      launch(ptr<const float>(bias));
    else
      fail("matmul: bias dtype ", dtype_name(bias.dtype()), " must be ", dtype_name(C.dtype()), " or f32");
  });
}

void check_dtypes(DType ab, DType c) {
  const bool ok = (ab == DType::f32 || ab == DType::bf16 || ab == DType::f16) && (c == ab || c == DType::f32);
  if (!ok)
    fail("matmul: CUDA supports f32/bf16/f16 operands with an output of the same dtype or f32, got ",
         dtype_name(ab), " operands and a ", dtype_name(c), " output");
}

void run(const GemmProblem& p, const Tensor& A, const Tensor& B, const Tensor& C, float alpha, float beta,
         const Tensor& bias) {
  if (p.M == 0 || p.N == 0 || p.batch == 0) return;
  check_dtypes(p.ab, p.c);
  if (p.K == 0) {
    bias_beta(C, p.N, beta, bias);
    return;
  }
  const bool fuse = bias.defined() && bias.dtype() == C.dtype() && bias_epilogue_ok(bias.data_ptr());
  bool fused = false;
  if (gemm_lt(p, A.data_ptr(), B.data_ptr(), C.data_ptr(), fuse ? bias.data_ptr() : nullptr, alpha, beta)) {
    fused = fuse;
  } else {
    gemm_fallback(p, A.data_ptr(), B.data_ptr(), C.data_ptr(), alpha, beta);
  }
  if (bias.defined() && !fused) bias_beta(C, p.N, 1.f, bias);
}

GemmProblem problem(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C) {
  GemmProblem p;
  p.M = C.size(-2);
  p.N = C.size(-1);
  p.K = ta ? A.size(-2) : A.size(-1);
  p.trans_a = ta;
  p.trans_b = tb;
  p.ab = A.dtype();
  p.c = C.dtype();
  LMF_CHECK(B.dtype() == A.dtype(), "matmul: A and B dtypes differ");
  LMF_CHECK((tb ? B.size(-1) : B.size(-2)) == p.K, "matmul: inner dimensions differ");
  return p;
}

}  // namespace

void matmul(const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, const Tensor& C, float alpha, float beta,
            const Tensor& bias) {
  GemmProblem p = problem(A, trans_a, B, trans_b, C);
  if (bias.defined()) LMF_CHECK(bias.numel() == p.N, "matmul: bias length");
  run(p, A, B, C, alpha, beta, bias);
}

void matmul_batched(const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, const Tensor& C, float alpha,
                    float beta) {
  GemmProblem p = problem(A, trans_a, B, trans_b, C);
  p.batch = C.size(0);
  LMF_CHECK(A.size(0) == p.batch && B.size(0) == p.batch, "matmul_batched: batch sizes differ");
  run(p, A, B, C, alpha, beta, Tensor());
}

}  // namespace lmf::cuda
