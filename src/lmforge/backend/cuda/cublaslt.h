// cuBLASLt wrapper used by backend/cuda/matmul.cu: one row-major GEMM call with cached
// descriptors, heuristics and workspace. Only backend/cuda includes this.
#pragma once

#include <cstdint>

#include "lmforge/core/dtype.h"

namespace lmf::cuda {

// A row-major (strided-batched) GEMM: for each batch i,
//   D_i[M,N] = alpha * op(A_i)[M,K] op(B_i)[K,N] + beta * C_i (+ bias[N])
// where D = C in place, all matrices contiguous, batch strides M*K, K*N, M*N elements.
struct GemmProblem {
  int64_t M = 0, N = 0, K = 0, batch = 1;
  bool trans_a = false, trans_b = false;
  DType ab = DType::f32;  // A and B: f32, bf16 or f16
  DType c = DType::f32;   // C/D: equal to ab, or f32 with bf16/f16 inputs
};

// Runs the GEMM on current_stream() with fp32 accumulation (CUBLAS_COMPUTE_32F; f32 inputs use
// TF32 tensor cores only when the environment sets LMF_ALLOW_TF32=1). `bias` (nullable, [N],
// dtype c) is fused through CUBLASLT_EPILOGUE_BIAS. Returns false when cuBLASLt offers no
// algorithm for the problem (odd alignment or dtype combination): the caller then uses
// gemm_fallback and adds the bias itself. Throws lmf::Error on cuBLAS failures.
bool gemm_lt(const GemmProblem& p, const void* A, const void* B, void* C, const void* bias, float alpha, float beta);

// The same GEMM (without bias) through cublasGemmStridedBatchedEx, which accepts any leading
// dimension and alignment.
void gemm_fallback(const GemmProblem& p, const void* A, const void* B, void* C, float alpha, float beta);

// True when a pointer is aligned well enough for the bias epilogue (16 bytes).
bool bias_epilogue_ok(const void* bias);

}  // namespace lmf::cuda
