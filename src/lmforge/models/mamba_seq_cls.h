// MambaForSequenceClassification: the MambaModel backbone (composed, not copied) + a linear
// classifier on the pooled final-normed hidden state.
//
//   logits = classifier(dropout(pool(norm_f(backbone(ids)))))     classifier: [C, H] + [C]
//
// Transformers has no Mamba classification head (transformers #30431 is open), so the layout
// follows its decoder classifiers (GPT2/Llama *ForSequenceClassification: pool the last non-pad
// token) with a bias, as the fine-tuning seed's Mamba recipe asks. Parameter names: the
// backbone.* names of MambaForCausalLM, then "classifier.weight" [C, H] and "classifier.bias"
// [C]; lm_head is never built (a MambaForCausalLM checkpoint loads with its lm_head reported
// unused and the classifier initialized: normal(0, initializer_range), bias 0 — HF
// _init_weights for nn.Linear).
//
// Batches: the padded TokenBatch is unpadded into one packed row with seq_idx = the sequence
// index, so each sequence's state and conv window start from zero at its first token and no
// pad token is ever computed (DESIGN.md §4 unpadding). The result equals running every
// sequence alone, for left, right or interior padding alike; "last" pooling therefore takes
// the last REAL token. (forward_hidden_masked would also be exact for right padding, but
// computes the pads.)
//
// config.json: the Mamba config with architectures ["MambaForSequenceClassification"],
// num_labels, id2label, label2id, problem_type "single_label_classification",
// "lmforge_pooling" (last | mean | cls) and "classifier_dropout" (default 0: Mamba's recipe
// uses no dropout).
#pragma once

#include <memory>

#include "lmforge/models/mamba.h"
#include "lmforge/models/pooling.h"
#include "lmforge/models/task_model.h"
#include "lmforge/models/task_registry.h"

namespace lmf {

class MambaForSequenceClassification : public SequenceClassifier {
 public:
  // Registers backbone.* and classifier.* in `store` (not finalized). `config` is the parsed
  // Mamba config (its tie_word_embeddings is kept for saving; no LM head is built).
  MambaForSequenceClassification(const MambaConfig& config, int64_t num_labels, Pooling pooling,
                                 double classifier_dropout, ParamStore& store);

  // HfModel
  const char* architecture() const override { return "MambaForSequenceClassification"; }
  ParamStore& params() override { return store_; }
  nlohmann::json hf_config() const override;
  std::vector<std::string> hf_optional_on_load() const override {
    return {"classifier.weight", "classifier.bias"};
  }
  std::map<std::string, std::string> hf_renames_on_load() const override {
    return backbone_.hf_renames_on_load();
  }
  void init_weights(Generator& gen) override;
  // Logits [B, C] f32.
  Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) override {
    return classify(batch, options);
  }
  double train_flops_per_token(int64_t seq_len) const override;

  // SequenceClassifier
  int64_t num_labels() const override { return num_labels_; }
  // Unpads `batch` (every row needs at least one real token, else lmf::Error "[pooling] ...");
  // options.training with classifier_dropout > 0 needs options.gen (else lmf::Error).
  Tensor classify(const TokenBatch& batch, const ForwardOptions& options) override;
  // names.size() must equal num_labels() (else lmf::Error); names must be unique.
  void set_label_names(const std::vector<std::string>& names) override;

  const std::vector<std::string>& label_names() const { return label_names_; }
  Pooling pooling() const { return pooling_; }
  MambaModel& backbone() { return backbone_; }

 private:
  MambaConfig cfg_;  // as given (tie_word_embeddings as in the source config)
  ParamStore& store_;
  MambaModel backbone_;
  int64_t num_labels_;
  Pooling pooling_;
  double dropout_;
  std::vector<std::string> label_names_;
};

// The task-registry factory for model_type "mamba": head sequence_classification, or
// from_config when architectures[0] is MambaForSequenceClassification. num_labels: the
// request's, else the config's num_labels / id2label; pooling: the request's, else the config's
// "lmforge_pooling", else last. Throws lmf::Error naming `source` for other heads, a missing or
// contradictory label count, a bad pooling or dropout value.
std::unique_ptr<HfModel> make_mamba_task_model(const nlohmann::json& config, const std::string& source,
                                               ParamStore& store, const TaskModelRequest& request);

}  // namespace lmf
