// MambaForCausalLM (HF transformers models/mamba/modeling_mamba.py), Mamba-1.
//
//   ids -> embeddings -> [ norm -> mixer -> + residual ] x n_layers -> norm_f -> (lm_head)
//   mixer: in_proj -> (u | z) ; u -> causal conv1d -> SiLU -> x_proj -> (dt_raw | B | C)
//          dt_raw -> dt_proj (no bias here: the fp32 dt bias is added inside the scan, before
//          softplus, exactly where HF's Linear adds it) -> selective scan(u, dt, A, B, C, D, z)
//          -> out_proj
// Parameters carry HF names ("backbone.layers.0.mixer.in_proj.weight"); A_log, D and
// dt_proj.bias are kept fp32 under bf16 (DESIGN.md §4). With tied embeddings the LM head is
// backbone.embeddings.weight and no lm_head.weight exists.
#pragma once

#include <string>

#include "lmforge/core/rng.h"
#include "lmforge/core/tensor.h"
#include "lmforge/models/causal_lm.h"
#include "lmforge/models/mamba_config.h"
#include "lmforge/nn/param_store.h"

namespace lmf {

class MambaModel : public CausalLM {
 public:
  // Registers every parameter in `store` (which must not be finalized yet).
  MambaModel(const MambaConfig& config, ParamStore& store);

  const MambaConfig& config() const { return cfg_; }

  // CausalLM
  const char* architecture() const override { return "MambaForCausalLM"; }
  ParamStore& params() override { return store_; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t hidden_size() const override { return cfg_.hidden_size; }
  Tensor forward_hidden(const Tensor& ids, const Tensor& seq_idx, bool recompute) override;
  Tensor lm_head_weight() const override;
  nlohmann::json hf_config() const override { return mamba_config_to_json(cfg_); }
  std::vector<std::string> hf_skip_on_save() const override { return {}; }
  std::vector<std::string> hf_optional_on_load() const override { return {}; }
  std::map<std::string, std::string> hf_renames_on_load() const override {
    return {{"backbone.embedding.", "backbone.embeddings."}};  // original mamba_ssm names
  }
  // 6 x (matmul parameters) per token + the scan (~9 flops per state element, x3 for backward).
  double train_flops_per_token(int64_t seq_len) const override;

  // HF _init_weights (PARITY.md §1 "Init") drawn from `gen`; writes master values and syncs
  // the compute copy.
  void init_weights(Generator& gen);

  // ids [B, L] i32/i64 on the store's device; seq_idx [B, L] i32 (document index per token,
  // optional): state and conv window reset at document starts. Returns the final normed hidden
  // states [B, L, H] (f32 when residual_in_fp32 or compute is f32, else the compute dtype).
  // `recompute_blocks`: keep only each block's input and recompute it in backward.
  // (That is forward_hidden's contract; it is declared above with the CausalLM interface.)

  // forward_hidden with HF's attention_mask (MambaModel.forward(input_ids, attention_mask),
  // slow path, PARITY.md §1 mixer steps 2-3): in every layer the conv input u and the conv
  // output (after SiLU) are multiplied by the mask. attention_mask: [B, L] i32 / i64 / f32
  // (1 = real token, 0 = padding; other values are used as given, as HF does), any device (it
  // is moved to the store's device). An undefined mask gives exactly forward_hidden. Throws
  // lmf::Error "[mamba] attention_mask ..." for a shape other than ids' or a non-numeric dtype.
  Tensor forward_hidden_masked(const Tensor& ids, const Tensor& attention_mask, const Tensor& seq_idx = Tensor(),
                               bool recompute_blocks = false);

  // fp32 logits [B, L, V] (small models / the forward tool / generation).
  Tensor logits(const Tensor& hidden) const;

  // Names of the parameters exactly as HF's state dict has them (lm_head omitted when tied).
  std::vector<std::string> hf_tensor_names() const;

 private:
  // mask: f32 [B, L] on the store's device, or undefined (no masking).
  Tensor run(const Tensor& ids, const Tensor& seq_idx, const Tensor& mask, bool recompute_blocks);
  Tensor block(int layer, const Tensor& x, const Tensor& seq_idx, const Tensor& mask);
  Tensor block_norm(int layer, const Tensor& x);  // the block's RMSNorm of its residual input
  Tensor mixer(int layer, const Tensor& xn, const Tensor& seq_idx, const Tensor& mask);
  std::string p(int layer, const std::string& suffix) const;

  MambaConfig cfg_;
  ParamStore& store_;
};

// The weight-decay rule used by lmforge's Mamba recipes: no decay on biases, norms, A_log, D
// and embeddings (mamba-ssm's training code and common practice).
bool mamba_param_decays(const std::string& name);

}  // namespace lmf
