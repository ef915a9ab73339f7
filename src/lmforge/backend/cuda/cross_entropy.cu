// CUDA: fused, chunked cross-entropy over logits = h W^T + b (contract in kernel_list.inc; the
// bias b is optional). The algorithm is the CPU reference's (backend/cpu/cross_entropy.cc), tile
// by tile:
//  forward   z_target[n] = h[n] . W[t_n] + b[t_n]              (target_logit_kernel, one warp/row)
//            per tile: Z = h[rows] W[chunk]^T -> fp32 scratch   (cublasGemmEx, bf16 in, fp32 out)
//                      add b[chunk] and fold Z into the running (max, sum exp, #greater) per row
//                      (tile_stats_kernel: the bias is read where the tile is, never stored)
//            lse, row loss, top-k hit counts                    (finalize_kernel)
//  backward  per tile: Z again; Z + b -> dZ = w (softmax - onehot) in place, stored in the input
//            dtype (tile_dlogits_kernel); dh_acc (+)= g dZ W[chunk]; dW_acc[chunk] += g dZ^T h[rows];
//            dbias_acc[chunk] += g column sums of dZ (deterministic column reduction,
//            column_reduce.cuh) (the upstream scale g enters as the GEMMs' alpha).
//
// Tiles (backend/cross_entropy_chunks.h overrides them): rows = min(N, 4096); vocab =
// min(V, clamp(128 MiB / (4 rows), 2048, 32768)), so 8192 for N >= 4096. Scratch: the fp32 tile
// (<= 128 MiB by default), plus in the backward an fp32 dh accumulator [rows, H] for bf16/f16
// (16 MiB at H = 1024), plus O(N) per-row state. GEMMs use cuBLAS (cublasGemmEx, fp32 compute,
// no TF32) on this thread's handle bound to current_stream().
//
// Top-k ties count in the target's favour (strictly greater); the target's own tile entry is
// skipped by index, as on the CPU. Targets outside [0, V) are treated as ignored here (the ops
// layer has already rejected them). dh or dW_acc may be undefined (that GEMM is skipped).
#include <cublas_v2.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "lmforge/backend/cross_entropy_chunks.h"
#include "lmforge/backend/cuda/column_reduce.cuh"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

constexpr int kRowThreads = 256;  // one block per row in the tile kernels
constexpr int kPerThread = 8;     // consecutive elements per thread in tile_dlogits_kernel
constexpr int64_t kDefaultRows = 4096;
constexpr int64_t kTileBytes = int64_t(128) << 20;
constexpr unsigned kFullMask = 0xffffffffu;

// ---- cuBLAS --------------------------------------------------------------------------------

void check_cublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) fail("cross_entropy: cuBLAS ", what, " failed: ", cublasGetStatusString(st));
}

// This thread's cuBLAS handle for the current device, bound to current_stream(). Handles live
// until the process exits (destroying them at thread exit could outlive the CUDA context).
cublasHandle_t cublas_handle() {
  thread_local std::vector<cublasHandle_t> handles;
  int dev = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&dev));
  if (handles.size() <= size_t(dev)) handles.resize(size_t(dev) + 1, nullptr);
  if (!handles[size_t(dev)]) check_cublas(cublasCreate(&handles[size_t(dev)]), "cublasCreate");
  check_cublas(cublasSetStream(handles[size_t(dev)], current_stream()), "cublasSetStream");
  return handles[size_t(dev)];
}

template <class T>
constexpr cudaDataType_t cuda_type();
template <>
constexpr cudaDataType_t cuda_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t cuda_type<__nv_bfloat16>() {
  return CUDA_R_16BF;
}
template <>
constexpr cudaDataType_t cuda_type<__half>() {
  return CUDA_R_16F;
}

// Column-major C[m, n] = alpha op(A) op(B) + beta C, fp32 compute; C is fp32.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, float alpha, const void* A,
          cudaDataType_t ab_type, int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_cublas(cublasGemmEx(cublas_handle(), ta, tb, int(m), int(n), int(k), &alpha, A, ab_type, int(lda), B, ab_type,
                            int(ldb), &beta, C, CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

// ---- tiles ---------------------------------------------------------------------------------

struct Tiles {
  int64_t rows, vocab, ld;  // ld: row stride of the fp32 tile, a multiple of 8 (32-byte rows)
};

Tiles tiles_for(int64_t N, int64_t V) {
  const CrossEntropyChunks c = cross_entropy_chunks();
  Tiles t;
  t.rows = std::max<int64_t>(1, std::min(c.rows > 0 ? c.rows : kDefaultRows, N));
  const int64_t auto_vocab = std::clamp<int64_t>(kTileBytes / (4 * t.rows), 2048, 32768);
  t.vocab = std::max<int64_t>(1, std::min(c.vocab > 0 ? c.vocab : auto_vocab, V));
  t.ld = (t.vocab + 7) / 8 * 8;
  return t;
}

// The whole [N, V] matrix as one tile when the caller passes an f32 logits buffer [N, ld].
Tiles tiles_or_whole(int64_t N, int64_t V, const Tensor& logits) {
  if (!logits.defined()) return tiles_for(N, V);
  LMF_CHECK(logits.dtype() == DType::f32 && logits.is_contiguous() && N > 0 && logits.numel() % N == 0,
            "cross_entropy: the logits buffer must be f32 [N, ld]");
  const int64_t ld = logits.numel() / N;
  LMF_CHECK(ld >= V && ld % 8 == 0, "cross_entropy: the logits buffer's row length must be >= V and a multiple of 8");
  return {N, V, ld};
}

// ---- device helpers ------------------------------------------------------------------------

// Merges the log-sum-exp state (m2, s2) into (m, s): s = sum exp(z - m) over both sets.
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;  // both empty
  s = s * __expf(m - mn) + s2 * __expf(m2 - mn);
  m = mn;
}

// Block-wide merge of every thread's (m, s, cnt); the result is valid in thread 0.
__device__ void block_reduce_stats(float& m, float& s, int& cnt) {
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(kFullMask, m, off), s2 = __shfl_xor_sync(kFullMask, s, off);
    lse_merge(m, s, m2, s2);
    cnt += __shfl_xor_sync(kFullMask, cnt, off);
  }
  __shared__ float sh_m[32], sh_s[32];
  __shared__ int sh_c[32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sh_m[warp] = m, sh_s[warp] = s, sh_c[warp] = cnt;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < int(blockDim.x / 32); w++) {
      lse_merge(m, s, sh_m[w], sh_s[w]);
      cnt += sh_c[w];
    }
}

template <class I>
__device__ __forceinline__ bool valid_target(I t, int64_t V) {
  return int64_t(t) >= 0 && int64_t(t) < V;
}

// Eight consecutive floats as T at p (16-byte aligned for 2-byte T, 32-byte for float).
template <class T>
__device__ __forceinline__ void store8(T* p, const float* d) {
  if constexpr (std::is_same_v<T, float>) {
    reinterpret_cast<float4*>(p)[0] = make_float4(d[0], d[1], d[2], d[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(d[4], d[5], d[6], d[7]);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 v[4];
    for (int j = 0; j < 4; j++) v[j] = __floats2bfloat162_rn(d[2 * j], d[2 * j + 1]);
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(v);
  } else {
    __half2 v[4];
    for (int j = 0; j < 4; j++) v[j] = __floats2half2_rn(d[2 * j], d[2 * j + 1]);
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(v);
  }
}

// ---- kernels -------------------------------------------------------------------------------

// z_target[n] = h[n] . W[t_n] (+ bias[t_n]) in fp32 (0 for ignored rows). One warp per row.
template <class T, class I>
__global__ void target_logit_kernel(const T* __restrict__ h, const T* __restrict__ W, const T* __restrict__ bias,
                                    const I* __restrict__ targets, int64_t N, int64_t H, int64_t V,
                                    float* __restrict__ z_target) {
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (n >= N) return;  // whole warps leave together
  const I t = targets[n];
  float acc = 0.f;
  if (valid_target(t, V)) {
    const T* hr = h + n * H;
    const T* wr = W + int64_t(t) * H;
    for (int64_t k = lane; k < H; k += 32) acc += to_f(hr[k]) * to_f(wr[k]);
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(kFullMask, acc, off);
  if (lane == 0) z_target[n] = bias && valid_target(t, V) ? acc + to_f(bias[int64_t(t)]) : acc;
}

// Folds one fp32 tile row (vc logits of row n = r0 + blockIdx.x, vocabulary from v0, plus
// bias[v0 + c] when bias is given) into the row's running max / sum of exp / count of logits
// above the target. One block per row.
template <class T, class I>
__global__ void __launch_bounds__(kRowThreads)
    tile_stats_kernel(const float* __restrict__ tile, int64_t ld, int64_t vc, int64_t r0, int64_t v0, int64_t V,
                      const T* __restrict__ bias, const I* __restrict__ targets, const float* __restrict__ z_target, float* __restrict__ run_max,
                      float* __restrict__ run_sum, int* __restrict__ greater, bool first, bool want_topk) {
  const int64_t n = r0 + blockIdx.x;
  const float* z = tile + int64_t(blockIdx.x) * ld;
  const I t = targets[n];
  const bool count = want_topk && valid_target(t, V);
  const int64_t own = int64_t(t) - v0;  // the target's column in this tile (may be outside)
  const float zt = z_target[n];
  float m = -INFINITY, s = 0.f;
  int cnt = 0;
  // Four logits at a time: one rescale of the running sum per float4 (rows are 32-byte aligned).
  const int64_t vc4 = vc / 4;
  for (int64_t i = threadIdx.x; i < vc4; i += blockDim.x) {
    float4 q = reinterpret_cast<const float4*>(z)[i];
    if (bias) {
      const T* b = bias + v0 + 4 * i;
      q.x += to_f(b[0]), q.y += to_f(b[1]), q.z += to_f(b[2]), q.w += to_f(b[3]);
    }
    const float mx = fmaxf(fmaxf(q.x, q.y), fmaxf(q.z, q.w));
    const float mn = fmaxf(m, mx);
    s = s * __expf(m - mn) + (__expf(q.x - mn) + __expf(q.y - mn)) + (__expf(q.z - mn) + __expf(q.w - mn));
    m = mn;
    if (count) {
      const int64_t c = 4 * i;
      cnt +=
          (q.x > zt && c != own) + (q.y > zt && c + 1 != own) + (q.z > zt && c + 2 != own) + (q.w > zt && c + 3 != own);
    }
  }
  for (int64_t c = vc4 * 4 + threadIdx.x; c < vc; c += blockDim.x) {
    const float x = bias ? z[c] + to_f(bias[v0 + c]) : z[c];
    lse_merge(m, s, x, 1.f);
    if (count) cnt += (x > zt && c != own);
  }
  block_reduce_stats(m, s, cnt);
  if (threadIdx.x == 0) {
    if (!first) {
      lse_merge(m, s, run_max[n], run_sum[n]);
      cnt += greater[n];
    }
    run_max[n] = m;
    run_sum[n] = s;
    greater[n] = cnt;
  }
}

// lse, per-row loss and the top-k hit counts (hits: [3] u64, zeroed before, may be null).
template <class I>
__global__ void finalize_kernel(int64_t N, int64_t V, const I* __restrict__ targets, const float* __restrict__ weights,
                                const float* __restrict__ z_target, const float* __restrict__ run_max,
                                const float* __restrict__ run_sum, const int* __restrict__ greater,
                                float* __restrict__ lse, float* __restrict__ row_loss, unsigned long long* hits) {
  unsigned int local[3] = {0, 0, 0};
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < N; n += int64_t(gridDim.x) * blockDim.x) {
    const float l = run_max[n] + logf(run_sum[n]);
    lse[n] = l;
    const bool valid = valid_target(targets[n], V);
    row_loss[n] = valid ? (weights ? weights[n] : 1.f) * (l - z_target[n]) : 0.f;
    if (hits && valid) {
      const int g = greater[n];
      local[0] += g < 1;
      local[1] += g < 3;
      local[2] += g < 10;
    }
  }
  if (!hits) return;
  __shared__ unsigned int block_hits[3];
  if (threadIdx.x < 3) block_hits[threadIdx.x] = 0;
  __syncthreads();
  for (int j = 0; j < 3; j++) {
    unsigned int v = local[j];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
    if (threadIdx.x % 32 == 0 && v) atomicAdd(&block_hits[j], v);
  }
  __syncthreads();
  if (threadIdx.x < 3 && block_hits[threadIdx.x])
    atomicAdd(&hits[threadIdx.x], (unsigned long long)block_hits[threadIdx.x]);
}

// Turns one fp32 tile row into dZ = scale w (exp(z + b - lse) - [column = target]), stored as T in
// place: element c of the T row starts at byte c * sizeof(T) of the fp32 row. The row is swept in
// passes of blockDim * 8 elements; within a pass every thread reads before any thread writes
// (barrier), and the writes of the pass ending at element e land below byte e * sizeof(T), i.e.
// only over floats already read. `scale` (dz_store_scale) is undone by the GEMMs' alpha, which
// also carries the upstream gradient. One block per row.
template <class T, class I>
__global__ void __launch_bounds__(kRowThreads)
    tile_dlogits_kernel(float* __restrict__ tile, int64_t ld, int64_t vc, int64_t r0, int64_t v0, int64_t V,
                        const T* __restrict__ bias, const I* __restrict__ targets, const float* __restrict__ weights, const float* __restrict__ lse,
                        float scale) {
  const int64_t n = r0 + blockIdx.x;
  float* z = tile + int64_t(blockIdx.x) * ld;
  T* out = reinterpret_cast<T*>(z);
  const I t = targets[n];
  const bool valid = valid_target(t, V);
  const float coef = valid ? scale * (weights ? weights[n] : 1.f) : 0.f;
  const int64_t own = valid ? int64_t(t) - v0 : -1;
  const float l = lse[n];
  const int64_t pass = int64_t(blockDim.x) * kPerThread;
  for (int64_t base = 0; base < vc; base += pass) {
    const int64_t c0 = base + int64_t(threadIdx.x) * kPerThread;
    const bool full = c0 + kPerThread <= vc;
    float d[kPerThread];
    if (full) {
      const float4 a = reinterpret_cast<const float4*>(z + c0)[0], b = reinterpret_cast<const float4*>(z + c0)[1];
      d[0] = a.x, d[1] = a.y, d[2] = a.z, d[3] = a.w, d[4] = b.x, d[5] = b.y, d[6] = b.z, d[7] = b.w;
    } else {
      for (int j = 0; j < kPerThread; j++) d[j] = c0 + j < vc ? z[c0 + j] : 0.f;
    }
    if (bias)
      for (int j = 0; j < kPerThread; j++)
        if (c0 + j < vc) d[j] += to_f(bias[v0 + c0 + j]);
#pragma unroll
    for (int j = 0; j < kPerThread; j++)
      d[j] = coef == 0.f ? 0.f : coef * (__expf(d[j] - l) - (c0 + j == own ? 1.f : 0.f));
    if constexpr (sizeof(T) < sizeof(float)) __syncthreads();
    if (full) {
      store8(out + c0, d);
    } else {
      for (int j = 0; j < kPerThread; j++)
        if (c0 + j < vc) out[c0 + j] = from_f<T>(d[j]);
    }
  }
}

// Element (r, c) of the stored dZ tile times `scale`, for the bias-gradient column reduction.
template <class T>
struct ScaledTileElem {
  const T* dz;
  int64_t ld;  // row stride in T elements
  float scale;
  __device__ void operator()(int64_t r, int64_t c, float (&out)[1]) const { out[0] = scale * to_f(dz[r * ld + c]); }
};

template <class T>
__global__ void cast_f32_kernel(const float* __restrict__ src, T* __restrict__ dst, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_f<T>(src[i]);
}

// ---- host side -----------------------------------------------------------------------------

// dZ is stored pre-multiplied by this factor. Probabilities are ~1/V (4e-6 at V = 256k): fine in
// bf16 (fp32's exponent range) but subnormal in f16 (normal from 6.1e-5), so f16 stores 256 dZ
// (|dZ| <= 256 w stays far below f16's 65504 for weights up to 255).
template <class T>
constexpr float dz_store_scale() {
  return std::is_same_v<T, __half> ? 256.f : 1.f;
}

template <class F>
void dispatch_index(DType t, F&& f) {
  if (t == DType::i32)
    f.template operator()<int32_t>();
  else if (t == DType::i64)
    f.template operator()<int64_t>();
  else
    fail("cross_entropy: targets must be i32 or i64, got ", dtype_name(t));
}

struct Sizes {
  int64_t N, H, V;
};

Sizes check_args(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                 const Tensor& weights) {
  LMF_CHECK(h.dim() == 2 && W.dim() == 2 && h.size(1) == W.size(1) && targets.numel() == h.size(0));
  LMF_CHECK(h.dtype() == W.dtype() && h.is_contiguous() && W.is_contiguous() && targets.is_contiguous());
  LMF_CHECK(!bias.defined() || (bias.dtype() == h.dtype() && bias.numel() == W.size(0) && bias.is_contiguous()));
  LMF_CHECK(!weights.defined() || (weights.dtype() == DType::f32 && weights.numel() == h.size(0)));
  return {h.size(0), h.size(1), W.size(0)};
}

const float* weights_ptr(const Tensor& w) { return w.defined() ? ptr<float>(w) : nullptr; }
template <class T>
const T* bias_ptr(const Tensor& b) {
  return b.defined() ? ptr<T>(b) : nullptr;
}

// Z[rows r0.., chunk v0..] = h W^T into the fp32 tile (column-major view: Z^T = W_chunk h_rows^T).
template <class T>
void tile_logits(const T* h, const T* W, int64_t H, int64_t r0, int64_t rb, int64_t v0, int64_t vc, float* tile,
                 int64_t ld) {
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, vc, rb, H, 1.f, W + v0 * H, cuda_type<T>(), H, h + r0 * H, H, 0.f, tile, ld);
}

}  // namespace

void cross_entropy_forward(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                           const Tensor& weights, const Tensor& lse, const Tensor& row_loss, const Tensor& topk_hits,
                           const Tensor& logits) {
  const Sizes sz = check_args(h, W, bias, targets, weights);
  LMF_CHECK(lse.dtype() == DType::f32 && row_loss.dtype() == DType::f32 && lse.numel() == sz.N &&
            row_loss.numel() == sz.N);
  LMF_CHECK(!topk_hits.defined() || (topk_hits.dtype() == DType::i64 && topk_hits.numel() == 3));
  const bool want_topk = topk_hits.defined();
  cudaStream_t stream = current_stream();
  if (want_topk) LMF_CUDA_CHECK(cudaMemsetAsync(topk_hits.data_ptr(), 0, 3 * sizeof(int64_t), stream));
  if (sz.N == 0) return;
  const Tiles tl = tiles_or_whole(sz.N, sz.V, logits);
  const Device dev = h.device();
  Tensor z_target = Tensor::empty({sz.N}, DType::f32, dev);
  Tensor run_max = Tensor::empty({sz.N}, DType::f32, dev), run_sum = Tensor::empty({sz.N}, DType::f32, dev);
  Tensor greater = Tensor::empty({sz.N}, DType::i32, dev);
  Tensor tile = logits.defined() ? logits : Tensor::empty({tl.rows * tl.ld}, DType::f32, dev);

  dispatch_floating(h.dtype(), "cross_entropy_forward", [&]<class T>() {
    dispatch_index(targets.dtype(), [&]<class I>() {
      const T* ph = ptr<T>(h);
      const T* pw = ptr<T>(W);
      const I* pt = ptr<I>(targets);
      const T* pb = bias_ptr<T>(bias);
      const int warps_per_block = 8;
      target_logit_kernel<T, I>
          <<<unsigned((sz.N + warps_per_block - 1) / warps_per_block), 32 * warps_per_block, 0, stream>>>(
              ph, pw, pb, pt, sz.N, sz.H, sz.V, ptr<float>(z_target));
      LMF_CUDA_CHECK_LAUNCH();
      for (int64_t r0 = 0; r0 < sz.N; r0 += tl.rows) {
        const int64_t rb = std::min(tl.rows, sz.N - r0);
        for (int64_t v0 = 0; v0 < sz.V; v0 += tl.vocab) {
          const int64_t vc = std::min(tl.vocab, sz.V - v0);
          tile_logits<T>(ph, pw, sz.H, r0, rb, v0, vc, ptr<float>(tile), tl.ld);
          tile_stats_kernel<T, I><<<unsigned(rb), kRowThreads, 0, stream>>>(
              ptr<float>(tile), tl.ld, vc, r0, v0, sz.V, pb, pt, ptr<float>(z_target), ptr<float>(run_max),
              ptr<float>(run_sum), ptr<int>(greater), v0 == 0, want_topk);
          LMF_CUDA_CHECK_LAUNCH();
        }
      }
      finalize_kernel<I><<<blocks_for(sz.N), 256, 0, stream>>>(
          sz.N, sz.V, pt, weights_ptr(weights), ptr<float>(z_target), ptr<float>(run_max), ptr<float>(run_sum),
          ptr<int>(greater), ptr<float>(lse), ptr<float>(row_loss),
          want_topk ? static_cast<unsigned long long*>(topk_hits.data_ptr()) : nullptr);
      LMF_CUDA_CHECK_LAUNCH();
    });
  });
}

void cross_entropy_backward(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                            const Tensor& weights, const Tensor& lse, float grad_scale, const Tensor& dh,
                            const Tensor& dW_acc, const Tensor& dbias_acc, const Tensor& logits) {
  const Sizes sz = check_args(h, W, bias, targets, weights);
  LMF_CHECK(lse.dtype() == DType::f32 && lse.numel() == sz.N);
  LMF_CHECK(!dh.defined() || (dh.dtype() == h.dtype() && dh.numel() == h.numel() && dh.is_contiguous()));
  LMF_CHECK(!dW_acc.defined() ||
            (dW_acc.dtype() == DType::f32 && dW_acc.numel() == W.numel() && dW_acc.is_contiguous()));
  LMF_CHECK(!dbias_acc.defined() ||
            (dbias_acc.dtype() == DType::f32 && dbias_acc.numel() == sz.V && dbias_acc.is_contiguous()));
  if (sz.N == 0 || (!dh.defined() && !dW_acc.defined() && !dbias_acc.defined())) return;
  const Tiles tl = tiles_or_whole(sz.N, sz.V, logits);
  const Device dev = h.device();
  cudaStream_t stream = current_stream();
  // With the forward's whole-matrix buffer the logits are read back, not recomputed.
  const bool cached = logits.defined();
  Tensor tile = cached ? logits : Tensor::empty({tl.rows * tl.ld}, DType::f32, dev);

  dispatch_floating(h.dtype(), "cross_entropy_backward", [&]<class T>() {
    dispatch_index(targets.dtype(), [&]<class I>() {
      constexpr bool widen = !std::is_same_v<T, float>;
      const T* ph = ptr<T>(h);
      const T* pw = ptr<T>(W);
      const I* pt = ptr<I>(targets);
      T* pdh = dh.defined() ? ptr<T>(dh) : nullptr;
      float* pdw = dW_acc.defined() ? ptr<float>(dW_acc) : nullptr;
      float* pdb = dbias_acc.defined() ? ptr<float>(dbias_acc) : nullptr;
      const T* pb = bias_ptr<T>(bias);
      // dh of a row block accumulates over the vocabulary chunks in fp32, then is stored once.
      Tensor dh_acc = widen && pdh ? Tensor::empty({tl.rows * sz.H}, DType::f32, dev) : Tensor();
      const T* dz = reinterpret_cast<const T*>(ptr<float>(tile));
      const int64_t ldz = tl.ld * int64_t(sizeof(float) / sizeof(T));  // dZ row stride in T elements
      const float store_scale = dz_store_scale<T>(), alpha = grad_scale / store_scale;
      for (int64_t r0 = 0; r0 < sz.N; r0 += tl.rows) {
        const int64_t rb = std::min(tl.rows, sz.N - r0);
        float* acc = nullptr;
        if (pdh) acc = widen ? ptr<float>(dh_acc) : reinterpret_cast<float*>(pdh + r0 * sz.H);
        for (int64_t v0 = 0; v0 < sz.V; v0 += tl.vocab) {
          const int64_t vc = std::min(tl.vocab, sz.V - v0);
          if (!cached) tile_logits<T>(ph, pw, sz.H, r0, rb, v0, vc, ptr<float>(tile), tl.ld);
          tile_dlogits_kernel<T, I><<<unsigned(rb), kRowThreads, 0, stream>>>(
              ptr<float>(tile), tl.ld, vc, r0, v0, sz.V, pb, pt, weights_ptr(weights), ptr<float>(lse), store_scale);
          LMF_CUDA_CHECK_LAUNCH();
          // Column-major: dh_rows^T [H, rb] (+)= W_chunk^T [H, vc] . dZ^T [vc, rb].
          if (acc)
            gemm(CUBLAS_OP_N, CUBLAS_OP_N, sz.H, rb, vc, alpha, pw + v0 * sz.H, cuda_type<T>(), sz.H, dz, ldz,
                 v0 == 0 ? 0.f : 1.f, acc, sz.H);
          // Column-major: dW_chunk^T [H, vc] += h_rows^T [H, rb] . dZ [rb, vc].
          if (pdw)
            gemm(CUBLAS_OP_N, CUBLAS_OP_T, sz.H, vc, rb, alpha, ph + r0 * sz.H, cuda_type<T>(), sz.H, dz, ldz, 1.f,
                 pdw + v0 * sz.H, sz.H);
          // dbias_chunk += alpha * column sums of dZ [rb, vc] (row stride ldz).
          if (pdb)
            column_reduce_acc<1>(rb, vc, ScaledTileElem<T>{dz, ldz, alpha}, ColumnTargets<1>{{pdb + v0}}, dev);
        }
        if constexpr (widen) {
          if (pdh) {
            cast_f32_kernel<T><<<blocks_for(rb * sz.H), 256, 0, stream>>>(acc, pdh + r0 * sz.H, rb * sz.H);
            LMF_CUDA_CHECK_LAUNCH();
          }
        }
      }
    });
  });
}

}  // namespace lmf::cuda
