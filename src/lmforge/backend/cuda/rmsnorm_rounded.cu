// CUDA RMSNorm of an fp32 residual read as bf16, the Mamba block norm (rmsnorm_rounded_forward /
// _backward; contracts in backend/kernel_list.inc, the CPU reference backend/cpu/norm.cc is the
// specification). The residual add that ends the previous block is fused into the forward (s =
// x + h written while the row is read), and the backward writes, in the same pass over a row, the
// residual's gradient, the block output's bf16 copy of it and the weight gradient's partial sums:
// at the block boundary this replaces an add, a norm, a cast and a column reduction (Mamba-1.4B,
// 8192 tokens: 42 -> 28 bytes moved per element).
//  - Packed rows (4-element packs: 16-byte f32, 8-byte bf16 accesses) of up to 8192 elements: a
//    block of up to 256 threads per row, each thread holding PPT packs of the row in registers, so
//    every element is read from memory once. The backward's blocks walk a contiguous run of rows
//    with the weight and their columns' weight-gradient sums in registers (each column belongs to
//    one thread), write one partial row per block, and column_reduce_acc adds the partial rows
//    in row order: deterministic (the order depends on the shape and the SM count only).
//  - Other rows (a length not a multiple of 4, unaligned views, longer rows): one warp per row,
//    re-reading the row, and the weight gradient by a column reduction re-reading x and dy.
#include <algorithm>
#include <atomic>

#include "lmforge/backend/cuda/column_reduce.cuh"
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

using bf16_t = __nv_bfloat16;
constexpr int kWarps = 8;          // rows per block of the warp-per-row kernels
constexpr int kRowThreads = 256;   // most threads of a block-per-row kernel

__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

// ---- warp per row (any row) -------------------------------------------------------------------

// s = x + h (when h), y = bf16(bf16(s) * rstd) * w, rstd = 1 / sqrt(mean(bf16(s)^2) + eps).
template <int VEC>
__global__ void __launch_bounds__(kWarps * 32)
    rounded_forward_kernel(const float* x, const bf16_t* h, const bf16_t* w, float* s, bf16_t* y, float* rstd,
                           int64_t N, int64_t C, float eps) {
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t packs = C / VEC, off = row * C;
  const float* src = h ? s + off : x + off;  // what the norm reads: the sum, once written
  float q = 0.f;
  for (int64_t p = lane; p < packs; p += 32) {
    float v[VEC];
    load_pack<VEC>(x + off, p * VEC, v);
    if (h) {
      float hv[VEC];
      load_pack<VEC>(h + off, p * VEC, hv);
#pragma unroll
      for (int k = 0; k < VEC; k++) v[k] += hv[k];
      store_pack<VEC>(s + off, p * VEC, v);
    }
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      const float r = round_bf16(v[k]);
      q += r * r;
    }
  }
  const float rs = rsqrtf(warp_reduce(q, SumOp{}) / float(C) + eps);
  if (lane == 0) rstd[row] = rs;
  for (int64_t p = lane; p < packs; p += 32) {  // this lane's own s elements: no fence needed
    float v[VEC], wv[VEC];
    load_pack<VEC>(src, p * VEC, v);
    load_pack<VEC>(w, p * VEC, wv);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = round_bf16(round_bf16(v[k]) * rs) * wv[k];
    store_pack<VEC>(y + off, p * VEC, v);
  }
}

struct BackwardArgs {
  const float* x;  // what the norm read (s when the add was fused)
  const bf16_t* w;
  const float* rstd;
  const bf16_t* dy;
  const float* ds;  // may be null
  float* dx;        // may be null
  bool accumulate;
  bf16_t* dh;       // may be null
  float* dw_part;   // [gridDim.x, C] partial rows (block-per-row kernel), or null
  int64_t N, C, rows_per_block;
};

// The gradient of one group of values: t = bf16(rs * dy * w - bf16(x) * kc), plus ds; stores dh and
// dx (added into the old dx when accumulating) at `off + i`.
template <int VEC>
__device__ __forceinline__ void backward_values(const BackwardArgs& a, int64_t i, float rs, float kc,
                                                const float (&xv)[VEC], const float (&wv)[VEC],
                                                const float (&dv)[VEC], const float (&sv)[VEC]) {
  float t[VEC];
#pragma unroll
  for (int k = 0; k < VEC; k++) t[k] = round_bf16(rs * (dv[k] * wv[k]) - round_bf16(xv[k]) * kc);
  if (a.ds) {  // the residual path's gradient first, as the tape adds them
#pragma unroll
    for (int k = 0; k < VEC; k++) t[k] = sv[k] + t[k];
  }
  if (a.dh) store_pack<VEC>(a.dh, i, t);
  if (a.dx) {
    if (a.accumulate) {
      float old[VEC];
      load_pack<VEC>(a.dx, i, old);
#pragma unroll
      for (int k = 0; k < VEC; k++) t[k] = old[k] + t[k];
    }
    store_pack<VEC>(a.dx, i, t);
  }
}

// dx / dh of rows [blockIdx.x * kWarps, +kWarps), one per warp (no weight gradient).
template <int VEC>
__global__ void __launch_bounds__(kWarps * 32) rounded_backward_kernel(BackwardArgs a) {
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= a.N) return;
  const int lane = threadIdx.x & 31;
  const int64_t C = a.C, packs = C / VEC, off = row * C;
  const float rs = a.rstd[row];
  float sum = 0.f;
  for (int64_t p = lane; p < packs; p += 32) {
    float xv[VEC], wv[VEC], dv[VEC];
    load_pack<VEC>(a.x + off, p * VEC, xv);
    load_pack<VEC>(a.w, p * VEC, wv);
    load_pack<VEC>(a.dy + off, p * VEC, dv);
#pragma unroll
    for (int k = 0; k < VEC; k++) sum += dv[k] * wv[k] * round_bf16(xv[k]);
  }
  const float kc = rs * rs * rs * warp_reduce(sum, SumOp{}) / float(C);
  for (int64_t p = lane; p < packs; p += 32) {
    float xv[VEC], wv[VEC], dv[VEC], sv[VEC] = {};
    load_pack<VEC>(a.x + off, p * VEC, xv);
    load_pack<VEC>(a.w, p * VEC, wv);
    load_pack<VEC>(a.dy + off, p * VEC, dv);
    if (a.ds) load_pack<VEC>(a.ds + off, p * VEC, sv);
    backward_values<VEC>(a, off + p * VEC, rs, kc, xv, wv, dv, sv);
  }
}

// ---- block per row (packed rows up to kRowThreads * PPT packs) --------------------------------
// Thread t holds packs t + j * blockDim.x, j < PPT (coalesced), of its block's row.

template <int PPT>
__global__ void __launch_bounds__(kRowThreads)
    rounded_forward_rows_kernel(const float* x, const bf16_t* h, const bf16_t* w, float* s, bf16_t* y, float* rstd,
                                int64_t C, float eps) {
  const int64_t off = int64_t(blockIdx.x) * C, packs = C / 4;
  float v[PPT][4];
  float q = 0.f;
#pragma unroll
  for (int j = 0; j < PPT; j++) {
    const int64_t p = threadIdx.x + j * blockDim.x;
    if (p >= packs) continue;
    load_pack<4>(x + off, p * 4, v[j]);
    if (h) {
      float hv[4];
      load_pack<4>(h + off, p * 4, hv);
#pragma unroll
      for (int k = 0; k < 4; k++) v[j][k] += hv[k];
      store_pack<4>(s + off, p * 4, v[j]);
    }
#pragma unroll
    for (int k = 0; k < 4; k++) {
      v[j][k] = round_bf16(v[j][k]);
      q += v[j][k] * v[j][k];
    }
  }
  const float rs = rsqrtf(row_sum(q) / float(C) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
#pragma unroll
  for (int j = 0; j < PPT; j++) {
    const int64_t p = threadIdx.x + j * blockDim.x;
    if (p >= packs) continue;
    float wv[4];
    load_pack<4>(w, p * 4, wv);
#pragma unroll
    for (int k = 0; k < 4; k++) v[j][k] = round_bf16(v[j][k] * rs) * wv[k];
    store_pack<4>(y + off, p * 4, v[j]);
  }
}

// Rows [blockIdx.x * rows_per_block, +rows_per_block) in order; the weight and the weight-gradient
// sums of the thread's columns stay in registers; one partial row per block into dw_part.
template <int PPT>
__global__ void __launch_bounds__(kRowThreads) rounded_backward_rows_kernel(BackwardArgs a) {
  const int64_t C = a.C, packs = C / 4;
  const int64_t r0 = int64_t(blockIdx.x) * a.rows_per_block;
  const int64_t r1 = std::min(a.N, r0 + a.rows_per_block);
  float wv[PPT][4], dw[PPT][4] = {};
#pragma unroll
  for (int j = 0; j < PPT; j++) {
    const int64_t p = threadIdx.x + j * blockDim.x;
    if (p < packs) load_pack<4>(a.w, p * 4, wv[j]);
  }
  for (int64_t row = r0; row < r1; row++) {  // uniform over the block: row_sum's barriers are safe
    const int64_t off = row * C;
    const float rs = a.rstd[row];
    float xv[PPT][4], dv[PPT][4], sv[PPT][4] = {};
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < PPT; j++) {
      const int64_t p = threadIdx.x + j * blockDim.x;
      if (p >= packs) continue;
      load_pack<4>(a.x + off, p * 4, xv[j]);
      load_pack<4>(a.dy + off, p * 4, dv[j]);
      if (a.ds) load_pack<4>(a.ds + off, p * 4, sv[j]);
#pragma unroll
      for (int k = 0; k < 4; k++) sum += dv[j][k] * wv[j][k] * round_bf16(xv[j][k]);
    }
    const float kc = rs * rs * rs * row_sum(sum) / float(C);
#pragma unroll
    for (int j = 0; j < PPT; j++) {
      const int64_t p = threadIdx.x + j * blockDim.x;
      if (p >= packs) continue;
#pragma unroll
      for (int k = 0; k < 4; k++) dw[j][k] += dv[j][k] * round_bf16(round_bf16(xv[j][k]) * rs);
      backward_values<4>(a, off + p * 4, rs, kc, xv[j], wv[j], dv[j], sv[j]);
    }
  }
  if (!a.dw_part) return;
#pragma unroll
  for (int j = 0; j < PPT; j++) {
    const int64_t p = threadIdx.x + j * blockDim.x;
    if (p < packs) store_pack<4>(a.dw_part + int64_t(blockIdx.x) * C, p * 4, dw[j]);
  }
}

// Element (r, c) of dw: dy times the value the weight multiplied, bf16(bf16(x) * rstd).
struct RoundedWeightGrad {
  const float* x;
  const bf16_t* dy;
  const float* rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&out)[1]) const {
    out[0] = __bfloat162float(dy[r * C + c]) * round_bf16(round_bf16(x[r * C + c]) * rstd[r]);
  }
};

// Element (r, c) of the partial rows.
struct PartialRows {
  const float* part;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&out)[1]) const { out[0] = part[r * C + c]; }
};

void check_rounded(const char* op, const Tensor& x, const Tensor& w, DType y) {
  if (x.dtype() != DType::f32 || w.dtype() != DType::bf16 || y != DType::bf16)
    fail(op, ": expected f32 x with bf16 weight and output, got x ", dtype_name(x.dtype()), ", weight ",
         dtype_name(w.dtype()), ", output ", dtype_name(y));
}
void check_dtype_of(const char* op, const char* name, const Tensor& t, DType want) {
  if (t.defined() && t.dtype() != want)
    fail(op, ": ", name, " must be ", dtype_name(want), " on CUDA, got ", dtype_name(t.dtype()));
}

int64_t rows_of(const Tensor& x) { return x.size(-1) == 0 ? 0 : x.numel() / x.size(-1); }

// Packs per thread of the block-per-row kernels for rows of `packs` packs: the fewest that keep
// the block within kRowThreads threads (1, 2, 4 or 8), or 0 when the row is longer.
int packs_per_thread(int64_t packs) {
  for (int ppt : {1, 2, 4, 8})
    if (packs <= int64_t(kRowThreads) * ppt) return ppt;
  return 0;
}

// f.template operator()<PPT>() for ppt in {1, 2, 4, 8}.
template <class F>
void with_ppt(int ppt, F&& f) {
  switch (ppt) {
    case 1: f.template operator()<1>(); break;
    case 2: f.template operator()<2>(); break;
    case 4: f.template operator()<4>(); break;
    default: f.template operator()<8>(); break;
  }
}

// Threads of a block-per-row kernel: one per PPT packs, whole warps.
unsigned row_threads(int64_t packs, int ppt) { return unsigned((packs + ppt - 1) / ppt + 31) / 32 * 32; }

// Blocks of rounded_backward_rows_kernel<PPT> resident at once (its grid: one wave).
template <int PPT>
int64_t resident_rows_blocks(unsigned threads) {
  static std::atomic<int> per_sm[kRowThreads / 32 + 1] = {};
  std::atomic<int>& slot = per_sm[threads / 32];
  int b = slot.load();
  if (b == 0) {
    LMF_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, rounded_backward_rows_kernel<PPT>, int(threads), 0));
    b = std::max(b, 1);
    slot.store(b);
  }
  return int64_t(b) * sm_count();
}

template <int PPT>
void launch_backward_rows(BackwardArgs a, const Tensor& dw_acc, Device device) {
  const unsigned threads = row_threads(a.C / 4, PPT);
  const int64_t blocks = std::min(a.N, resident_rows_blocks<PPT>(threads));
  a.rows_per_block = (a.N + blocks - 1) / blocks;
  const int64_t grid = (a.N + a.rows_per_block - 1) / a.rows_per_block;
  Tensor part;
  if (dw_acc.defined()) {
    part = Tensor::empty({grid * a.C}, DType::f32, device);
    a.dw_part = ptr<float>(part);
  }
  rounded_backward_rows_kernel<PPT><<<unsigned(grid), threads, 0, current_stream()>>>(a);
  LMF_CUDA_CHECK_LAUNCH();
  if (dw_acc.defined())
    column_reduce_acc<1>(grid, a.C, PartialRows{a.dw_part, a.C}, ColumnTargets<1>{{ptr<float>(dw_acc)}}, device);
}

}  // namespace

void rmsnorm_rounded_forward(const Tensor& x, const Tensor& h, const Tensor& w, const Tensor& s, const Tensor& y,
                             const Tensor& rstd, float eps) {
  const char* op = "rmsnorm_rounded_forward";
  check_rounded(op, x, w, y.dtype());
  check_dtype_of(op, "rstd", rstd, DType::f32);
  check_dtype_of(op, "h", h, DType::bf16);
  check_dtype_of(op, "s", s, DType::f32);
  if (h.defined() && !s.defined()) fail(op, ": h needs s, the sum's output");
  const int64_t C = x.size(-1), N = rows_of(x);
  if (N == 0) return;
  const float* px = ptr<float>(x);
  const bf16_t* ph = h.defined() ? ptr<bf16_t>(h) : nullptr;
  float* ps = h.defined() ? ptr<float>(s) : nullptr;
  const bf16_t* pw = ptr<bf16_t>(w);
  bf16_t* py = ptr<bf16_t>(y);
  const bool packed = rows_packable<4>(C, px, ph, static_cast<const float*>(ps), pw, static_cast<const bf16_t*>(py));
  const int ppt = packed ? packs_per_thread(C / 4) : 0;
  if (ppt > 0) {
    with_ppt(ppt, [&]<int PPT>() {
      rounded_forward_rows_kernel<PPT><<<unsigned(N), row_threads(C / 4, PPT), 0, current_stream()>>>(
          px, ph, pw, ps, py, ptr<float>(rstd), C, eps);
      LMF_CUDA_CHECK_LAUNCH();
    });
    return;
  }
  with_pack<4>(packed, [&]<int VEC>() {
    rounded_forward_kernel<VEC><<<unsigned((N + kWarps - 1) / kWarps), kWarps * 32, 0, current_stream()>>>(
        px, ph, pw, ps, py, ptr<float>(rstd), N, C, eps);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

void rmsnorm_rounded_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, const Tensor& ds,
                              const Tensor& dx, bool accumulate, const Tensor& dh, const Tensor& dw_acc) {
  const char* op = "rmsnorm_rounded_backward";
  check_rounded(op, x, w, dy.dtype());
  check_dtype_of(op, "rstd", rstd, DType::f32);
  check_dtype_of(op, "ds", ds, DType::f32);
  check_dtype_of(op, "dx", dx, DType::f32);
  check_dtype_of(op, "dh", dh, DType::bf16);
  check_dtype_of(op, "dw_acc", dw_acc, DType::f32);
  const int64_t C = x.size(-1), N = rows_of(x);
  if (N == 0) return;
  BackwardArgs a{};
  a.x = ptr<float>(x);
  a.w = ptr<bf16_t>(w);
  a.rstd = ptr<float>(rstd);
  a.dy = ptr<bf16_t>(dy);
  a.ds = ds.defined() ? ptr<float>(ds) : nullptr;
  a.dx = dx.defined() ? ptr<float>(dx) : nullptr;
  a.accumulate = accumulate;
  a.dh = dh.defined() ? ptr<bf16_t>(dh) : nullptr;
  a.N = N;
  a.C = C;
  const bool rows_out = a.dx || a.dh;
  const bool packed = rows_packable<4>(C, a.x, a.w, a.dy, a.ds, static_cast<const float*>(a.dx),
                                       static_cast<const bf16_t*>(a.dh));
  const int ppt = packed ? packs_per_thread(C / 4) : 0;
  if (rows_out && ppt > 0) {
    with_ppt(ppt, [&]<int PPT>() { launch_backward_rows<PPT>(a, dw_acc, x.device()); });
    return;
  }
  if (rows_out) {
    with_pack<4>(packed, [&]<int VEC>() {
      rounded_backward_kernel<VEC>
          <<<unsigned((N + kWarps - 1) / kWarps), kWarps * 32, 0, current_stream()>>>(a);
      LMF_CUDA_CHECK_LAUNCH();
    });
  }
  if (dw_acc.defined())
    column_reduce_acc<1>(N, C, RoundedWeightGrad{a.x, a.dy, a.rstd, C}, ColumnTargets<1>{{ptr<float>(dw_acc)}},
                         x.device());
}

}  // namespace lmf::cuda
