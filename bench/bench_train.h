// What the training benchmarks (bench_encoder, bench_mamba_train) share: the end of a step
// (backward, clip, fused AdamW), the timed loop, and the per-op profile (--profile).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "lmforge/autograd/profile.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/nn/param_store.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/grad_clip.h"

namespace lmf::bench {

// backward(loss), global-norm clip at 1.0 and one AdamW step over the trainable prefix of the
// store's flat buffers, with profile marks for --profile.
inline void finish_step(ParamStore& store, AdamW& opt, const Tensor& loss, double lr) {
  autograd::backward(loss);
  autograd::profile_mark("bwd:(tail)");
  const int64_t T = store.num_trainable();
  const double norm = grad_norm(store.flat_grads().slice(0, 0, T));
  opt.step(store.flat_master().slice(0, 0, T), store.flat_grads().slice(0, 0, T), store.flat_compute().slice(0, 0, T),
           lr, clip_factor(norm, 1.0));
  autograd::profile_mark("optimizer");
}

// Runs `warmup` steps, resets the peak-memory counter, then times `steps` steps (device
// synchronised at both ends). Returns seconds per step.
template <class F>
double time_steps(Device dev, int64_t warmup, int64_t steps, F&& step) {
  for (int64_t i = 0; i < warmup; i++) step();
  synchronize(dev);
  reset_peak_memory(dev);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; i++) step();
  synchronize(dev);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(steps);
}

// Per-op step profile: runs `step` twice with the autograd profiler on (a device synchronize
// per recorded op, so slower than the timed steps) and prints one JSON line
// {"profile": label, "ms_per_step": total, "<op>": ms per step, ...}.
template <class F>
void print_step_profile(const std::string& label, Device dev, F&& step) {
  constexpr int kSteps = 2;
  autograd::profile_reset();
  autograd::set_profiling(true, dev);
  for (int i = 0; i < kSteps; i++) step();
  autograd::set_profiling(false, dev);
  const double per_step_ms = 1e3 / kSteps;
  double total = 0;
  for (auto& [k, v] : autograd::profile_totals()) total += v;
  std::printf("{\"profile\":\"%s\",\"ms_per_step\":%.2f", label.c_str(), total * per_step_ms);
  for (auto& [k, v] : autograd::profile_totals()) std::printf(",\"%s\":%.3f", k.c_str(), v * per_step_ms);
  std::printf("}\n");
}

}  // namespace lmf::bench
