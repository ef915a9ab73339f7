// A coarse op profiler: when on, every recorded node synchronizes the device and its forward
// time (since the previous record) and backward time are added to a per-op total. Meant for
// finding where a training step goes (bench_mamba_train --profile), not for production runs:
// the synchronizations serialize the GPU.
#pragma once

#include <map>
#include <string>

#include "lmforge/core/device.h"

namespace lmf::autograd {

void set_profiling(bool on, Device device);
bool profiling();
// Marks a point in time: the time since the previous mark is added to `key`.
void profile_mark(const std::string& key);
// Totals in seconds per key ("fwd:linear", "bwd:selective_scan", ...), and a reset.
std::map<std::string, double> profile_totals();
void profile_reset();

}  // namespace lmf::autograd
