#include "lmforge/autograd/profile.h"

#include <chrono>

#include "lmforge/core/device_memory.h"

namespace lmf::autograd {

namespace {
struct State {
  bool on = false;
  Device device;
  std::chrono::steady_clock::time_point last;
  std::map<std::string, double> totals;
};
State& state() {
  static State s;
  return s;
}
}  // namespace

void set_profiling(bool on, Device device) {
  State& s = state();
  s.on = on;
  s.device = device;
  synchronize(device);
  s.last = std::chrono::steady_clock::now();
}

bool profiling() { return state().on; }

void profile_mark(const std::string& key) {
  State& s = state();
  if (!s.on) return;
  synchronize(s.device);
  auto now = std::chrono::steady_clock::now();
  s.totals[key] += std::chrono::duration<double>(now - s.last).count();
  s.last = now;
}

std::map<std::string, double> profile_totals() { return state().totals; }
void profile_reset() { state().totals.clear(); }

}  // namespace lmf::autograd
