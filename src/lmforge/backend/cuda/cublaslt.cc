// cuBLASLt GEMMs with cached plans (see cublaslt.h).
//
// Row-major through a column-major library: a row-major X[r, c] is the column-major X^T with
// leading dimension c, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T — cuBLAS's
// "A" is our B and its "B" is our A, with m = N, n = M, and no data movement.
//
// Per device: one cuBLASLt handle, one cuBLAS handle (fallback), a 32 MiB workspace, and a cache
// of plans (matmul descriptor, the three layouts, the heuristic's best algorithm) keyed by
// everything the heuristic depends on: shapes, batch, transposes, dtypes, epilogue and the
// pointer alignments. Descriptor creation and the heuristic query cost tens of microseconds;
// a training step repeats the same few shapes, so after the first step every GEMM is a lookup.
#include "lmforge/backend/cuda/cublaslt.h"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "lmforge/backend/cuda/cuda_common.h"

namespace lmf::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;
constexpr size_t kMaxCachedPlans = 4096;  // a safety valve against unbounded shape churn
constexpr int kMaxDevices = 64;

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLAS error: ", what, ": ", cublasLtGetStatusString(s));
}
#define LMF_CUBLAS_CHECK(expr) check_cublas((expr), #expr)

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    default: fail("matmul: CUDA GEMMs take f32, bf16 or f16, got ", dtype_name(t));
  }
}

bool allow_tf32() {
  static const bool on = [] {
    const char* v = std::getenv("LMF_ALLOW_TF32");
    return v && std::strcmp(v, "1") == 0;
  }();
  return on;
}

cublasComputeType_t compute_type(DType ab) {
  return (ab == DType::f32 && allow_tf32()) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

// Largest power of two <= 16 dividing the address (and, for batches, the batch stride).
uint32_t alignment(const void* p, int64_t stride_bytes) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p) | uintptr_t(stride_bytes);
  uint32_t al = 1;
  while (al < 16 && a % (al * 2) == 0) al *= 2;
  return al;
}

// Stored column-major shapes of cuBLAS's operands (see the file comment).
struct ColMajor {
  int64_t rows, cols;
  int64_t ld() const { return rows > 1 ? rows : 1; }
};
ColMajor cublas_a(const GemmProblem& p) { return p.trans_b ? ColMajor{p.K, p.N} : ColMajor{p.N, p.K}; }
ColMajor cublas_b(const GemmProblem& p) { return p.trans_a ? ColMajor{p.M, p.K} : ColMajor{p.K, p.M}; }
ColMajor cublas_c(const GemmProblem& p) { return {p.N, p.M}; }

struct PlanKey {
  int64_t M, N, K, batch;
  bool ta, tb, bias, tf32;
  DType ab, c;
  uint32_t align_a, align_b, align_c;
  bool operator==(const PlanKey&) const = default;
};
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(uint64_t(k.M));
    mix(uint64_t(k.N));
    mix(uint64_t(k.K));
    mix(uint64_t(k.batch));
    mix(uint64_t(k.ta) | uint64_t(k.tb) << 1 | uint64_t(k.bias) << 2 | uint64_t(k.tf32) << 3);
    mix(uint64_t(k.ab) | uint64_t(k.c) << 8);
    mix(uint64_t(k.align_a) | uint64_t(k.align_b) << 8 | uint64_t(k.align_c) << 16);
    return h;
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;

  void destroy() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
  }
};

struct DeviceContext {
  std::mutex mu;
  bool ready = false;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
};

// Deliberately leaked (handles must not be destroyed after the driver shuts down at exit).
DeviceContext& context_locked(std::unique_lock<std::mutex>& lock) {
  static auto* all = new std::array<DeviceContext, kMaxDevices>();
  int dev = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&dev));
  LMF_CHECK(dev >= 0 && dev < kMaxDevices);
  DeviceContext& d = (*all)[size_t(dev)];
  lock = std::unique_lock<std::mutex>(d.mu);
  if (!d.ready) {
    LMF_CUBLAS_CHECK(cublasLtCreate(&d.lt));
    LMF_CUBLAS_CHECK(cublasCreate(&d.blas));
    LMF_CUDA_CHECK(cudaMalloc(&d.workspace, kWorkspaceBytes));
    d.ready = true;
  }
  return d;
}

cublasLtMatrixLayout_t make_layout(DType t, ColMajor m, int64_t batch) {
  cublasLtMatrixLayout_t l = nullptr;
  LMF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(t), uint64_t(m.rows), uint64_t(m.cols), m.ld()));
  if (batch > 1) {
    int32_t count = int32_t(batch);
    int64_t stride = m.rows * m.cols;
    LMF_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    LMF_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
  return l;
}

Plan make_plan(DeviceContext& d, const GemmProblem& p, const PlanKey& k) {
  Plan plan;
  LMF_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, compute_type(p.ab), CUDA_R_32F));
  cublasOperation_t opa = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS's A is our B
  cublasOperation_t opb = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  LMF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
  LMF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
  if (k.bias) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;  // bias length = rows of D = our N
    LMF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  }
  plan.a = make_layout(p.ab, cublas_a(p), p.batch);
  plan.b = make_layout(p.ab, cublas_b(p), p.batch);
  plan.c = make_layout(p.c, cublas_c(p), p.batch);

  cublasLtMatmulPreference_t pref = nullptr;
  LMF_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  // cuBLAS's A/B are our B/A: swap the alignments accordingly.
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k.align_b, sizeof k.align_b);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k.align_a, sizeof k.align_a);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k.align_c, sizeof k.align_c);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k.align_c, sizeof k.align_c);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(d.lt, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan.algo = result.algo;
    plan.has_algo = true;
  } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
    plan.destroy();
    check_cublas(st, "cublasLtMatmulAlgoGetHeuristic");
  }
  return plan;
}

}  // namespace

bool bias_epilogue_ok(const void* bias) { return reinterpret_cast<uintptr_t>(bias) % 16 == 0; }

bool gemm_lt(const GemmProblem& p, const void* A, const void* B, void* C, const void* bias, float alpha, float beta) {
  const int64_t ab_size = int64_t(dtype_size(p.ab)), c_size = int64_t(dtype_size(p.c));
  const bool batched = p.batch > 1;
  PlanKey key{p.M,
              p.N,
              p.K,
              p.batch,
              p.trans_a,
              p.trans_b,
              bias != nullptr,
              p.ab == DType::f32 && allow_tf32(),
              p.ab,
              p.c,
              alignment(A, batched ? p.M * p.K * ab_size : 0),
              alignment(B, batched ? p.K * p.N * ab_size : 0),
              alignment(C, batched ? p.M * p.N * c_size : 0)};
  std::unique_lock<std::mutex> lock;
  DeviceContext& d = context_locked(lock);
  auto it = d.plans.find(key);
  if (it == d.plans.end()) {
    if (d.plans.size() >= kMaxCachedPlans) {
      for (auto& [k, plan] : d.plans) plan.destroy();
      d.plans.clear();
    }
    it = d.plans.emplace(key, make_plan(d, p, key)).first;
  }
  Plan& plan = it->second;
  if (!plan.has_algo) return false;
  if (bias)
    LMF_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  LMF_CUBLAS_CHECK(cublasLtMatmul(d.lt, plan.desc, &alpha, B, plan.a, A, plan.b, &beta, C, plan.c, C, plan.c,
                                  &plan.algo, d.workspace, kWorkspaceBytes, current_stream()));
  return true;
}

void gemm_fallback(const GemmProblem& p, const void* A, const void* B, void* C, float alpha, float beta) {
  const ColMajor ca = cublas_a(p), cb = cublas_b(p), cc = cublas_c(p);
  if (p.M > INT32_MAX || p.N > INT32_MAX || p.K > INT32_MAX || p.batch > INT32_MAX)
    fail("matmul: dimensions [", p.M, ", ", p.N, ", ", p.K, "] exceed the cuBLAS fallback's 32-bit limit");
  std::unique_lock<std::mutex> lock;
  DeviceContext& d = context_locked(lock);
  LMF_CUBLAS_CHECK(cublasSetStream(d.blas, current_stream()));
  LMF_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      d.blas, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(p.N), int(p.M),
      int(p.K), &alpha, B, cuda_type(p.ab), int(ca.ld()), ca.rows * ca.cols, A, cuda_type(p.ab), int(cb.ld()),
      cb.rows * cb.cols, &beta, C, cuda_type(p.c), int(cc.ld()), cc.rows * cc.cols, int(p.batch),
      compute_type(p.ab), CUBLAS_GEMM_DEFAULT));
}

}  // namespace lmf::cuda
