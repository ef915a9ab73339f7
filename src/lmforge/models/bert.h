// The `bert` family (HF transformers models/bert/modeling_bert.py, models/roberta/,
// models/xlm_roberta/; PARITY.md §2-§3): BertModel / BertForMaskedLM /
// BertForSequenceClassification and their RoBERTa / XLM-R twins, chosen by model_type.
//
//   ids -> word + token_type (+ position) -> LayerNorm -> dropout
//       -> [ q,k,v = Linear(x); a = LayerNorm(dropout(dense(attention(q,k,v))) + x);
//            x = LayerNorm(dropout(dense2(act(dense1(a)))) + a) ] x layers        (post-norm)
//   heads: MLM  dense -> act -> LayerNorm -> h W_word^T + b   (RoBERTa: act = exact GELU)
//          cls  BERT: tanh(pooler.dense(h_first)) -> dropout -> classifier
//               RoBERTa: dropout -> dense -> tanh -> dropout -> out_proj on h_first
//
// Everything runs unpadded (DESIGN.md §4): the TokenBatch is unpadded once, every op sees only
// the N real tokens [N, H], attention is the ragged ops::attention, and forward_output repads.
// Positions: BERT uses the token's padded column t (HF's arange, even with left padding);
// RoBERTa / XLM-R use padding_idx + 1 + the token's rank among its row's real tokens (HF's
// create_position_ids_from_input_ids with pads excluded). Pooling takes each row's FIRST REAL
// token ([CLS] / <s>); HF takes column 0, which is the same for right padding.
//
// Departures from HF (docs/models-bert.md): no attention-probability dropout (the fused
// attention has none); a real (mask = 1) token that carries pad_token_id still gets a word
// embedding gradient (HF's padding_idx freezes that row; lmforge never embeds pads at all).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/models/bert_config.h"
#include "lmforge/models/task_model.h"
#include "lmforge/models/task_registry.h"

namespace lmf {

// The factory registered in task_registry.cc for model_type "bert", "roberta" and
// "xlm-roberta". request.head from_config follows architectures[0]: *Model -> base,
// *ForMaskedLM / BertForPreTraining -> masked_lm, *ForSequenceClassification ->
// sequence_classification (no architectures -> base). request.num_labels > 0 overrides the
// config's label count; request.pooling must be "" or "cls". Throws lmf::Error naming `source`
// for a bad config, an unsupported architecture, pooling, num_labels == 1 (regression) or a
// problem_type other than single_label_classification.
std::unique_ptr<HfModel> make_bert_model(const nlohmann::json& config, const std::string& source,
                                         ParamStore& store, const TaskModelRequest& request);

// HF _init_weights for the family (BertPreTrainedModel._init_weights): Linear weights and
// embeddings ~ N(0, initializer_range) drawn from `gen` (one Philox offset per tensor), biases
// 0, LayerNorm weight 1 / bias 0, the padding_idx row of a padded embedding 0. Writes master
// values only (callers sync_compute()).
struct BertInit {
  ParamStore& store;
  Generator& gen;
  float std;
  void normal(const std::string& name) const;
  void constant(const std::string& name, float value) const;
  void linear(const std::string& prefix) const;                        // prefix.weight ~ N, prefix.bias = 0
  void layer_norm(const std::string& prefix) const;                    // prefix.weight = 1, prefix.bias = 0
  void embedding(const std::string& name, int64_t padding_idx) const;  // padding_idx < 0: none
};

// The embeddings + encoder stack (+ optional pooler) every head shares.
class BertEncoder {
 public:
  // Registers the parameters under `prefix` ("bert." / "roberta." for heads, "" for the base
  // model, as HF names them); the pooler ("<prefix>pooler.dense.*") only when with_pooler.
  BertEncoder(const BertConfig& config, ParamStore& store, std::string prefix, bool with_pooler);

  const BertConfig& config() const { return cfg_; }
  const std::string& prefix() const { return prefix_; }
  bool has_pooler() const { return with_pooler_; }
  ParamStore& store() const { return store_; }

  // Hidden states of the real tokens [N, H] (stream order), compute dtype, differentiable.
  // Throws lmf::Error "[bert] ..." for ids / token types outside the vocabularies, positions
  // beyond max_position_embeddings, or training with dropout > 0 and no options.gen.
  Tensor encode(const RaggedBatch& ragged, const ForwardOptions& options) const;
  // BertPooler on each row's first real token: tanh(dense(h_first)) [B, H]. Needs the pooler.
  Tensor pooled(const Tensor& h, const RaggedBatch& ragged) const;

  void init_weights(Generator& gen) const;
  // Checkpoint names that map onto ours: legacy gamma/beta, and the HF base-model prefix
  // added (a BertModel checkpoint into a head model) or removed (a prefixed one into BertModel).
  std::map<std::string, std::string> renames() const;
  std::vector<std::string> optional_names() const;  // the pooler (absent from MLM checkpoints)
  // Forward + backward FLOPs per token of the encoder at sequence length `seq_len`.
  double train_flops_per_token(int64_t seq_len) const;

 private:
  Tensor layer(int l, const Tensor& x, const std::vector<int32_t>& cu_seqlens, Generator gen,
               bool training) const;
  std::string p(const std::string& suffix) const { return prefix_ + suffix; }
  std::string layer_p(int l, const std::string& suffix) const;
  Tensor P(const std::string& name) const { return store_.param(name); }

  BertConfig cfg_;
  ParamStore& store_;
  std::string prefix_;
  bool with_pooler_;
};

// BertModel / RobertaModel / XLMRobertaModel: forward_output = last_hidden_state [B, T, H].
class BertBaseModel final : public HfModel {
 public:
  BertBaseModel(const BertConfig& config, ParamStore& store);
  const char* architecture() const override;
  ParamStore& params() override { return enc_.store(); }
  nlohmann::json hf_config() const override;
  std::vector<std::string> hf_optional_on_load() const override { return enc_.optional_names(); }
  std::map<std::string, std::string> hf_renames_on_load() const override { return enc_.renames(); }
  void init_weights(Generator& gen) override;
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override;
  double train_flops_per_token(int64_t seq_len) const override { return enc_.train_flops_per_token(seq_len); }
  const BertEncoder& encoder() const { return enc_; }

 private:
  BertEncoder enc_;
};

// BertForMaskedLM / RobertaForMaskedLM / XLMRobertaForMaskedLM (and BertForPreTraining
// checkpoints, whose NSP head is left unused).
class BertMaskedLM final : public MaskedLM {
 public:
  BertMaskedLM(const BertConfig& config, ParamStore& store);
  const char* architecture() const override;
  ParamStore& params() override { return enc_.store(); }
  nlohmann::json hf_config() const override;
  std::vector<std::string> hf_optional_on_load() const override;
  std::map<std::string, std::string> hf_renames_on_load() const override;
  void init_weights(Generator& gen) override;
  // [B, T, V] f32 logits (pad rows 0): the head on every real token, logits = t W^T + b.
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override;
  double train_flops_per_token(int64_t seq_len) const override;

  int64_t vocab_size() const override { return enc_.config().vocab_size; }
  int64_t hidden_size() const override { return enc_.config().hidden_size; }
  Tensor encode(const RaggedBatch& ragged, const ForwardOptions& options) override {
    return enc_.encode(ragged, options);
  }
  Tensor mlm_transform(const Tensor& h) override;
  Tensor decoder_weight() const override;
  Tensor decoder_bias() const override;
  const BertEncoder& encoder() const { return enc_; }

 private:
  std::string head(const std::string& suffix) const;  // "cls.predictions.<...>" / "lm_head.<...>"
  BertEncoder enc_;
};

// BertForSequenceClassification / RobertaForSequenceClassification / XLMRoberta...: single-
// label classification (cross-entropy over num_labels >= 2 classes).
class BertSequenceClassifier final : public SequenceClassifier {
 public:
  BertSequenceClassifier(const BertConfig& config, ParamStore& store);
  const char* architecture() const override;
  ParamStore& params() override { return enc_.store(); }
  nlohmann::json hf_config() const override;
  std::vector<std::string> hf_optional_on_load() const override;
  std::map<std::string, std::string> hf_renames_on_load() const override { return enc_.renames(); }
  void init_weights(Generator& gen) override;
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override {
    return classify(batch, options);
  }
  double train_flops_per_token(int64_t seq_len) const override;

  int64_t num_labels() const override { return cfg_.num_labels; }
  Tensor classify(const TokenBatch& batch, const ForwardOptions& options) override;
  // Same, from an already unpadded batch.
  Tensor classify_ragged(const RaggedBatch& ragged, const ForwardOptions& options);
  // names.size() must equal num_labels() (the head is already built); throws otherwise.
  void set_label_names(const std::vector<std::string>& names) override;
  const BertEncoder& encoder() const { return enc_; }

 private:
  BertEncoder enc_;
  BertConfig cfg_;  // the encoder's config plus the current label names (what hf_config saves)
};

}  // namespace lmf
