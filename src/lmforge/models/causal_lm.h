// The interface the causal-LM trainer, evaluator and generator use, so Mamba, GPT-Neo and a
// Llama-style decoder share one training loop.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"
#include "lmforge/nn/param_store.h"

namespace lmf {

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const char* architecture() const = 0;  // HF name, e.g. "MambaForCausalLM"
  virtual ParamStore& params() = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t hidden_size() const = 0;
  // Final hidden states [B, L, H] for ids [B, L]; seq_idx [B, L] i32 marks packed documents
  // (undefined: one document per row). `recompute`: activation recomputation per block.
  virtual Tensor forward_hidden(const Tensor& ids, const Tensor& seq_idx, bool recompute) = 0;
  // Output projection [V, H] (the tied embedding when tied).
  virtual Tensor lm_head_weight() const = 0;
  // config.json contents for saving, and the parameter names not saved (tied heads).
  virtual nlohmann::json hf_config() const = 0;
  virtual std::vector<std::string> hf_skip_on_save() const = 0;
  // Names that may be absent from a checkpoint, and legacy renames, for loading.
  virtual std::vector<std::string> hf_optional_on_load() const { return {}; }
  virtual std::map<std::string, std::string> hf_renames_on_load() const { return {}; }
  // Approximate training FLOPs per token (forward + backward), for MFU.
  virtual double train_flops_per_token(int64_t seq_len) const = 0;
};

}  // namespace lmf
