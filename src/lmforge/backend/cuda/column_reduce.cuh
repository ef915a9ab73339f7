// Column sums over rows, added into f32 accumulators: the shape of every bias / norm-weight
// gradient (acc[c] += sum_r f(r, c)). Deterministic: each block sums a tile of 32 columns over
// a chunk of rows in a fixed order, writes one partial per (chunk, column), and a second kernel
// adds the partials in chunk order. No atomics, so repeated runs give identical bits.
#pragma once

#include "lmforge/backend/cuda/kernel_util.cuh"

namespace lmf::cuda {

// The NOUT accumulators (f32, [C] each) a column reduction adds into.
template <int NOUT>
struct ColumnTargets {
  float* acc[NOUT];
};

constexpr int kColTileX = 32;  // columns per block (one per lane: coalesced row segments)
constexpr int kColTileY = 8;   // rows read concurrently per block (one warp each)

// f(r, c, out) writes the NOUT values of element (r, c).
template <int NOUT, class F>
__global__ void column_partial_kernel(int64_t N, int64_t C, int64_t rows_per_chunk, F f,
                                      float* partial, ColumnTargets<NOUT> targets) {
  __shared__ float shm[NOUT][kColTileY][kColTileX + 1];
  const int64_t c = int64_t(blockIdx.x) * kColTileX + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < N ? r0 + rows_per_chunk : N;
  float s[NOUT];
#pragma unroll
  for (int k = 0; k < NOUT; k++) s[k] = 0.f;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColTileY) {
      float v[NOUT];
      f(r, c, v);
#pragma unroll
      for (int k = 0; k < NOUT; k++) s[k] += v[k];
    }
  }
#pragma unroll
  for (int k = 0; k < NOUT; k++) shm[k][threadIdx.y][threadIdx.x] = s[k];
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
#pragma unroll
    for (int k = 0; k < NOUT; k++) {
      float t = 0.f;
      for (int y = 0; y < kColTileY; y++) t += shm[k][y][threadIdx.x];
      if (gridDim.y == 1) {
        targets.acc[k][c] += t;
      } else {
        partial[(int64_t(blockIdx.y) * NOUT + k) * C + c] = t;
      }
    }
  }
}

// acc[k][c] += sum over chunks of partial[chunk][k][c], chunks in order.
template <int NOUT>
__global__ void column_finish_kernel(const float* partial, int64_t chunks, int64_t C,
                                     ColumnTargets<NOUT> targets) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < NOUT * C; i += stride) {
    const int64_t k = i / C, c = i % C;
    float t = 0.f;
    for (int64_t ch = 0; ch < chunks; ch++) t += partial[(ch * NOUT + k) * C + c];
    targets.acc[k][c] += t;
  }
}

// targets.acc[k][c] += sum_{r < N} f(r, c)[k]. `device` is where the scratch partials live.
template <int NOUT, class F>
void column_reduce_acc(int64_t N, int64_t C, const F& f, ColumnTargets<NOUT> targets, Device device) {
  if (N == 0 || C == 0) return;
  const int64_t tiles = (C + kColTileX - 1) / kColTileX;
  // Enough blocks to fill the GPU (8 per SM), but at least 64 rows per chunk.
  int64_t chunks = (int64_t(sm_count()) * 8 + tiles - 1) / tiles;
  const int64_t max_chunks = (N + 63) / 64;
  chunks = chunks > max_chunks ? max_chunks : chunks;
  chunks = chunks < 1 ? 1 : (chunks > 65535 ? 65535 : chunks);
  const int64_t rows_per_chunk = (N + chunks - 1) / chunks;
  chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  Tensor partial;
  if (chunks > 1) partial = Tensor::empty({chunks * NOUT * C}, DType::f32, device);
  float* pp = chunks > 1 ? ptr<float>(partial) : nullptr;
  column_partial_kernel<NOUT><<<dim3(unsigned(tiles), unsigned(chunks)), dim3(kColTileX, kColTileY), 0,
                                current_stream()>>>(N, C, rows_per_chunk, f, pp, targets);
  LMF_CUDA_CHECK_LAUNCH();
  if (chunks > 1) {
    column_finish_kernel<NOUT><<<blocks_for(NOUT * C), 256, 0, current_stream()>>>(pp, chunks, C, targets);
    LMF_CUDA_CHECK_LAUNCH();
  }
  // `partial` returns to the caching allocator here; later work on the same stream is ordered
  // after the two kernels above, so reuse is safe.
}

}  // namespace lmf::cuda
