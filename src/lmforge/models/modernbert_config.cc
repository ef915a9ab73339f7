#include "lmforge/models/modernbert_config.h"

#include <cmath>

#include "lmforge/core/error.h"
#include "lmforge/models/config_json.h"

namespace lmf {

using namespace config_json;
using nlohmann::json;

namespace {

Activation activation_of(const std::string& src, const char* key, const std::string& name) {
  try {
    return parse_activation(name);
  } catch (const Error& e) {
    fail(src, ": ", key, ": ", e.what());
  }
}

void require_probability(const std::string& src, const char* key, double p) {
  if (!(p >= 0 && p < 1)) fail(src, ": ", key, ": expected a dropout probability in [0, 1), got ", p);
}

// v5 rope_parameters[layer_type]: {"rope_type": "default", "rope_theta": x}. Returns the theta,
// or `legacy` (the v4 key's value, or HF's default) when the entry has none.
double rope_entry(const json& rp, const std::string& src, const char* type, double legacy, bool legacy_given,
                  const char* legacy_key) {
  const std::string where = std::string("rope_parameters.") + type;
  if (!rp.contains(type)) fail(src, ": ", where, ": missing (expected {\"rope_theta\": ...})");
  const json& e = rp[type];
  if (!e.is_object()) fail(src, ": ", where, ": expected an object");
  const std::string rope_type = get_string(e, src + ": " + where, "rope_type", "default");
  if (rope_type != "default")
    fail(src, ": ", where, ".rope_type: '", rope_type, "' is not supported (ModernBERT uses \"default\")");
  if (e.contains("factor") && !e["factor"].is_null())
    fail(src, ": ", where, ".factor: RoPE scaling is not supported");
  if (e.contains("partial_rotary_factor") && get_double(e, src, "partial_rotary_factor", 1.0) != 1.0)
    fail(src, ": ", where, ".partial_rotary_factor: only 1.0 is supported (HF ModernBERT rotates all of head_dim)");
  if (!e.contains("rope_theta") || e["rope_theta"].is_null()) return legacy;
  const double theta = get_double(e, src + ": " + where, "rope_theta", legacy);
  if (legacy_given && theta != legacy)
    fail(src, ": ", where, ".rope_theta ", theta, " contradicts ", legacy_key, " ", legacy);
  return theta;
}

std::vector<std::string> parse_labels(const json& j, const std::string& src) {
  std::vector<std::string> names;
  if (!j.contains("id2label") || j["id2label"].is_null()) return names;
  const json& m = j["id2label"];
  if (!m.is_object()) fail(src, ": id2label: expected an object {\"0\": \"name\", ...}");
  names.resize(m.size());
  std::vector<bool> seen(m.size(), false);
  for (auto it = m.begin(); it != m.end(); ++it) {
    size_t pos = 0;
    long long id = -1;
    try {
      id = std::stoll(it.key(), &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos != it.key().size() || id < 0 || id >= (long long)m.size() || seen[size_t(id)])
      fail(src, ": id2label: key '", it.key(), "' is not one of the ids 0..", m.size() - 1, " (each once)");
    if (!it.value().is_string()) fail(src, ": id2label[\"", it.key(), "\"]: expected a string");
    seen[size_t(id)] = true;
    names[size_t(id)] = it.value().get<std::string>();
  }
  return names;
}

}  // namespace

ModernBertConfig parse_modernbert_config(const json& j, const std::string& src) {
  if (!j.is_object()) fail(src, ": expected a JSON object");
  ModernBertConfig c;
  c.raw = j;
  const std::string type = get_string(j, src, "model_type", "modernbert");
  if (type != "modernbert") fail(src, ": model_type: expected \"modernbert\", got \"", type, "\"");
  c.vocab_size = get_int(j, src, "vocab_size", c.vocab_size);
  c.hidden_size = get_int(j, src, "hidden_size", c.hidden_size);
  c.intermediate_size = get_int(j, src, "intermediate_size", c.intermediate_size);
  c.num_hidden_layers = get_int(j, src, "num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = get_int(j, src, "num_attention_heads", c.num_attention_heads);
  c.hidden_activation = get_string(j, src, "hidden_activation", c.hidden_activation);
  c.max_position_embeddings = get_int(j, src, "max_position_embeddings", c.max_position_embeddings);
  c.initializer_range = get_double(j, src, "initializer_range", c.initializer_range);
  c.initializer_cutoff_factor = get_double(j, src, "initializer_cutoff_factor", c.initializer_cutoff_factor);
  c.norm_eps = get_double(j, src, "norm_eps", c.norm_eps);
  c.norm_bias = get_bool(j, src, "norm_bias", c.norm_bias);
  c.pad_token_id = get_int(j, src, "pad_token_id", c.pad_token_id);
  c.eos_token_id = get_int(j, src, "eos_token_id", c.eos_token_id);
  c.bos_token_id = get_int(j, src, "bos_token_id", c.bos_token_id);
  c.cls_token_id = get_int(j, src, "cls_token_id", c.cls_token_id);
  c.sep_token_id = get_int(j, src, "sep_token_id", c.sep_token_id);
  c.attention_bias = get_bool(j, src, "attention_bias", c.attention_bias);
  c.attention_dropout = get_double(j, src, "attention_dropout", c.attention_dropout);
  c.global_attn_every_n_layers = get_int(j, src, "global_attn_every_n_layers", c.global_attn_every_n_layers);
  c.local_attention = get_int(j, src, "local_attention", c.local_attention);
  c.embedding_dropout = get_double(j, src, "embedding_dropout", c.embedding_dropout);
  c.mlp_bias = get_bool(j, src, "mlp_bias", c.mlp_bias);
  c.mlp_dropout = get_double(j, src, "mlp_dropout", c.mlp_dropout);
  c.decoder_bias = get_bool(j, src, "decoder_bias", c.decoder_bias);
  c.classifier_pooling = get_string(j, src, "classifier_pooling", c.classifier_pooling);
  c.classifier_dropout = get_double(j, src, "classifier_dropout", c.classifier_dropout);
  c.classifier_bias = get_bool(j, src, "classifier_bias", c.classifier_bias);
  c.classifier_activation = get_string(j, src, "classifier_activation", c.classifier_activation);
  c.sparse_prediction = get_bool(j, src, "sparse_prediction", c.sparse_prediction);
  c.sparse_pred_ignore_index = get_int(j, src, "sparse_pred_ignore_index", c.sparse_pred_ignore_index);
  c.tie_word_embeddings = get_bool(j, src, "tie_word_embeddings", c.tie_word_embeddings);
  c.problem_type = get_string(j, src, "problem_type", "");

  for (auto [k, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size}, {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"global_attn_every_n_layers", c.global_attn_every_n_layers},
                      {"local_attention", c.local_attention}})
    require_positive(src, k, v);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail(src, ": hidden_size: ", c.hidden_size, " is not a multiple of num_attention_heads = ", c.num_attention_heads);
  c.head_dim = c.hidden_size / c.num_attention_heads;
  if (c.head_dim % 2 != 0) fail(src, ": hidden_size / num_attention_heads = ", c.head_dim, " must be even (RoPE)");
  if (j.contains("head_dim") && !j["head_dim"].is_null() && get_int(j, src, "head_dim", c.head_dim) != c.head_dim)
    fail(src, ": head_dim: ", get_int(j, src, "head_dim", 0), " contradicts hidden_size / num_attention_heads = ",
         c.head_dim);
  c.hidden_act = activation_of(src, "hidden_activation", c.hidden_activation);
  c.classifier_act = activation_of(src, "classifier_activation", c.classifier_activation);
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps)) fail(src, ": norm_eps: expected a positive number");
  if (!(c.initializer_range > 0)) fail(src, ": initializer_range: expected a positive number");
  if (!(c.initializer_cutoff_factor > 0)) fail(src, ": initializer_cutoff_factor: expected a positive number");
  require_probability(src, "attention_dropout", c.attention_dropout);
  require_probability(src, "embedding_dropout", c.embedding_dropout);
  require_probability(src, "mlp_dropout", c.mlp_dropout);
  require_probability(src, "classifier_dropout", c.classifier_dropout);
  if (c.classifier_pooling != "cls" && c.classifier_pooling != "mean")
    fail(src, ": classifier_pooling: expected \"cls\" or \"mean\", got \"", c.classifier_pooling, "\"");
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    fail(src, ": pad_token_id: ", c.pad_token_id, " is outside the vocabulary [0, ", c.vocab_size, ")");

  // RoPE thetas: v4 keys, v5 rope_parameters, or both (then they must agree).
  const bool g_given = j.contains("global_rope_theta") && !j["global_rope_theta"].is_null();
  const bool l_given = j.contains("local_rope_theta") && !j["local_rope_theta"].is_null();
  c.global_rope_theta = get_double(j, src, "global_rope_theta", c.global_rope_theta);
  c.local_rope_theta = get_double(j, src, "local_rope_theta", c.local_rope_theta);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail(src, ": rope_scaling: RoPE scaling is not supported for ModernBERT");
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    const json& rp = j["rope_parameters"];
    if (!rp.is_object()) fail(src, ": rope_parameters: expected an object");
    if (rp.contains("rope_theta"))
      fail(src, ": rope_parameters: expected per-layer-type entries \"full_attention\" and \"sliding_attention\", "
                "got a single rope_theta");
    c.global_rope_theta = rope_entry(rp, src, "full_attention", c.global_rope_theta, g_given, "global_rope_theta");
    c.local_rope_theta = rope_entry(rp, src, "sliding_attention", c.local_rope_theta, l_given, "local_rope_theta");
  }
  for (auto [k, v] : {std::pair{"global_rope_theta", c.global_rope_theta}, {"local_rope_theta", c.local_rope_theta}})
    if (!(v > 0) || !std::isfinite(v)) fail(src, ": ", k, ": expected a positive number, got ", v);

  // v5 layer_types must follow the global_attn_every_n_layers rule: HF takes the RoPE theta from
  // layer_types but the window from layer_id % global_attn_every_n_layers, so any other pattern
  // would mix the two.
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || int64_t(lt.size()) != c.num_hidden_layers)
      fail(src, ": layer_types: expected a list of num_hidden_layers = ", c.num_hidden_layers, " entries");
    for (int64_t l = 0; l < c.num_hidden_layers; l++) {
      const json& e = lt[size_t(l)];
      if (!e.is_string() || (e != "full_attention" && e != "sliding_attention"))
        fail(src, ": layer_types[", l, "]: expected \"full_attention\" or \"sliding_attention\", got ", e.dump());
      const bool global = e == "full_attention";
      if (global != c.is_global(l))
        fail(src, ": layer_types[", l, "]: ", e.get<std::string>(), " contradicts global_attn_every_n_layers = ",
             c.global_attn_every_n_layers, " (layer ", l, " is ", c.is_global(l) ? "global" : "local", ")");
    }
  }

  // Labels: id2label fixes num_labels; a num_labels key must agree.
  c.label_names = parse_labels(j, src);
  const bool n_given = j.contains("num_labels") && !j["num_labels"].is_null();
  if (!c.label_names.empty()) {
    c.num_labels = int64_t(c.label_names.size());
    if (n_given && get_int(j, src, "num_labels", 0) != c.num_labels)
      fail(src, ": num_labels: ", get_int(j, src, "num_labels", 0), " contradicts id2label with ", c.num_labels,
           " entries");
  } else if (n_given) {
    c.num_labels = get_int(j, src, "num_labels", c.num_labels);
  }
  require_positive(src, "num_labels", c.num_labels);
  if (!c.problem_type.empty() && c.problem_type != "single_label_classification" && c.problem_type != "regression" &&
      c.problem_type != "multi_label_classification")
    fail(src, ": problem_type: expected single_label_classification, regression or multi_label_classification, got \"",
         c.problem_type, "\"");
  return c;
}

json modernbert_config_to_json(const ModernBertConfig& c, const std::string& architecture) {
  json j = c.raw.is_object() ? c.raw : json::object();
  j["model_type"] = "modernbert";
  j["architectures"] = {architecture};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["hidden_activation"] = c.hidden_activation;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["initializer_cutoff_factor"] = c.initializer_cutoff_factor;
  j["norm_eps"] = c.norm_eps;
  j["norm_bias"] = c.norm_bias;
  j["pad_token_id"] = c.pad_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["bos_token_id"] = c.bos_token_id;
  j["cls_token_id"] = c.cls_token_id;
  j["sep_token_id"] = c.sep_token_id;
  j["attention_bias"] = c.attention_bias;
  j["attention_dropout"] = c.attention_dropout;
  j["global_attn_every_n_layers"] = c.global_attn_every_n_layers;
  j["local_attention"] = c.local_attention;
  j["global_rope_theta"] = c.global_rope_theta;
  j["local_rope_theta"] = c.local_rope_theta;
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", c.global_rope_theta}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", c.local_rope_theta}}}};
  json types = json::array();
  for (int64_t l = 0; l < c.num_hidden_layers; l++) types.push_back(c.is_global(l) ? "full_attention" : "sliding_attention");
  j["layer_types"] = types;
  j["embedding_dropout"] = c.embedding_dropout;
  j["mlp_bias"] = c.mlp_bias;
  j["mlp_dropout"] = c.mlp_dropout;
  j["decoder_bias"] = c.decoder_bias;
  j["classifier_pooling"] = c.classifier_pooling;
  j["classifier_dropout"] = c.classifier_dropout;
  j["classifier_bias"] = c.classifier_bias;
  j["classifier_activation"] = c.classifier_activation;
  j["sparse_prediction"] = c.sparse_prediction;
  j["sparse_pred_ignore_index"] = c.sparse_pred_ignore_index;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (!c.problem_type.empty()) j["problem_type"] = c.problem_type;
  j.erase("num_labels");  // HF derives it from id2label
  json id2label = json::object(), label2id = json::object();
  for (int64_t i = 0; i < c.num_labels; i++) {
    const std::string name = i < int64_t(c.label_names.size()) ? c.label_names[size_t(i)] : "LABEL_" + std::to_string(i);
    id2label[std::to_string(i)] = name;
    label2id[name] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  return j;
}

}  // namespace lmf
