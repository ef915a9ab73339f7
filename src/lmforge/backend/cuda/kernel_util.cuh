// Building blocks shared by the element-wise and row-wise CUDA kernels: 16-byte vector packs,
// warp / row reductions, the launch shape of row-wise kernels, and grid-stride map kernels.
#pragma once

#include <cstdint>

#include "lmforge/backend/cuda/cuda_common.h"

namespace lmf::cuda {

// ---- vector packs ----------------------------------------------------------------------------
// N elements of T loaded / stored as one access (at most 16-byte aligned: a 32-byte pack of 8
// floats becomes two 128-bit accesses).
template <class T, int N>
struct alignas(sizeof(T) * N > 16 ? 16 : sizeof(T) * N) Pack {
  T v[N];
};

// Elements of T in one 16-byte access.
template <class T>
constexpr int pack_size() {
  return int(16 / sizeof(T));
}

// Whether p may be read as Pack<T, N>.
template <class T, int N>
inline bool pack_aligned(const void* p) {
  constexpr size_t a = sizeof(T) * N > 16 ? 16 : sizeof(T) * N;
  return (reinterpret_cast<uintptr_t>(p) % a) == 0;
}

// Whether rows of C elements can go in packs of P: P divides C and every non-null pointer is
// aligned for a Pack of its element type.
template <int P, class... Ts>
inline bool rows_packable(int64_t C, const Ts*... ps) {
  return C % P == 0 && (... && (ps == nullptr || pack_aligned<Ts, P>(ps)));
}

// Calls f.template operator()<P>() when `packed`, else f.template operator()<1>().
template <int P, class F>
inline void with_pack(bool packed, F&& f) {
  if (packed) {
    f.template operator()<P>();
  } else {
    f.template operator()<1>();
  }
}

// out[k] = float(p[i + k]) for k < N; i must be a multiple of N.
template <int N, class T>
__device__ __forceinline__ void load_pack(const T* p, int64_t i, float (&out)[N]) {
  Pack<T, N> pk = *reinterpret_cast<const Pack<T, N>*>(p + i);
#pragma unroll
  for (int k = 0; k < N; k++) out[k] = to_f(pk.v[k]);
}

template <int N, class T>
__device__ __forceinline__ void store_pack(T* p, int64_t i, const float (&in)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int k = 0; k < N; k++) pk.v[k] = from_f<T>(in[k]);
  *reinterpret_cast<Pack<T, N>*>(p + i) = pk;
}

// ---- reductions ------------------------------------------------------------------------------
struct SumOp {
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class V, class Op>
__device__ __forceinline__ V warp_reduce(V v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Row-wise kernels run one row per "row group": a warp (blockDim = (32, rows per block)) or a
// whole block (blockDim = (threads, 1)). row_reduce combines v over the group; every thread of
// the group gets the result. In block mode it synchronizes the block, so all its threads must
// call it; in warp mode it only shuffles, so warps past the last row may return early.
template <class V, class Op>
__device__ __forceinline__ V row_reduce(V v, Op op, V identity) {
  v = warp_reduce(v, op);
  if (blockDim.x == 32) return v;
  __shared__ V shm[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  __syncthreads();  // a previous call may still be reading shm
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  v = lane < nwarps ? shm[lane] : identity;
  return warp_reduce(v, op);
}
__device__ __forceinline__ float row_sum(float v) { return row_reduce(v, SumOp{}, 0.f); }
__device__ __forceinline__ float row_max(float v) { return row_reduce(v, MaxOp{}, -INFINITY); }

// Launch shape for a row-wise kernel over `rows` rows of `packs` packs each: a warp per row
// (4 rows per block) while a row has at most 128 packs (4 per lane), else a block of up to 512
// threads per row. Inside the kernel: row = blockIdx.x * blockDim.y + threadIdx.y, the group's
// threads are threadIdx.x in [0, blockDim.x).
struct RowLaunch {
  dim3 grid, block;
};
inline RowLaunch row_launch(int64_t rows, int64_t packs) {
  if (packs <= 128) return {dim3(unsigned((rows + 3) / 4)), dim3(32, 4)};
  int64_t threads = ((packs + 1) / 2 + 31) / 32 * 32;
  threads = threads < 64 ? 64 : (threads > 512 ? 512 : threads);
  return {dim3(unsigned(rows)), dim3(unsigned(threads), 1)};
}

// ---- grid-stride element-wise maps ---------------------------------------------------------------
// out[i] = op(a[i]) computed in float, VEC elements per access, scalar tail.
template <class T, int VEC, class Op>
__global__ void unary_map_kernel(const T* a, T* out, int64_t n, Op op) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t npk = n / VEC;
  for (int64_t p = tid; p < npk; p += stride) {
    float v[VEC];
    load_pack<VEC>(a, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = op(v[k]);
    store_pack<VEC>(out, p * VEC, v);
  }
  for (int64_t i = npk * VEC + tid; i < n; i += stride) out[i] = from_f<T>(op(to_f(a[i])));
}

// out[i] = op(a[i], b[i]); b may have its own element type U (an f32 stream plus a bf16 branch).
template <class T, int VEC, class Op, class U = T>
__global__ void binary_map_kernel(const T* a, const U* b, T* out, int64_t n, Op op) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t npk = n / VEC;
  for (int64_t p = tid; p < npk; p += stride) {
    float u[VEC], v[VEC];
    load_pack<VEC>(a, p * VEC, u);
    load_pack<VEC>(b, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) u[k] = op(u[k], v[k]);
    store_pack<VEC>(out, p * VEC, u);
  }
  for (int64_t i = npk * VEC + tid; i < n; i += stride) out[i] = from_f<T>(op(to_f(a[i]), to_f(b[i])));
}

// Launchers: 16-byte packs when every pointer allows it.
template <class T, class Op>
void launch_unary_map(const T* a, T* out, int64_t n, Op op) {
  if (n == 0) return;
  constexpr int V = pack_size<T>();
  if (pack_aligned<T, V>(a) && pack_aligned<T, V>(out)) {
    unary_map_kernel<T, V><<<blocks_for((n + V - 1) / V), 256, 0, current_stream()>>>(a, out, n, op);
  } else {
    unary_map_kernel<T, 1><<<blocks_for(n), 256, 0, current_stream()>>>(a, out, n, op);
  }
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, class Op, class U = T>
void launch_binary_map(const T* a, const U* b, T* out, int64_t n, Op op) {
  if (n == 0) return;
  constexpr int V = pack_size<T>();
  if (pack_aligned<T, V>(a) && pack_aligned<U, V>(b) && pack_aligned<T, V>(out)) {
    binary_map_kernel<T, V, Op, U><<<blocks_for((n + V - 1) / V), 256, 0, current_stream()>>>(a, b, out, n, op);
  } else {
    binary_map_kernel<T, 1, Op, U><<<blocks_for(n), 256, 0, current_stream()>>>(a, b, out, n, op);
  }
  LMF_CUDA_CHECK_LAUNCH();
}

}  // namespace lmf::cuda
