#include "lmforge/train/spike_guard.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "lmforge/core/error.h"

namespace lmf {

SpikeGuard::SpikeGuard(SpikeGuardConfig cfg) : cfg_(cfg) {
  if (cfg_.factor <= 1.0) fail("spike_guard.factor: expected a number > 1, got ", cfg_.factor);
  if (cfg_.window < 1) fail("spike_guard.window: expected a positive integer, got ", cfg_.window);
  if (cfg_.min_history < 1 || cfg_.min_history > cfg_.window)
    fail("spike_guard.min_history: expected 1..window (", cfg_.window, "), got ", cfg_.min_history);
}

double SpikeGuard::median() const {
  if (history_.empty()) return NAN;
  std::vector<double> v(history_.begin(), history_.end());
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  double hi = v[v.size() / 2];
  if (v.size() % 2) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + v.size() / 2);
  return 0.5 * (lo + hi);
}

std::string SpikeGuard::check(double loss) {
  if (!std::isfinite(loss)) return std::isnan(loss) ? "loss is NaN" : "loss is infinite";
  if (cfg_.enabled && int(history_.size()) >= cfg_.min_history) {
    double m = median();
    if (loss > cfg_.factor * m) {
      std::ostringstream os;
      os << "loss " << loss << " > " << cfg_.factor << " x running median " << m;
      return os.str();
    }
  }
  history_.push_back(loss);
  if (int(history_.size()) > cfg_.window) history_.pop_front();
  return "";
}

nlohmann::json SpikeGuard::state() const { return nlohmann::json(std::vector<double>(history_.begin(), history_.end())); }

void SpikeGuard::load_state(const nlohmann::json& j) {
  history_.clear();
  for (const auto& v : j) history_.push_back(v.get<double>());
}

}  // namespace lmf
