// Everything a pre-training run needs, already validated (the CLI builds it from a TOML recipe;
// tests build it directly). Two objectives share it: causal LM (CausalLMTrainer) and masked LM
// (MlmTrainer, the mmBERT recipe of seed 002); fields marked "mlm" are read by the latter only.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/core/device.h"
#include "lmforge/data/packed_dataset.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/batch_rampup.h"
#include "lmforge/train/schedules.h"
#include "lmforge/train/spike_guard.h"

namespace lmf {

// A training phase starts at `start_step` and may switch the data mixture (WSD's decay phase
// adds data, Mambaoutai seed 001; mmBERT's phases).
struct DataPhase {
  std::string name;
  int64_t start_step = 0;
  // causal: the weighted mixture. mlm: one component per language (name = language, weight
  // unused): the languages this phase samples from.
  std::vector<MixtureComponent> sources;
  // mlm: mmBERT's inverse mask schedule (30 % -> 20 % -> 5 %) and annealed language sampling
  // p_i ∝ n_i^tau (tau 0.7 -> 0.5 -> 0.3), per phase. Defaults: BERT's 15 %, proportional.
  double mask_rate = 0.15;
  double tau = 1.0;
};

enum class PretrainObjective : uint8_t { causal_lm, mlm };

// mlm: how tokens are corrupted (HF DataCollatorForLanguageModeling) and evaluated.
struct MlmSettings {
  std::string mask_token;             // "" = the tokenizer's "[MASK]" or "<mask>"
  double mask_replace_prob = 0.8;     // of the selected tokens: -> mask token
  double random_replace_prob = 0.1;   //                          -> uniform random token
  double eval_mask_rate = 0.15;       // fixed across phases, so eval curves stay comparable
};

struct PretrainConfig {
  PretrainObjective objective = PretrainObjective::causal_lm;
  std::string run_dir;
  uint64_t seed = 1234;
  Device device;
  DType compute_dtype = DType::f32;

  int64_t seq_len = 256;                  // mlm: max tokens per sequence, special tokens included
  int64_t micro_batch = 8;
  int64_t grad_accum = 1;                 // micro-batches per step (without ramp-up)
  std::optional<BatchRampup> rampup;      // tokens per step rising over the first tokens
  int64_t max_steps = 100;
  std::vector<DataPhase> phases;          // sorted by start_step; the first starts at 0
  std::vector<MixtureComponent> eval_sources;  // mlm: one per language (name = language)
  uint64_t expect_vocab_size = 0, expect_tokenizer_fingerprint = 0;

  LrSchedule schedule;
  AdamWConfig adamw{0.9, 0.95, 1e-8, 0.1};
  double clip_grad_norm = 1.0;            // <= 0: no clipping
  bool positional_weighting = false;      // loss x tanh(pos / positional_scale)
  double positional_scale = 10.0;
  bool recompute = false;
  SpikeGuardConfig spike;

  int64_t log_every = 10;
  int64_t eval_every = 0;                 // 0: only at the end
  int64_t eval_batches = 20;
  int64_t checkpoint_every = 0;           // 0: only at the end
  int keep_last = 2;
  std::vector<int64_t> eval_position_buckets = {0, 16, 128, 1024};  // lower bounds
  std::vector<int64_t> debug_poison_samples;  // tests: samples whose loss becomes NaN

  MlmSettings mlm;
};

}  // namespace lmf
