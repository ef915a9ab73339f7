// Run-folder checkpoints (DESIGN.md §7):
//   <run>/checkpoints/step_NNNNNN/{model.safetensors, config.json, optimizer.safetensors,
//                                  trainer_state.json}
// A checkpoint is written into step_NNNNNN.tmp-<pid>/ and renamed into place only when every
// file is complete and fsynced, so a crash never leaves a half checkpoint under a real name and
// nothing already saved is lost. keep_last > 0 deletes the oldest complete checkpoints beyond
// that count (after the new one is in place).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/io/safetensors.h"
#include "lmforge/nn/param_store.h"

namespace lmf {

struct CheckpointPayload {
  nlohmann::json model_config;      // HF config.json
  std::vector<std::string> skip;    // parameter names not saved (tied lm_head)
  NamedTensors optimizer;           // e.g. exp_avg, exp_avg_sq (flat fp32)
  nlohmann::json trainer_state;     // step, tokens, rng, data cursor, schedule, ...
};

// Returns the checkpoint folder written.
std::string save_run_checkpoint(const std::string& run_dir, int64_t step, const ParamStore& params,
                                const CheckpointPayload& payload, int keep_last);

// Complete checkpoints of a run, oldest first (folders named step_NNNNNN).
std::vector<std::string> list_run_checkpoints(const std::string& run_dir);
// The newest one, or "" when none.
std::string latest_run_checkpoint(const std::string& run_dir);

// Reads trainer_state.json / optimizer tensors of a checkpoint folder (errors name the file).
nlohmann::json read_trainer_state(const std::string& ckpt_dir);
NamedTensors read_optimizer_state(const std::string& ckpt_dir);

}  // namespace lmf
