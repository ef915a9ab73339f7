// Loss-spike guard (Mambaoutai, seed 001: "restart from the previous checkpoint and skip the
// data that caused the spike"). The trainer feeds every step's loss; the guard says whether it
// is a spike: non-finite, or above `factor` x the running median of the last `window` accepted
// losses (once `min_history` losses have been seen). The trainer then rolls back to the last
// checkpoint, skips the offending batches and logs the event.
#pragma once

#include <deque>
#include <nlohmann/json.hpp>
#include <string>

namespace lmf {

struct SpikeGuardConfig {
  bool enabled = true;
  double factor = 3.0;      // spike if loss > factor * running median
  int window = 50;          // losses in the running median
  int min_history = 20;     // no ratio test before this many accepted losses
  int max_rollbacks = 10;   // give up (error) after this many rollbacks in one run
};

class SpikeGuard {
 public:
  explicit SpikeGuard(SpikeGuardConfig cfg = {});
  // Returns "" when the loss is accepted (and records it), else the reason
  // ("loss is NaN", "loss 9.1 > 3 x median 2.4").
  std::string check(double loss);
  double median() const;
  const SpikeGuardConfig& config() const { return cfg_; }
  nlohmann::json state() const;
  void load_state(const nlohmann::json& j);

 private:
  SpikeGuardConfig cfg_;
  std::deque<double> history_;
};

}  // namespace lmf
