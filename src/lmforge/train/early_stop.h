// Early stopping on an evaluation metric, with the Hugging Face Trainer's semantics
// (EarlyStoppingCallback + Trainer's best-model tracking):
//  - `improved`: the value is strictly better than the best so far (the best checkpoint is
//    replaced; Trainer's state.best_metric / load_best_model_at_end);
//  - the patience counter resets only when the value beats the best so far by more than
//    min_delta (HF early_stopping_threshold); otherwise it grows by one;
//  - `stop` once the counter reaches patience (patience 0 = never stop, track the best only).
// NaN never improves. Metrics: accuracy and macro_f1 (higher is better), loss (lower).
#pragma once

#include <cstdint>
#include <string>

namespace lmf {

struct EarlyStopConfig {
  std::string metric = "accuracy";  // accuracy | macro_f1 | loss
  int64_t patience = 0;             // evaluations without improvement before stopping; 0 = off
  double min_delta = 0.0;           // >= 0
};

// Whether a larger value of `metric` is better; throws lmf::Error naming the metric otherwise.
bool metric_greater_is_better(const std::string& metric);

class EarlyStopper {
 public:
  // Throws lmf::Error for an unknown metric, patience < 0 or min_delta < 0 (not finite).
  explicit EarlyStopper(EarlyStopConfig config);

  struct Decision {
    bool improved = false;  // new best: export it
    bool stop = false;      // stop training now
  };
  // Records one evaluation's value of config().metric.
  Decision update(double value);

  bool has_best() const { return has_best_; }
  double best() const { return best_; }
  int64_t evals_without_improvement() const { return counter_; }
  int64_t evals_seen() const { return evals_; }
  const EarlyStopConfig& config() const { return cfg_; }

 private:
  EarlyStopConfig cfg_;
  bool greater_;
  bool has_best_ = false;
  double best_ = 0;
  int64_t counter_ = 0, evals_ = 0;
};

}  // namespace lmf
