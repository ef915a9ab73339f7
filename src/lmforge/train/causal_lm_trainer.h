// The causal-LM pre-training loop (DESIGN.md §7, the Mambaoutai recipe of seed 001):
// packed sequences with document boundaries, gradient accumulation (and batch-size ramp-up),
// positional loss weighting, fused AdamW with global-norm clipping, LR schedules (WSD, cosine,
// ...), data phases, periodic eval (loss, perplexity, top-1/3/10, by position bucket),
// atomic checkpoints with exact resume, and the loss-spike guard (roll back, skip the data,
// continue).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "lmforge/models/causal_lm.h"
#include "lmforge/train/pretrain_config.h"
#include "lmforge/train/trainer_common.h"

namespace lmf {

struct EvalResult {
  double loss = 0, perplexity = 0;
  int64_t tokens = 0;
  double top1 = 0, top3 = 0, top10 = 0;  // accuracies
  struct Bucket {
    int64_t from = 0, to = -1;  // positions [from, to), to = -1: no upper bound
    int64_t tokens = 0;
    double loss = 0, top1 = 0, top3 = 0, top10 = 0;
  };
  std::vector<Bucket> buckets;
  nlohmann::json to_json() const;
};

// Evaluates `model` on `data` (not shuffled) for up to `max_batches` batches (0 = all windows).
EvalResult evaluate_causal_lm(CausalLM& model, PackedDataset& data, int64_t micro_batch, int64_t max_batches,
                              const std::vector<int64_t>& position_buckets);

class CausalLMTrainer {
 public:
  using Callbacks = TrainerCallbacks;

  CausalLMTrainer(PretrainConfig cfg, CausalLM& model, Callbacks cb);
  ~CausalLMTrainer();

  // Continues from the checkpoint folder `ckpt` (params, optimizer, cursor, rng, step, guard).
  void resume_from(const std::string& ckpt);
  // Trains until max_steps. Writes checkpoints per config and one at the end.
  void train();
  EvalResult evaluate();

  int64_t step() const { return step_; }
  int64_t tokens_seen() const { return tokens_; }
  int64_t rollbacks() const { return rollbacks_; }
  std::string save_checkpoint();

 private:
  struct StepResult {
    double loss = 0;
    int64_t tokens = 0;
    bool poisoned = false;
  };
  StepResult run_micro_batches(int64_t n_micro);
  void ensure_phase_data();
  nlohmann::json trainer_state() const;
  void load_trainer_state(const nlohmann::json& s);
  void rollback(const std::string& reason, const nlohmann::json& cursor_after);

  PretrainConfig cfg_;
  CausalLM& model_;
  Callbacks cb_;
  std::unique_ptr<OptimizerCore> core_;
  std::unique_ptr<PackedDataset> data_;
  size_t data_phase_ = size_t(-1);
  nlohmann::json phase_cursors_ = nlohmann::json::object();  // saved cursors of other phases
  SpikeGuard guard_;
  int64_t step_ = 0, tokens_ = 0, rollbacks_ = 0;
  std::string last_checkpoint_;
};

}  // namespace lmf
