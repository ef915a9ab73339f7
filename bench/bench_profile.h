// Per-op step profile shared by the training benchmarks (--profile): runs `step` twice with the
// autograd profiler on (a device synchronize per recorded op, so slower than the timed steps)
// and prints one JSON line {"profile": label, "ms_per_step": total, "<op>": ms per step, ...}.
#pragma once

#include <cstdio>
#include <string>

#include "lmforge/autograd/profile.h"

namespace lmf::bench {

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
