#include "lmforge/train/early_stop.h"

#include <cmath>

#include "lmforge/core/error.h"

namespace lmf {

bool metric_greater_is_better(const std::string& metric) {
  if (metric == "accuracy" || metric == "macro_f1") return true;
  if (metric == "loss") return false;
  fail("early_stopping.metric: expected one of accuracy, macro_f1, loss, got '", metric, "'");
}

EarlyStopper::EarlyStopper(EarlyStopConfig config)
    : cfg_(std::move(config)), greater_(metric_greater_is_better(cfg_.metric)) {
  if (cfg_.patience < 0) fail("early_stopping.patience: expected >= 0, got ", cfg_.patience);
  if (!(cfg_.min_delta >= 0) || !std::isfinite(cfg_.min_delta))
    fail("early_stopping.min_delta: expected a finite number >= 0, got ", cfg_.min_delta);
}

EarlyStopper::Decision EarlyStopper::update(double v) {
  Decision d;
  evals_++;
  const bool valid = !std::isnan(v);
  const bool better = valid && (!has_best_ || (greater_ ? v > best_ : v < best_));
  const bool beyond_delta = better && (!has_best_ || std::fabs(v - best_) > cfg_.min_delta);
  if (beyond_delta)
    counter_ = 0;
  else
    counter_++;
  if (better) {
    best_ = v;
    has_best_ = true;
    d.improved = true;
  }
  d.stop = cfg_.patience > 0 && counter_ >= cfg_.patience;
  return d;
}

}  // namespace lmf
