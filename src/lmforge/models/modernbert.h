// The ModernBERT family (HF transformers models/modernbert; PARITY.md §4), mmBERT shapes included:
//
//   ids -> tok_embeddings -> LayerNorm -> dropout
//       -> [ h += Wo(attn(RoPE(Wqkv(attn_norm(h))))) ; h += Wo(act(Wi_in) * Wi_gate)(mlp_norm(h)) ] x L
//       -> final_norm
//   layer 0 has no attn_norm (the embedding norm did it); layer l is global (RoPE theta
//   global_rope_theta, no window) iff l % global_attn_every_n_layers == 0, else local (theta
//   local_rope_theta, keys with |i - j| <= local_attention / 2). Wqkv's output columns are
//   [Q | K | V], each head-major; GeGLU takes the first half of Wi as input, the second as gate.
//
// Everything runs unpadded (models/token_batch.h): positions are the token's rank within its
// sequence, as HF's FA2 path; for right padding this equals HF eager's arange, so outputs at real
// positions match eager/sdpa, and pad positions of forward_output are exactly 0 (as FA2 repads).
// Under bf16 compute the residual stream, the LayerNorms (weights kept fp32) and the pooled
// vectors are fp32; matmuls, RoPE and attention run in bf16 (torch autocast semantics).
//
// Heads, with HF parameter names (base: no prefix; task models: "model." + base names):
//   ModernBertModel                      forward_output = last_hidden_state [B, T, H]
//   ModernBertForMaskedLM                head (dense -> act -> norm) then decoder: W tied to
//                                        model.embeddings.tok_embeddings.weight (tie_word_embeddings),
//                                        decoder.bias when decoder_bias
//   ModernBertForSequenceClassification  pool (cls | mean) -> head -> dropout -> classifier (bias)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmforge/models/modernbert_config.h"
#include "lmforge/models/pooling.h"
#include "lmforge/models/task_model.h"
#include "lmforge/models/task_registry.h"

namespace lmf {

// The encoder trunk shared by the three architectures. Registers its parameters under `prefix`
// ("" for ModernBertModel, "model." inside the task models).
class ModernBertEncoder {
 public:
  ModernBertEncoder(const ModernBertConfig& config, ParamStore& store, std::string prefix);

  const ModernBertConfig& config() const { return cfg_; }
  ModernBertConfig& mutable_config() { return cfg_; }  // label names (not shapes)
  const std::string& prefix() const { return prefix_; }
  // HF _init_weights for the trunk's parameters (truncated normals, norms to 1 / 0).
  void init_weights(Generator& gen);
  // Final hidden states [N, H] of the real tokens in stream order, differentiable; dtype f32
  // under bf16 compute (the fp32 residual stream), else the compute dtype. Throws lmf::Error
  // ("[embedding] ..." for token ids outside the vocabulary; "[modernbert] ..." for an empty
  // batch, training with dropout but no generator, or training with attention_dropout > 0:
  // ops::attention has no probability dropout). Positions beyond max_position_embeddings are
  // allowed (RoPE has no table; HF computes them the same way).
  Tensor encode(const RaggedBatch& ragged, const ForwardOptions& options);
  // Matmul parameters per token of the trunk (for FLOP estimates) and attention FLOPs per token.
  double train_flops_per_token(int64_t seq_len) const;
  std::string name(const std::string& suffix) const { return prefix_ + suffix; }

 private:
  Tensor layer(int64_t l, const Tensor& h, const Tensor& positions, const std::vector<int32_t>& cu,
               const ForwardOptions& options, Generator* gen);
  Tensor norm(const std::string& stem, const Tensor& x) const;  // LayerNorm (optional bias)
  // The same, output in out_dtype (fused into the norm when the dtypes allow, else a cast).
  Tensor norm(const std::string& stem, const Tensor& x, DType out_dtype) const;
  Tensor param_or_none(const std::string& n) const;

  ModernBertConfig cfg_;
  ParamStore& store_;
  std::string prefix_;
};

// Shared pieces of the task models: the prediction head ("head.": dense -> act -> norm).
class ModernBertHead {
 public:
  ModernBertHead(const ModernBertConfig& config, ParamStore& store);
  void init_weights(Generator& gen);
  // x [M, H] in the encoder's output dtype -> [M, H] in that dtype.
  Tensor forward(const Tensor& x) const;

 private:
  ModernBertConfig cfg_;
  ParamStore& store_;
};

class ModernBertBase : public HfModel {
 public:
  ModernBertBase(const ModernBertConfig& config, ParamStore& store);
  const char* architecture() const override { return "ModernBertModel"; }
  ParamStore& params() override { return store_; }
  nlohmann::json hf_config() const override { return modernbert_config_to_json(enc_.config(), architecture()); }
  std::map<std::string, std::string> hf_renames_on_load() const override;
  void init_weights(Generator& gen) override;
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override;
  double train_flops_per_token(int64_t seq_len) const override { return enc_.train_flops_per_token(seq_len); }
  ModernBertEncoder& encoder() { return enc_; }
  // Source checkpoint names: true when the checkpoint's config says a task architecture
  // ("model."-prefixed names).
  void set_source_prefixed(bool prefixed) { source_prefixed_ = prefixed; }

 private:
  ParamStore& store_;
  ModernBertEncoder enc_;
  bool source_prefixed_ = false;
};

class ModernBertMaskedLM : public MaskedLM {
 public:
  ModernBertMaskedLM(const ModernBertConfig& config, ParamStore& store);
  const char* architecture() const override { return "ModernBertForMaskedLM"; }
  ParamStore& params() override { return store_; }
  nlohmann::json hf_config() const override { return modernbert_config_to_json(enc_.config(), architecture()); }
  std::vector<std::string> hf_optional_on_load() const override;
  std::map<std::string, std::string> hf_renames_on_load() const override;
  void init_weights(Generator& gen) override;
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override;
  double train_flops_per_token(int64_t seq_len) const override;
  int64_t vocab_size() const override { return enc_.config().vocab_size; }
  int64_t hidden_size() const override { return enc_.config().hidden_size; }
  Tensor encode(const RaggedBatch& ragged, const ForwardOptions& options) override { return enc_.encode(ragged, options); }
  // Returns the compute dtype (what decoder_weight() has), ready for the vocabulary projection.
  Tensor mlm_transform(const Tensor& h) override;
  Tensor decoder_weight() const override;
  Tensor decoder_bias() const override;
  // Which architecture the checkpoint being loaded was saved as (its config's architectures[0]).
  void set_source_architecture(const std::string& arch) { source_arch_ = arch; }

 private:
  ParamStore& store_;
  ModernBertEncoder enc_;
  ModernBertHead head_;
  std::string source_arch_ = "ModernBertForMaskedLM";
};

class ModernBertSequenceClassifier : public SequenceClassifier {
 public:
  // config.num_labels / classifier_pooling are the effective ones (the factory applies the request).
  ModernBertSequenceClassifier(const ModernBertConfig& config, ParamStore& store);
  const char* architecture() const override { return "ModernBertForSequenceClassification"; }
  ParamStore& params() override { return store_; }
  nlohmann::json hf_config() const override { return modernbert_config_to_json(enc_.config(), architecture()); }
  std::vector<std::string> hf_optional_on_load() const override;
  std::map<std::string, std::string> hf_renames_on_load() const override;
  void init_weights(Generator& gen) override;
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override {
    return classify(batch, options);
  }
  double train_flops_per_token(int64_t seq_len) const override { return enc_.train_flops_per_token(seq_len); }
  int64_t num_labels() const override { return enc_.config().num_labels; }
  Tensor classify(const TokenBatch& batch, const ForwardOptions& options) override;
  // Throws lmf::Error when names.size() != num_labels().
  void set_label_names(const std::vector<std::string>& names) override;
  Pooling pooling() const { return pooling_; }
  void set_source_architecture(const std::string& arch) { source_arch_ = arch; }

 private:
  ParamStore& store_;
  ModernBertEncoder enc_;
  ModernBertHead head_;
  Pooling pooling_;
  std::string source_arch_ = "ModernBertForSequenceClassification";
};

// task_registry factory for model_type "modernbert". The head comes from the request, or from
// the config's architectures[0] (ModernBertModel when absent). Sequence classification: pooling
// "" = config classifier_pooling, else cls | mean ("last" is refused: HF ModernBERT has no such
// pooling); num_labels 0 = the config's. Throws lmf::Error naming `source` for bad configs.
std::unique_ptr<HfModel> make_modernbert(const nlohmann::json& config, const std::string& source, ParamStore& store,
                                         const TaskModelRequest& request);

}  // namespace lmf
