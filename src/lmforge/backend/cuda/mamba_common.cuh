// Device helpers shared by the Mamba kernels (conv1d.cu, selective_scan*.cu): parameters whose
// dtype is known only at run time, cp.async staging of tiles into shared memory, the fast exp2,
// softplus/sigmoid in fp32, and lane-group reductions.
#pragma once

#include <cstdint>

#include "lmforge/backend/cuda/cuda_common.h"

namespace lmf::cuda::mamba {

// ---- parameters ---------------------------------------------------------------------------
// A read-only vector of parameters (A_log, D, dt bias, conv weight/bias). Under mixed precision
// they are f32 (DESIGN.md §4), but a plain bf16 run (and compare_cpu_cuda) hands them over in
// the activation dtype, so the dtype is a run-time tag; they are read once per thread.
struct ParamPtr {
  const void* p = nullptr;
  int kind = 0;  // 0 f32, 1 bf16, 2 f16

  __device__ __forceinline__ float operator[](int64_t i) const {
    if (kind == 0) return static_cast<const float*>(p)[i];
    if (kind == 1) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    return __half2float(static_cast<const __half*>(p)[i]);
  }
};

inline ParamPtr param_ptr(const Tensor& t, const char* op, const char* name) {
  if (!t.defined()) return {};
  switch (t.dtype()) {
    case DType::f32: return {t.data_ptr(), 0};
    case DType::bf16: return {t.data_ptr(), 1};
    case DType::f16: return {t.data_ptr(), 2};
    default: fail(op, ": ", name, " must be f32, bf16 or f16 on CUDA, got ", dtype_name(t.dtype()));
  }
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

constexpr int align16(int bytes) { return (bytes + 15) & ~15; }

// ---- cp.async (sm_80+) ----------------------------------------------------------------------
// 16 bytes global -> shared; with valid == false nothing is read and the 16 bytes are zeroed
// (src-size 0), which is how tile tails are zero-filled. `gmem` must still be a valid address.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Copies the [rows, cols] tile at `src` (row stride `stride` elements) into dst[rows][cols] in
// shared memory; elements at r >= rows_valid or c >= cols_valid become 0. With `vec` (cols,
// cols_valid, stride multiples of 16/sizeof(T), src and dst 16-byte aligned) it issues one
// 16-byte cp.async per vector (completed by cp_async_wait_all); otherwise it copies element by
// element synchronously (odd shapes only). All threads of the block call it.
template <class T>
__device__ __forceinline__ void stage_tile(T* dst, const T* src, int64_t stride, int rows, int cols,
                                           int rows_valid, int cols_valid, bool vec) {
  constexpr int V = 16 / int(sizeof(T));
  if (vec) {
    const int vpr = cols / V;
    for (int v = threadIdx.x; v < rows * vpr; v += blockDim.x) {
      const int r = v / vpr, c = (v - r * vpr) * V;
      const bool ok = r < rows_valid && c < cols_valid;
      cp_async16(dst + r * cols + c, ok ? src + r * stride + c : src, ok);
    }
  } else {
    for (int e = threadIdx.x; e < rows * cols; e += blockDim.x) {
      const int r = e / cols, c = e - r * cols;
      dst[e] = (r < rows_valid && c < cols_valid) ? src[r * stride + c] : from_f<T>(0.f);
    }
  }
}

// ---- math -----------------------------------------------------------------------------------
// 2^x on the SFU (one MUFU.EX2; relative error ~2^-22, denormal results flush to 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

constexpr float kLog2e = 1.4426950408889634f;

// PyTorch F.softplus (beta 1, threshold 20), PARITY.md §0. log1pf keeps small values accurate.
__device__ __forceinline__ float softplus_f(float x) { return x > 20.f ? x : log1pf(__expf(x)); }

// 1 / (1 + e^-x); saturates cleanly (exp overflow gives 0).
__device__ __forceinline__ float sigmoid_f(float x) { return __fdividef(1.f, 1.f + __expf(-x)); }

// ---- lane-group reductions ------------------------------------------------------------------
// Sums the M values v[0..M) over the lanes of a warp that differ only in lane-index bits MASK,
// MASK/2, ..., LO (powers of two). While a lane still holds several values, each step exchanges
// half of them ("transpose-reduce": M/2 shuffles for M values instead of M), so afterwards lane
// holds v[0..out_count) = the sums of the original values base .. base + out_count - 1; once one
// value is left, the remaining bits are plain butterflies and all lanes differing only in those
// bits hold the same sum (write it from the lane where writer_mask bits are 0).
// Every lane of the warp must call it (full-mask shuffles). `base` must start at 0.
template <int M, int MASK, int LO>
struct LaneReduce {
  static constexpr bool kActive = MASK >= LO && MASK > 0;
  static constexpr int kOut = !kActive ? M : LaneReduce<(M > 1 ? M / 2 : 1), MASK / 2, LO>::kOut;
  // Lane-index bits that were reduced by butterflies (lanes equal in all other bits agree).
  static constexpr int kWriterMask = !kActive ? 0 : ((M > 1 ? 0 : MASK) | LaneReduce<(M > 1 ? M / 2 : 1), MASK / 2, LO>::kWriterMask);

  template <int NV>
  __device__ __forceinline__ static void run(float (&v)[NV], int lane, int& base) {
    if constexpr (kActive) {
      if constexpr (M > 1) {
        constexpr int H = M / 2;
        const bool up = (lane & MASK) != 0;
#pragma unroll
        for (int j = 0; j < H; j++) {
          const float send = up ? v[j] : v[j + H];
          const float keep = up ? v[j + H] : v[j];
          v[j] = keep + __shfl_xor_sync(0xffffffffu, send, MASK);
        }
        if (up) base += H;
        LaneReduce<H, MASK / 2, LO>::run(v, lane, base);
      } else {
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], MASK);
        LaneReduce<1, MASK / 2, LO>::run(v, lane, base);
      }
    }
  }
};
template <int M, int LO>
struct LaneReduce<M, 0, LO> {
  static constexpr int kOut = M;
  static constexpr int kWriterMask = 0;
  template <int NV>
  __device__ __forceinline__ static void run(float (&)[NV], int, int&) {}
};

// The shapes the scan kernels rely on (values left per lane, lanes that write).
static_assert(LaneReduce<8, 16, 4>::kOut == 1 && LaneReduce<8, 16, 4>::kWriterMask == 0, "dB/dC, G = 4");
static_assert(LaneReduce<8, 16, 1>::kOut == 1 && LaneReduce<8, 16, 1>::kWriterMask == 3, "dB/dC, G = 1");
static_assert(LaneReduce<8, 16, 8>::kOut == 2 && LaneReduce<8, 16, 8>::kWriterMask == 0, "dB/dC, G = 8");
static_assert(LaneReduce<4, 2, 1>::kOut == 1 && LaneReduce<4, 2, 1>::kWriterMask == 0, "forward y, G = 4");
static_assert(LaneReduce<4, 0, 1>::kOut == 4 && LaneReduce<4, 0, 1>::kWriterMask == 0, "forward y, G = 1");
static_assert(LaneReduce<2, 2, 1>::kOut == 1 && LaneReduce<2, 2, 1>::kWriterMask == 1, "p1/p2, G = 4");
static_assert(LaneReduce<2, 4, 1>::kOut == 1 && LaneReduce<2, 4, 1>::kWriterMask == 3, "p1/p2, G = 8");

}  // namespace lmf::cuda::mamba
