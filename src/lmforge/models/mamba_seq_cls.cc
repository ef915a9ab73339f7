#include "lmforge/models/mamba_seq_cls.h"

#include <cmath>
#include <set>

#include "lmforge/core/philox.h"
#include "lmforge/models/config_json.h"
#include "lmforge/ops/dropout.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"

namespace lmf {

namespace {

// The backbone never builds lm_head: tying is irrelevant to a classifier.
MambaConfig without_lm_head(MambaConfig c) {
  c.tie_word_embeddings = true;
  return c;
}

std::vector<std::string> default_label_names(int64_t k) {
  std::vector<std::string> v;
  for (int64_t i = 0; i < k; i++) v.push_back("LABEL_" + std::to_string(i));  // HF PretrainedConfig default
  return v;
}

// Label names of a config.json's id2label ({"0": "neg", "1": "pos"}), in id order; empty when absent.
std::vector<std::string> id2label_names(const nlohmann::json& j, const std::string& src) {
  if (!j.contains("id2label") || j["id2label"].is_null()) return {};
  const auto& m = j["id2label"];
  if (!m.is_object()) fail(src, ": id2label: expected an object {\"0\": \"name\", ...}");
  std::vector<std::string> names(m.size());
  std::vector<bool> seen(m.size(), false);
  for (auto it = m.begin(); it != m.end(); ++it) {
    size_t id = 0;
    try {
      size_t used = 0;
      id = std::stoul(it.key(), &used);
      if (used != it.key().size()) throw std::invalid_argument("x");
    } catch (const std::exception&) {
      fail(src, ": id2label: key '", it.key(), "' is not a label id");
    }
    if (id >= m.size() || seen[id])
      fail(src, ": id2label: ids must be 0..", m.size() - 1, " once each, got '", it.key(), "'");
    if (!it.value().is_string()) fail(src, ": id2label['", it.key(), "']: expected a string");
    names[id] = it.value().get<std::string>();
    seen[id] = true;
  }
  return names;
}

}  // namespace

MambaForSequenceClassification::MambaForSequenceClassification(const MambaConfig& config, int64_t num_labels,
                                                               Pooling pooling, double classifier_dropout,
                                                               ParamStore& store)
    : cfg_(config),
      store_(store),
      backbone_(without_lm_head(config), store),
      num_labels_(num_labels),
      pooling_(pooling),
      dropout_(classifier_dropout),
      label_names_(default_label_names(num_labels)) {
  if (num_labels < 1) fail("MambaForSequenceClassification: num_labels must be >= 1, got ", num_labels);
  if (!(classifier_dropout >= 0 && classifier_dropout < 1))
    fail("MambaForSequenceClassification: classifier_dropout must be in [0, 1), got ", classifier_dropout);
  store_.add(ParamSpec{"classifier.weight", {num_labels, cfg_.hidden_size}, true, true, false});
  store_.add(ParamSpec{"classifier.bias", {num_labels}, true, false, false});
}

void MambaForSequenceClassification::set_label_names(const std::vector<std::string>& names) {
  if (static_cast<int64_t>(names.size()) != num_labels_)
    fail("MambaForSequenceClassification: ", names.size(), " label names for ", num_labels_, " labels");
  std::set<std::string> seen;
  for (const auto& n : names)
    if (n.empty() || !seen.insert(n).second)
      fail("MambaForSequenceClassification: label names must be unique and non-empty");
  label_names_ = names;
}

nlohmann::json MambaForSequenceClassification::hf_config() const {
  nlohmann::json j = mamba_config_to_json(cfg_);
  j["architectures"] = {architecture()};
  j["num_labels"] = num_labels_;
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (size_t i = 0; i < label_names_.size(); i++) {
    id2label[std::to_string(i)] = label_names_[i];
    label2id[label_names_[i]] = static_cast<int64_t>(i);
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  j["problem_type"] = "single_label_classification";
  j["lmforge_pooling"] = pooling_name(pooling_);
  j["classifier_dropout"] = dropout_;
  return j;
}

void MambaForSequenceClassification::init_weights(Generator& gen) {
  backbone_.init_weights(gen);
  const uint64_t off = gen.next_offset();
  const float std = static_cast<float>(cfg_.initializer_range);
  Tensor w = store_.master("classifier.weight");
  std::vector<float> v(static_cast<size_t>(w.numel()));
  for (size_t i = 0; i < v.size(); i++) v[i] = std * philox_normal(gen.seed, off, uint64_t(i));
  w.copy_from(Tensor::from_vector<float>(v, w.shape()).to(w.device()));
  store_.master("classifier.bias").zero_();
  store_.sync_compute();
}

Tensor MambaForSequenceClassification::classify(const TokenBatch& batch, const ForwardOptions& options) {
  const RaggedBatch r = unpad(batch);
  const int64_t N = r.num_tokens();
  if (N == 0) fail("[mamba_seq_cls] the batch has no real tokens");
  for (int64_t id : r.ids)
    if (id < 0 || id >= cfg_.vocab_size)
      fail("[mamba_seq_cls] token id ", id, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  // One packed row; seq_idx changes at every sequence start, resetting scan state and conv window.
  std::vector<int32_t> seq(static_cast<size_t>(N));
  for (int64_t b = 0; b < r.batch; b++)
    for (int32_t i = r.cu_seqlens[size_t(b)]; i < r.cu_seqlens[size_t(b) + 1]; i++)
      seq[size_t(i)] = int32_t(b);
  const Device dev = store_.device();
  Tensor ids = to_index_tensor(r.ids, dev).view({1, N});
  Tensor seq_idx = Tensor::from_vector<int32_t>(seq, {1, N}, dev);
  Tensor h = backbone_.forward_hidden(ids, seq_idx, options.recompute);                   // [1, N, H]
  Tensor pooled = pool_sequences(h.view({N, cfg_.hidden_size}), r.cu_seqlens, pooling_);  // [B, H]
  if (options.training && dropout_ > 0) {
    if (!options.gen) fail("[mamba_seq_cls] training with classifier_dropout > 0 needs a dropout generator");
    pooled = ops::dropout(pooled, static_cast<float>(dropout_), *options.gen, true);
  }
  const Tensor& W = store_.param("classifier.weight");
  Tensor logits = ops::linear(ops::cast(pooled, W.dtype()), W, store_.param("classifier.bias"));
  return ops::cast(logits, DType::f32);
}

double MambaForSequenceClassification::train_flops_per_token(int64_t seq_len) const {
  // The backbone's estimate counts the tied LM head (V x H); the classifier replaces it.
  const double lm_head = 6.0 * double(cfg_.vocab_size) * double(cfg_.hidden_size);
  return backbone_.train_flops_per_token(seq_len) - lm_head;
}

std::unique_ptr<HfModel> make_mamba_task_model(const nlohmann::json& j, const std::string& src,
                                               ParamStore& store, const TaskModelRequest& req) {
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  const bool is_cls = arch == "MambaForSequenceClassification";
  if (req.head == TaskHead::from_config && !is_cls)
    fail(src, ": architectures: '", arch.empty() ? std::string("(none)") : arch,
         "' is not a Mamba task model; load it with head sequence_classification to fine-tune a classifier "
         "(causal LMs are for pretrain / eval / generate)");
  if (req.head == TaskHead::base || req.head == TaskHead::masked_lm)
    fail(src, ": model_type 'mamba' supports only the sequence_classification head here");
  MambaConfig cfg = parse_mamba_config(j, src);
  std::vector<std::string> names = is_cls ? id2label_names(j, src) : std::vector<std::string>();
  int64_t config_labels = 0;
  if (is_cls) {
    config_labels = config_json::get_int(j, src, "num_labels", static_cast<int64_t>(names.size()));
    if (!names.empty() && config_labels != static_cast<int64_t>(names.size()))
      fail(src, ": num_labels ", config_labels, " contradicts id2label (", names.size(), " labels)");
  }
  int64_t k = req.num_labels > 0 ? req.num_labels : config_labels;
  if (k < 1)
    fail(src,
         ": the number of labels is unknown (no num_labels / id2label in the config and none requested)");
  if (is_cls && config_labels > 0 && req.num_labels > 0 && req.num_labels != config_labels)
    fail(src, ": this classifier has ", config_labels, " labels but ", req.num_labels,
         " were requested (fine-tune from its base model instead, or keep the label set)");
  std::string pool = req.pooling;
  if (pool.empty()) pool = config_json::get_string(j, src, "lmforge_pooling", "last");
  const Pooling pooling = parse_pooling(pool, src + ": lmforge_pooling");
  double dropout = 0.0;  // null (HF's "use the default") and absent mean none
  if (j.contains("classifier_dropout") && !j["classifier_dropout"].is_null()) {
    if (!j["classifier_dropout"].is_number()) fail(src, ": classifier_dropout: expected a number or null");
    dropout = j["classifier_dropout"].get<double>();
    if (!(dropout >= 0 && dropout < 1))
      fail(src, ": classifier_dropout: expected a value in [0, 1), got ", dropout);
  }
  auto m = std::make_unique<MambaForSequenceClassification>(cfg, k, pooling, dropout, store);
  if (static_cast<int64_t>(names.size()) == k) m->set_label_names(names);
  return m;
}

}  // namespace lmf
