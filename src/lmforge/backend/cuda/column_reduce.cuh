// Column sums over rows, added into f32 accumulators: the shape of every bias / norm-weight
// gradient (acc[c] += sum_r f(r, c)). Deterministic: each block sums a tile of 32 columns over
// a chunk of rows in a fixed order and writes one partial per (chunk, column); the last block of
// a column tile to finish (a per-tile counter) adds the tile's partials in a fixed order. One
// launch, no floating-point atomics, so repeated runs give identical bits.
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

// f(r, c, out) writes the NOUT values of element (r, c). With several chunks, `counters` holds
// one zeroed u32 per column tile (cuda::reduce_counters()).
template <int NOUT, class F>
__global__ void column_partial_kernel(int64_t N, int64_t C, int64_t rows_per_chunk, F f,
                                      float* partial, ColumnTargets<NOUT> targets, unsigned int* counters) {
  __shared__ float shm[NOUT][kColTileY][kColTileX + 1];
  __shared__ bool last;
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
  if (gridDim.y == 1) return;
  // The last block of this column tile adds the partials: lane y sums chunks y, y + 8, ... in
  // order, then the 8 lane sums are added in lane order (fixed, whatever the block order).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0) {
    const unsigned int done = atomicAdd(&counters[blockIdx.x], 1u);
    last = done == gridDim.y - 1;
    if (last) counters[blockIdx.x] = 0;  // ready for the next reduction on this stream
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  float t[NOUT];
#pragma unroll
  for (int k = 0; k < NOUT; k++) t[k] = 0.f;
  if (c < C)
    for (int64_t ch = threadIdx.y; ch < gridDim.y; ch += kColTileY)
#pragma unroll
      for (int k = 0; k < NOUT; k++) t[k] += __ldcg(partial + (ch * NOUT + k) * C + c);
  __syncthreads();
#pragma unroll
  for (int k = 0; k < NOUT; k++) shm[k][threadIdx.y][threadIdx.x] = t[k];
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
#pragma unroll
    for (int k = 0; k < NOUT; k++) {
      float u = 0.f;
      for (int y = 0; y < kColTileY; y++) u += shm[k][y][threadIdx.x];
      targets.acc[k][c] += u;
    }
  }
}

// targets.acc[k][c] += sum_{r < N} f(r, c)[k]. `device` is where the scratch partials live.
template <int NOUT, class F>
void column_reduce_acc(int64_t N, int64_t C, const F& f, ColumnTargets<NOUT> targets, Device device) {
  if (N == 0 || C == 0) return;
  const int64_t tiles = (C + kColTileX - 1) / kColTileX;
  if (tiles > 65535 || tiles > kReduceCounters)
    fail("column reduction: ", C, " columns exceed the CUDA kernel's limit of ", kColTileX * 65535);
  // Enough blocks to fill the GPU (8 per SM), at least 256 rows per chunk (a block reads its
  // rows in 8 concurrent warps; fewer chunks keep the final sum short).
  int64_t chunks = (int64_t(sm_count()) * 8 + tiles - 1) / tiles;
  const int64_t max_chunks = (N + 255) / 256;
  chunks = chunks > max_chunks ? max_chunks : chunks;
  chunks = chunks < 1 ? 1 : (chunks > 65535 ? 65535 : chunks);
  const int64_t rows_per_chunk = (N + chunks - 1) / chunks;
  chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  Tensor partial;
  if (chunks > 1) partial = Tensor::empty({chunks * NOUT * C}, DType::f32, device);
  float* pp = chunks > 1 ? ptr<float>(partial) : nullptr;
  column_partial_kernel<NOUT><<<dim3(unsigned(tiles), unsigned(chunks)), dim3(kColTileX, kColTileY), 0,
                                current_stream()>>>(N, C, rows_per_chunk, f, pp, targets,
                                                    chunks > 1 ? reduce_counters() : nullptr);
  LMF_CUDA_CHECK_LAUNCH();
  // `partial` returns to the caching allocator here; later work on the same stream is ordered
  // after the kernel above, so reuse is safe.
}

}  // namespace lmf::cuda
