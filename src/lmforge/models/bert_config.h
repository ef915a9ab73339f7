// BertConfig: the fields of HF BertConfig / RobertaConfig / XLMRobertaConfig that the `bert`
// family uses (configuration_bert.py, configuration_roberta.py; PARITY.md §2-§3), parsed from
// config.json with the model type's defaults.
//
// One struct for the three model types; the differences that matter are derived from
// model_type: RoBERTa / XLM-R take their positions from the rank of each real token
// (padding_idx + 1 + rank), use the "roberta." prefix, an LM head with hard-coded exact GELU
// ("lm_head.*") and a classification head on <s> (dense + tanh + out_proj).
//
// Not supported (refused with an error naming the key): relative position embeddings,
// is_decoder / add_cross_attention (causal BERT), regression or multi-label problem types.
// attention_probs_dropout_prob is read and written back but not applied: the fused attention
// has no probability dropout (docs/models-bert.md).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/backend/kernels.h"  // Activation

namespace lmf {

enum class BertKind { bert, roberta, xlm_roberta };

struct BertConfig {
  BertKind kind = BertKind::bert;
  std::string model_type = "bert";
  int64_t vocab_size = 0;  // required, as are hidden_size, layers, heads, intermediate_size
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  std::string hidden_act = "gelu";
  Activation act = Activation::gelu_erf;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;  // not applied (see above)
  double classifier_dropout = -1;             // < 0: None, i.e. hidden_dropout_prob
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  bool tie_word_embeddings = true;
  // Labels (sequence classification). num_labels is len(id2label) when id2label is given.
  int64_t num_labels = 2;
  std::vector<std::string> labels;  // id2label[i]; empty = HF's LABEL_i
  std::vector<std::string> architectures;
  nlohmann::json raw;  // the original object, written back on save with our values updated

  bool roberta_style() const { return kind != BertKind::bert; }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  double classifier_dropout_prob() const {
    return classifier_dropout >= 0 ? classifier_dropout : hidden_dropout_prob;
  }
  std::string label_name(int64_t i) const;  // labels[i] or "LABEL_i"
};

// Parses and validates. `source` names the file in errors, e.g.
//   "m/config.json: hidden_size: missing (expected an integer)"
//   "m/config.json: hidden_size 100 is not a multiple of num_attention_heads 3"
//   "m/config.json: position_embedding_type: 'relative_key' is not supported (only 'absolute')"
// model_type must be "bert", "roberta" or "xlm-roberta".
BertConfig parse_bert_config(const nlohmann::json& j, const std::string& source);

// The HF architecture names of the family's base model / MLM / sequence classifier.
const char* bert_architecture(BertKind kind, const char* suffix);  // suffix: "Model", "ForMaskedLM", ...

// config.json for saving: raw with our values, architectures = {architecture}, and
// id2label / label2id when `with_labels`.
nlohmann::json bert_config_to_json(const BertConfig& c, const std::string& architecture, bool with_labels);

}  // namespace lmf
