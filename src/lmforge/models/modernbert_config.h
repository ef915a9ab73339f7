// ModernBertConfig: the fields of HF `ModernBertConfig` (models/modernbert, PARITY.md §4) that the
// model uses, parsed from config.json with HF's defaults. Both config generations are read:
//   v4: global_rope_theta / local_rope_theta / global_attn_every_n_layers
//   v5: rope_parameters {"full_attention": {"rope_theta"}, "sliding_attention": {...}} and
//       layer_types (derived from global_attn_every_n_layers, which v5 still writes)
// A config that gives both must agree (a v5 save of a converted v4 config does).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/backend/kernels.h"  // Activation

namespace lmf {

struct ModernBertConfig {
  int64_t vocab_size = 50368;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 1152;
  int64_t num_hidden_layers = 22;
  int64_t num_attention_heads = 12;
  int64_t head_dim = 0;  // derived: hidden_size / num_attention_heads
  std::string hidden_activation = "gelu";
  Activation hidden_act = Activation::gelu_erf;
  int64_t max_position_embeddings = 8192;
  double initializer_range = 0.02;
  double initializer_cutoff_factor = 2.0;
  double norm_eps = 1e-5;
  bool norm_bias = false;
  int64_t pad_token_id = 50283, eos_token_id = 50282, bos_token_id = 50281, cls_token_id = 50281,
          sep_token_id = 50282;
  bool attention_bias = false;
  double attention_dropout = 0.0;
  int64_t global_attn_every_n_layers = 3;
  int64_t local_attention = 128;  // window width: keys with |i - j| <= local_attention / 2
  double global_rope_theta = 160000.0;
  double local_rope_theta = 10000.0;
  double embedding_dropout = 0.0;
  bool mlp_bias = false;
  double mlp_dropout = 0.0;
  bool decoder_bias = true;
  std::string classifier_pooling = "cls";  // cls | mean
  double classifier_dropout = 0.0;
  bool classifier_bias = false;  // head.dense only; the classifier always has a bias
  std::string classifier_activation = "gelu";
  Activation classifier_act = Activation::gelu_erf;
  bool sparse_prediction = false;
  int64_t sparse_pred_ignore_index = -100;
  bool tie_word_embeddings = true;
  // Sequence classification: num_labels (HF default 2, or the size of id2label) and the label
  // names in id order (empty when the config has no id2label).
  int64_t num_labels = 2;
  std::vector<std::string> label_names;
  std::string problem_type;  // "" | single_label_classification | regression | multi_label_classification
  nlohmann::json raw;        // the original object, written back on save with our values updated

  // Layer l attends globally (no window, global theta) iff l % global_attn_every_n_layers == 0.
  bool is_global(int64_t layer) const { return layer % global_attn_every_n_layers == 0; }
  double rope_theta(int64_t layer) const { return is_global(layer) ? global_rope_theta : local_rope_theta; }
  // The sliding window half-width of local layers (ops::attention window_left = window_right).
  int64_t window() const { return local_attention / 2; }
};

// Parses and validates. Errors name `source` and the key, e.g.
//   "m/config.json: hidden_size: 100 is not a multiple of num_attention_heads = 12",
//   "m/config.json: hidden_activation: unknown activation 'swiglu': expected gelu, ...",
//   "m/config.json: rope_parameters.full_attention.rope_theta 10000 contradicts global_rope_theta 160000".
ModernBertConfig parse_modernbert_config(const nlohmann::json& j, const std::string& source);

// config.json for saving: `raw` with every field above (both config generations' RoPE keys, so
// v4 and v5 transformers read it) and `architectures` = [architecture].
nlohmann::json modernbert_config_to_json(const ModernBertConfig& c, const std::string& architecture);

}  // namespace lmf
