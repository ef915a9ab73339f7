// Philox4x32-10 counter-based RNG (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11). Header-only and __host__ __device__ so the CPU and CUDA backends draw the SAME stream:
// a tensor filled on either device with the same (seed, offset) is bit-identical.
//
// Stream definition (the contract both backends follow):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block & 0xffffffff, block >> 32, offset & 0xffffffff, offset >> 32)
//   element i of a fill uses word (i % 4) of philox(key, counter with block = i / 4).
//   uniform01(word) = (word >> 8) * 2^-24, in [0, 1).
//   normal: element i uses block i / 2; words (0,1) serve even i, words (2,3) odd i:
//   z = sqrt(-2 ln(1 - u_a)) * cos(2 pi u_b)  (Box-Muller, cosine branch only).
// `offset` lets one seed feed many independent draws (a step counter, a layer index).
#pragma once

#include <cmath>
#include <cstdint>

#include "lmforge/core/dtype.h"  // LMF_HD

namespace lmf {

struct Philox4 {
  uint32_t v[4];
};

LMF_HD inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

LMF_HD inline Philox4 philox4x32_10(uint64_t seed, uint64_t block, uint64_t offset) {
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  uint32_t c0 = uint32_t(block), c1 = uint32_t(block >> 32);
  uint32_t c2 = uint32_t(offset), c3 = uint32_t(offset >> 32);
  for (int r = 0; r < 10; r++) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

LMF_HD inline float philox_uniform01(uint32_t word) { return float(word >> 8) * (1.0f / 16777216.0f); }

// Uniform [0,1) for element i of the stream (seed, offset).
LMF_HD inline float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  Philox4 r = philox4x32_10(seed, i >> 2, offset);
  return philox_uniform01(r.v[i & 3]);
}

// Standard normal for element i of the stream (seed, offset).
LMF_HD inline float philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  Philox4 r = philox4x32_10(seed, i >> 1, offset);
  int w = int(i & 1) * 2;
  float u0 = philox_uniform01(r.v[w]);
  float u1 = philox_uniform01(r.v[w + 1]);
  float radius = sqrtf(-2.0f * logf(1.0f - u0));
  return radius * cosf(6.283185307179586f * u1);
}

}  // namespace lmf
