// What the pre-training loops share (causal LM: causal_lm_trainer, masked LM: mlm_trainer):
// the optimizer over a ParamStore's flat buffers, the clipped update, run checkpoints with
// optimizer and trainer state, the phase lookup, the throughput fields of a log record, and the
// CLI callbacks. Factored out of causal_lm_trainer.cc so the two loops do not duplicate them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/nn/param_store.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/pretrain_config.h"

namespace lmf {

// Events for the CLI: every log line (metrics.jsonl record), evals, spikes, checkpoints.
struct TrainerCallbacks {
  std::function<void(const nlohmann::json&)> on_log;
  std::function<void(const nlohmann::json&)> on_event;
};

// How a model is saved and loaded (CausalLM and HfModel both provide these).
struct ModelCheckpointing {
  std::function<nlohmann::json()> hf_config;
  std::vector<std::string> skip_on_save;
  std::vector<std::string> optional_on_load;
  std::map<std::string, std::string> renames_on_load;
};

// Index of the phase active at `step`: the last one whose start_step <= step.
size_t phase_at(const std::vector<DataPhase>& phases, int64_t step);

// AdamW over the store's trainable flat buffers (its weight-decay ranges, cfg's hyper-parameters),
// the update step with global-norm clipping, and checkpoint save / resume of params + optimizer.
class OptimizerCore {
 public:
  OptimizerCore(const PretrainConfig& cfg, ParamStore& params, ModelCheckpointing io);

  // Clips by cfg.clip_grad_norm (<= 0: none) and applies one AdamW update at `lr`. Returns the
  // gradient norm before clipping.
  double step(double lr);
  // Writes <run>/checkpoints/step_NNNNNN (params, config.json, optimizer, trainer_state).
  std::string save(int64_t step, const nlohmann::json& trainer_state);
  // Loads params and optimizer state from `ckpt`; returns its trainer_state.json.
  nlohmann::json load(const std::string& ckpt);

 private:
  const PretrainConfig& cfg_;
  ParamStore& ps_;
  ModelCheckpointing io_;
  std::unique_ptr<AdamW> opt_;
};

// Throughput over a logging interval: tokens/s, and on CUDA the MFU and peak memory.
class ThroughputMeter {
 public:
  explicit ThroughputMeter(int64_t tokens_at_start) : tokens_at_(tokens_at_start), t_(Clock::now()) {}
  // Adds tokens_per_s (and mfu, mem_gib on CUDA) to `record` for the interval ending at
  // `tokens_now`, then starts a new interval. Synchronizes the device first.
  void fill(nlohmann::json& record, int64_t tokens_now, const ParamStore& params, double flops_per_token);

 private:
  using Clock = std::chrono::steady_clock;
  int64_t tokens_at_;
  Clock::time_point t_;
};

}  // namespace lmf
