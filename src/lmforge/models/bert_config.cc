#include "lmforge/models/bert_config.h"

#include <cmath>

#include "lmforge/core/error.h"
#include "lmforge/models/config_json.h"

namespace lmf {

using namespace config_json;
using nlohmann::json;

std::string BertConfig::label_name(int64_t i) const {
  if (i >= 0 && i < static_cast<int64_t>(labels.size())) return labels[size_t(i)];
  return "LABEL_" + std::to_string(i);
}

const char* bert_architecture(BertKind kind, const char* suffix) {
  static const std::map<std::pair<int, std::string>, std::string> names = [] {
    std::map<std::pair<int, std::string>, std::string> m;
    const std::pair<BertKind, const char*> prefixes[] = {
        {BertKind::bert, "Bert"}, {BertKind::roberta, "Roberta"}, {BertKind::xlm_roberta, "XLMRoberta"}};
    for (const auto& [k, p] : prefixes)
      for (const char* s : {"Model", "ForMaskedLM", "ForSequenceClassification"})
        m[{int(k), s}] = std::string(p) + s;
    return m;
  }();
  auto it = names.find({int(kind), suffix});
  LMF_CHECK(it != names.end(), "unknown architecture suffix ", suffix);
  return it->second.c_str();
}

namespace {

// id2label {"0": "neg", "1": "pos"} -> {"neg", "pos"}; the keys must be exactly 0..n-1.
std::vector<std::string> parse_id2label(const json& j, const std::string& src) {
  if (!j.is_object()) fail(src, ": id2label: expected an object {\"0\": \"name\", ...}");
  std::vector<std::string> labels(j.size());
  std::vector<bool> seen(j.size(), false);
  for (auto it = j.begin(); it != j.end(); ++it) {
    size_t pos = 0;
    long long id = -1;
    try {
      id = std::stoll(it.key(), &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos != it.key().size() || id < 0 || id >= static_cast<long long>(j.size()) || seen[size_t(id)])
      fail(src, ": id2label: key '", it.key(), "' is not one of the ids 0..", j.size() - 1, " (each once)");
    if (!it.value().is_string()) fail(src, ": id2label: label of id ", id, " must be a string");
    labels[size_t(id)] = it.value().get<std::string>();
    seen[size_t(id)] = true;
  }
  return labels;
}

BertKind parse_kind(const std::string& type, const std::string& src) {
  if (type == "bert") return BertKind::bert;
  if (type == "roberta") return BertKind::roberta;
  if (type == "xlm-roberta") return BertKind::xlm_roberta;
  fail(src, ": model_type: expected \"bert\", \"roberta\" or \"xlm-roberta\", got \"", type, "\"");
}

}  // namespace

BertConfig parse_bert_config(const json& j, const std::string& src) {
  if (!j.is_object()) fail(src, ": expected a JSON object");
  BertConfig c;
  c.raw = j;
  c.model_type = get_string(j, src, "model_type", "");
  if (c.model_type.empty())
    fail(src, ": model_type: missing (expected \"bert\", \"roberta\" or \"xlm-roberta\")");
  c.kind = parse_kind(c.model_type, src);
  // RobertaConfig / XLMRobertaConfig change only the special ids (pad 1, bos 0, eos 2).
  if (c.roberta_style()) c.pad_token_id = 1;
  // The sizes have no sensible default: a config.json without them is the wrong file (HF would
  // silently build a 110M-parameter bert-base).
  c.vocab_size = get_int(j, src, "vocab_size", 0, true);
  c.hidden_size = get_int(j, src, "hidden_size", 0, true);
  c.num_hidden_layers = get_int(j, src, "num_hidden_layers", 0, true);
  c.num_attention_heads = get_int(j, src, "num_attention_heads", 0, true);
  c.intermediate_size = get_int(j, src, "intermediate_size", 0, true);
  for (auto [k, v] : {std::pair{"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"intermediate_size", c.intermediate_size}})
    require_positive(src, k, v);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail(src, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
         c.num_attention_heads);
  c.hidden_act = get_string(j, src, "hidden_act", c.hidden_act);
  try {
    c.act = parse_activation(c.hidden_act);
  } catch (const Error& e) {
    fail(src, ": hidden_act: ", e.what());
  }
  if (c.act == Activation::softplus || c.act == Activation::tanh_act)
    fail(src, ": hidden_act: '", c.hidden_act,
         "' is not a BERT activation (expected gelu, gelu_new, relu or silu)");
  c.hidden_dropout_prob = get_double(j, src, "hidden_dropout_prob", c.hidden_dropout_prob);
  c.attention_probs_dropout_prob =
      get_double(j, src, "attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  c.classifier_dropout = get_double(j, src, "classifier_dropout", -1);
  for (auto [k, v] : {std::pair{"hidden_dropout_prob", c.hidden_dropout_prob},
                      {"attention_probs_dropout_prob", c.attention_probs_dropout_prob}})
    if (!(v >= 0 && v < 1)) fail(src, ": ", k, ": expected a probability in [0, 1), got ", v);
  if (j.contains("classifier_dropout") && !j["classifier_dropout"].is_null() &&
      !(c.classifier_dropout >= 0 && c.classifier_dropout < 1))
    fail(src, ": classifier_dropout: expected null or a probability in [0, 1), got ", c.classifier_dropout);
  c.max_position_embeddings = get_int(j, src, "max_position_embeddings", c.max_position_embeddings);
  c.type_vocab_size = get_int(j, src, "type_vocab_size", c.type_vocab_size);
  require_positive(src, "max_position_embeddings", c.max_position_embeddings);
  require_positive(src, "type_vocab_size", c.type_vocab_size);
  c.initializer_range = get_double(j, src, "initializer_range", c.initializer_range);
  if (!(c.initializer_range >= 0) || !std::isfinite(c.initializer_range))
    fail(src, ": initializer_range: expected a non-negative number, got ", c.initializer_range);
  c.layer_norm_eps = get_double(j, src, "layer_norm_eps", c.layer_norm_eps);
  if (!(c.layer_norm_eps > 0) || !std::isfinite(c.layer_norm_eps))
    fail(src, ": layer_norm_eps: expected a positive number, got ", c.layer_norm_eps);
  c.pad_token_id = get_int(j, src, "pad_token_id", c.pad_token_id);
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    fail(src, ": pad_token_id ", c.pad_token_id, " is outside the vocabulary [0, ", c.vocab_size, ")");
  if (c.roberta_style() && c.max_position_embeddings < c.pad_token_id + 2)
    fail(src, ": max_position_embeddings ", c.max_position_embeddings,
         " leaves no position after padding_idx ", c.pad_token_id, " (", c.model_type,
         " positions start at pad_token_id + 1)");
  c.tie_word_embeddings = get_bool(j, src, "tie_word_embeddings", c.tie_word_embeddings);

  const std::string pos_type = get_string(j, src, "position_embedding_type", "absolute");
  if (pos_type == "relative_key" || pos_type == "relative_key_query")
    fail(src, ": position_embedding_type: '", pos_type, "' is not supported (only 'absolute')");
  if (pos_type != "absolute")
    fail(src, ": position_embedding_type: unknown value '", pos_type,
         "' (expected 'absolute'; HF also knows relative_key / relative_key_query)");
  if (get_bool(j, src, "is_decoder", false))
    fail(src, ": is_decoder: true (causal BERT) is not supported; the bert family is an encoder");
  if (get_bool(j, src, "add_cross_attention", false))
    fail(src, ": add_cross_attention: true is not supported (encoder-decoder BERT)");

  // Labels: id2label decides num_labels; an explicit num_labels must agree with it.
  if (j.contains("id2label") && !j["id2label"].is_null()) c.labels = parse_id2label(j["id2label"], src);
  const int64_t n_from_labels = static_cast<int64_t>(c.labels.size());
  c.num_labels = get_int(j, src, "num_labels", n_from_labels > 0 ? n_from_labels : c.num_labels);
  require_positive(src, "num_labels", c.num_labels);
  if (n_from_labels > 0 && c.num_labels != n_from_labels)
    fail(src, ": num_labels ", c.num_labels, " contradicts id2label, which has ", n_from_labels, " labels");
  if (j.contains("label2id") && j["label2id"].is_object() && !c.labels.empty()) {
    for (size_t i = 0; i < c.labels.size(); i++) {
      const json& l2i = j["label2id"];
      if (l2i.contains(c.labels[i]) &&
          !(l2i[c.labels[i]].is_number_integer() && l2i[c.labels[i]].get<int64_t>() == int64_t(i)))
        fail(src, ": label2id['", c.labels[i], "'] contradicts id2label (which gives id ", i, ")");
    }
  }
  if (j.contains("architectures") && j["architectures"].is_array())
    for (const auto& a : j["architectures"])
      if (a.is_string()) c.architectures.push_back(a.get<std::string>());
  return c;
}

json bert_config_to_json(const BertConfig& c, const std::string& architecture, bool with_labels) {
  json j = c.raw.is_object() ? c.raw : json::object();
  j["model_type"] = c.model_type;
  j["architectures"] = {architecture};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["hidden_act"] = c.hidden_act;
  j["hidden_dropout_prob"] = c.hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = c.attention_probs_dropout_prob;
  j["classifier_dropout"] = c.classifier_dropout >= 0 ? json(c.classifier_dropout) : json(nullptr);
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["type_vocab_size"] = c.type_vocab_size;
  j["initializer_range"] = c.initializer_range;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["pad_token_id"] = c.pad_token_id;
  j["position_embedding_type"] = "absolute";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (with_labels) {
    json id2label = json::object(), label2id = json::object();
    for (int64_t i = 0; i < c.num_labels; i++) {
      id2label[std::to_string(i)] = c.label_name(i);
      label2id[c.label_name(i)] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
    j.erase("num_labels");  // HF derives it from id2label (and does not write it)
    if (!j.contains("problem_type") || j["problem_type"].is_null())
      j["problem_type"] = "single_label_classification";
  }
  return j;
}

}  // namespace lmf
