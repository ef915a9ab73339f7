#include "lmforge/backend/cpu/adamw.h"

#include <type_traits>

#include "lmforge/core/error.h"

namespace lmf::cpu {

namespace {

template <class Copy>
void run(float* p, const float* g, float* m, float* v, Copy* copy, const AdamWRange* ranges,
         int num_ranges, const AdamWScalars& s) {
#pragma omp parallel
  for (int r = 0; r < num_ranges; r++) {
    const AdamWRange rg = ranges[r];
#pragma omp for schedule(static) nowait
    for (int64_t i = rg.begin; i < rg.end; i++) {
      adamw_update_element(p[i], m[i], v[i], g[i], rg.decay_factor, rg.step_size, s);
      if constexpr (std::is_same_v<Copy, float>) copy[i] = p[i];
      if constexpr (std::is_same_v<Copy, bf16>) copy[i] = float_to_bf16(p[i]);
    }
  }
}

}  // namespace

void adamw_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, void* copy,
                DType copy_dtype, int64_t n, const AdamWRange* ranges, int num_ranges,
                const AdamWScalars& scalars) {
  LMF_CHECK(n >= 0 && num_ranges >= 0);
  for (int r = 0; r < num_ranges; r++) {
    LMF_CHECK(ranges[r].begin >= 0 && ranges[r].begin <= ranges[r].end && ranges[r].end <= n,
              "range ", r, " out of [0, ", n, ")");
    LMF_CHECK(r == 0 || ranges[r - 1].end <= ranges[r].begin, "ranges overlap or are unsorted");
  }
  if (!copy) {
    run<void>(params, grads, exp_avg, exp_avg_sq, nullptr, ranges, num_ranges, scalars);
  } else if (copy_dtype == DType::f32) {
    run(params, grads, exp_avg, exp_avg_sq, static_cast<float*>(copy), ranges, num_ranges, scalars);
  } else if (copy_dtype == DType::bf16) {
    run(params, grads, exp_avg, exp_avg_sq, static_cast<bf16*>(copy), ranges, num_ranges, scalars);
  } else {
    LMF_CHECK(false, "adamw_step: compute copy must be f32 or bf16, got ", dtype_name(copy_dtype));
  }
}

}  // namespace lmf::cpu
