// Fused AdamW on the GPU: one grid-stride pass over the flat buffers with 16-byte loads.
// No CUDA header here, so .cc files (train/adamw.cc, bench) can include it. Built only with
// LMF_WITH_CUDA.
#pragma once

#include <cstdint>

#include "lmforge/backend/cpu/adamw.h"  // AdamWRange, AdamWScalars, the per-element spec
#include "lmforge/core/dtype.h"

namespace lmf::cuda {

// Same contract as lmf::cpu::adamw_step (backend/cpu/adamw.h), except:
//  - every buffer pointer is device memory on CUDA device `device`; `ranges` is a host array;
//  - the work is queued on lmforge's stream of `device` (cuda::current_stream(), a non-blocking
//    stream), after the kernels that produced the gradients, and returns before it ends;
//  - when params, grads, exp_avg, exp_avg_sq are 16-byte aligned and copy 16-byte (f32) or
//    8-byte (bf16) aligned, the kernel moves 4 elements per load; otherwise one (still correct).
//  - ranges are sent 64 per launch (by value, into shared memory), so one launch for up to 64
//    ranges; callers should merge adjacent ranges with equal factors.
// Throws lmf::Error when a launch fails (the CUDA error string in the message).
void adamw_step(int device, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                void* copy, DType copy_dtype, int64_t n, const AdamWRange* ranges, int num_ranges,
                const AdamWScalars& scalars);

}  // namespace lmf::cuda
