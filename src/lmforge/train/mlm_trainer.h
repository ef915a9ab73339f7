// The masked-LM pre-training loop (DESIGN.md §7; the mmBERT recipe of seed 002, REFERENCE.md
// "Encoder recipe"):
//  - data: each sequence is a window of up to max_length tokens of one document of one language
//    (data/token_windows.h) with the tokenizer's [CLS]/[SEP] (or <s>/</s>) around it; the
//    language is drawn per sequence with p_i ∝ n_i^tau (data/language_sampler.h), tau and the
//    language set per phase (annealed language learning);
//  - masking: HF DataCollatorForLanguageModeling (80/10/10) at the phase's mask rate (mmBERT's
//    inverse schedule 30 % -> 20 % -> 5 %), keyed by the sequence's sample index;
//  - step: MaskedLM::encode on the unpadded batch, gather the masked rows only, mlm_transform,
//    fused cross-entropy with the decoder weight and bias (ops::cross_entropy_with_bias); the
//    loss is the mean over the step's masked tokens (all micro-batches together);
//  - AdamW + clipping, LR schedules (WSD with 1-sqrt decay, cosine, ...), spike guard with
//    rollback, atomic checkpoints with exact resume (cursors, dropout stream), periodic eval of
//    the MLM loss and accuracy per language.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/data/language_sampler.h"
#include "lmforge/data/mlm_masking.h"
#include "lmforge/models/task_model.h"
#include "lmforge/train/mlm_batch.h"
#include "lmforge/train/pretrain_config.h"
#include "lmforge/train/spike_guard.h"
#include "lmforge/train/trainer_common.h"

namespace lmf {

struct MlmEvalResult {
  struct Language {
    std::string name;
    int64_t sequences = 0, tokens = 0;  // tokens: masked (scored) tokens
    double loss = 0, accuracy = 0;      // mean CE and top-1 accuracy over the masked tokens
  };
  int64_t tokens = 0;
  double loss = 0, accuracy = 0;  // over every language's masked tokens
  std::vector<Language> languages;
  nlohmann::json to_json() const;
};

// Evaluates on each language's eval shards (windows in storage order, up to `max_batches`
// batches of `micro_batch` sequences per language; 0 = all), masking at `mask_rate` with a
// fixed stream so every evaluation scores the same tokens. Throws lmf::Error for bad shards.
MlmEvalResult evaluate_mlm(MaskedLM& model, const std::vector<MixtureComponent>& languages,
                           const MlmSpecialTokens& special, const MlmMasker& masker, double mask_rate,
                           int64_t max_length, int64_t micro_batch, int64_t max_batches, uint64_t seed,
                           uint64_t expect_vocab, uint64_t expect_fingerprint);

class MlmTrainer {
 public:
  using Callbacks = TrainerCallbacks;

  // cfg.objective must be mlm; every phase needs at least one language. Opens every shard
  // (lmf::Error naming the phase / language / shard otherwise).
  MlmTrainer(PretrainConfig cfg, MaskedLM& model, MlmSpecialTokens special, Callbacks cb);
  ~MlmTrainer();

  // Opens every training and eval shard of `cfg` without training: the CLI's check before it
  // creates the run folder. Throws what the constructor would.
  static void check_data(const PretrainConfig& cfg, const MlmSpecialTokens& special);

  // Continues from the checkpoint folder `ckpt` (params, optimizer, cursors, dropout stream,
  // step, guard). Throws lmf::Error for a checkpoint of another objective.
  void resume_from(const std::string& ckpt);
  // Trains until max_steps. Writes checkpoints per config and one at the end.
  void train();
  MlmEvalResult evaluate();

  int64_t step() const { return step_; }
  int64_t tokens_seen() const { return tokens_; }
  int64_t masked_tokens_seen() const { return masked_; }
  int64_t rollbacks() const { return rollbacks_; }
  const LanguageSampler& sampler() const { return *sampler_; }
  std::string save_checkpoint();

 private:
  struct StepResult {
    double loss = 0;
    int64_t tokens = 0, masked = 0;
    bool poisoned = false;
  };
  StepResult run_step(std::vector<int64_t>& sequences_by_language);
  void enter_phase();
  nlohmann::json trainer_state() const;
  void load_trainer_state(const nlohmann::json& s);
  void rollback(const std::string& reason, const nlohmann::json& cursor_after);

  PretrainConfig cfg_;
  MaskedLM& model_;
  MlmSpecialTokens special_;
  Callbacks cb_;
  MlmMasker masker_;
  std::unique_ptr<LanguageSampler> sampler_;
  std::unique_ptr<OptimizerCore> core_;
  SpikeGuard guard_;
  Generator dropout_;
  size_t phase_ = size_t(-1);
  int64_t step_ = 0, tokens_ = 0, masked_ = 0, rollbacks_ = 0;
  std::string last_checkpoint_;
};

}  // namespace lmf
