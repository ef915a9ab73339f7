// Everything a causal-LM pre-training run needs, already validated (the CLI builds it from a
// TOML recipe; tests build it directly).
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
  std::vector<MixtureComponent> sources;
};

struct PretrainConfig {
  std::string run_dir;
  uint64_t seed = 1234;
  Device device;
  DType compute_dtype = DType::f32;

  int64_t seq_len = 256;
  int64_t micro_batch = 8;
  int64_t grad_accum = 1;                 // micro-batches per step (without ramp-up)
  std::optional<BatchRampup> rampup;      // tokens per step rising over the first tokens
  int64_t max_steps = 100;
  std::vector<DataPhase> phases;          // sorted by start_step; the first starts at 0
  std::vector<MixtureComponent> eval_sources;
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
};

}  // namespace lmf
