// The `bert` family's heads: masked LM (BertLMPredictionHead / RobertaLMHead) and sequence
// classification (BertPooler + classifier / RobertaClassificationHead). PARITY.md §2-§3.
#include <set>

#include "lmforge/models/bert.h"
#include "lmforge/models/pooling.h"
#include "lmforge/ops/activation.h"
#include "lmforge/ops/dropout.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/norm.h"

namespace lmf {

namespace {

std::string encoder_prefix(const BertConfig& c) { return c.roberta_style() ? "roberta." : "bert."; }

// The dropout generator of a head, or an error when training needs one and none was given.
Generator& head_gen(const ForwardOptions& o, float p, Generator& fallback) {
  if (o.training && p > 0 && o.gen == nullptr)
    fail("[bert] training with classifier dropout ", p, " needs ForwardOptions::gen");
  return o.gen ? *o.gen : fallback;
}

}  // namespace

// ---- masked LM ----------------------------------------------------------------------------

// BERT: cls.predictions.{transform.dense, transform.LayerNorm, bias, decoder.weight};
// RoBERTa / XLM-R: lm_head.{dense, layer_norm, bias, decoder.weight}.
std::string BertMaskedLM::head(const std::string& part) const {
  const bool rob = enc_.config().roberta_style();
  if (part == "dense") return rob ? "lm_head.dense" : "cls.predictions.transform.dense";
  if (part == "norm") return rob ? "lm_head.layer_norm" : "cls.predictions.transform.LayerNorm";
  if (part == "bias") return rob ? "lm_head.bias" : "cls.predictions.bias";
  if (part == "decoder") return rob ? "lm_head.decoder.weight" : "cls.predictions.decoder.weight";
  fail("internal error: unknown MLM head part ", part);
}

BertMaskedLM::BertMaskedLM(const BertConfig& c, ParamStore& store)
    : enc_(c, store, encoder_prefix(c), false) {
  const int64_t H = c.hidden_size;
  store.add(ParamSpec{head("dense") + ".weight", {H, H}, true, true, false});
  store.add(ParamSpec{head("dense") + ".bias", {H}, true, false, false});
  store.add(ParamSpec{head("norm") + ".weight", {H}, true, false, false});
  store.add(ParamSpec{head("norm") + ".bias", {H}, true, false, false});
  store.add(ParamSpec{head("bias"), {c.vocab_size}, true, false, false});
  if (!c.tie_word_embeddings) store.add(ParamSpec{head("decoder"), {c.vocab_size, H}, true, true, false});
}

const char* BertMaskedLM::architecture() const {
  return bert_architecture(enc_.config().kind, "ForMaskedLM");
}

nlohmann::json BertMaskedLM::hf_config() const {
  return bert_config_to_json(enc_.config(), architecture(), /*with_labels=*/false);
}

std::vector<std::string> BertMaskedLM::hf_optional_on_load() const {
  // A base-model checkpoint has no MLM head: it is initialized, as transformers does.
  std::vector<std::string> names = {head("dense") + ".weight", head("dense") + ".bias",
                                    head("norm") + ".weight", head("norm") + ".bias", head("bias")};
  if (!enc_.config().tie_word_embeddings) names.push_back(head("decoder"));
  return names;
}

std::map<std::string, std::string> BertMaskedLM::hf_renames_on_load() const {
  auto r = enc_.renames();
  // The decoder's bias is the head's bias (tied); some checkpoints store only that alias.
  const std::string alias =
      enc_.config().roberta_style() ? "lm_head.decoder.bias" : "cls.predictions.decoder.bias";
  r[alias] = head("bias");
  return r;
}

void BertMaskedLM::init_weights(Generator& gen) {
  enc_.init_weights(gen);
  BertInit init{enc_.store(), gen, float(enc_.config().initializer_range)};
  init.linear(head("dense"));
  init.layer_norm(head("norm"));
  init.constant(head("bias"), 0.f);
  if (!enc_.config().tie_word_embeddings) init.normal(head("decoder"));
  enc_.store().sync_compute();
}

Tensor BertMaskedLM::mlm_transform(const Tensor& h) {
  const BertConfig& c = enc_.config();
  const ParamStore& s = enc_.store();
  Tensor t = ops::linear(h, s.param(head("dense") + ".weight"), s.param(head("dense") + ".bias"));
  // RobertaLMHead hard-codes the exact erf GELU; BertPredictionHeadTransform uses hidden_act.
  t = ops::activation(t, c.roberta_style() ? Activation::gelu_erf : c.act);
  return ops::layer_norm(t, s.param(head("norm") + ".weight"), s.param(head("norm") + ".bias"),
                         float(c.layer_norm_eps));
}

Tensor BertMaskedLM::decoder_weight() const {
  const BertConfig& c = enc_.config();
  return enc_.store().param(c.tie_word_embeddings ? enc_.prefix() + "embeddings.word_embeddings.weight"
                                                  : head("decoder"));
}

Tensor BertMaskedLM::decoder_bias() const { return enc_.store().param(head("bias")); }

Tensor BertMaskedLM::forward_output(const TokenBatch& batch, const ForwardOptions& options) {
  RaggedBatch r = unpad(batch);
  Tensor t = mlm_transform(enc_.encode(r, options));
  return repad(ops::cast(ops::linear(t, decoder_weight(), decoder_bias()), DType::f32), r);
}

double BertMaskedLM::train_flops_per_token(int64_t seq_len) const {
  const double H = double(hidden_size()), V = double(vocab_size());
  return enc_.train_flops_per_token(seq_len) + 6 * (H * H + V * H);
}

// ---- sequence classification --------------------------------------------------------------

BertSequenceClassifier::BertSequenceClassifier(const BertConfig& c, ParamStore& store)
    : enc_(c, store, encoder_prefix(c), /*with_pooler=*/!c.roberta_style()), cfg_(c) {
  const int64_t H = c.hidden_size, C = c.num_labels;
  auto add_linear = [&](const std::string& name, int64_t out, int64_t in) {
    store.add(ParamSpec{name + ".weight", {out, in}, true, true, false});
    store.add(ParamSpec{name + ".bias", {out}, true, false, false});
  };
  if (c.roberta_style()) {
    add_linear("classifier.dense", H, H);
    add_linear("classifier.out_proj", C, H);
  } else {
    add_linear("classifier", C, H);
  }
}

const char* BertSequenceClassifier::architecture() const {
  return bert_architecture(cfg_.kind, "ForSequenceClassification");
}

nlohmann::json BertSequenceClassifier::hf_config() const {
  return bert_config_to_json(cfg_, architecture(), /*with_labels=*/true);
}

std::vector<std::string> BertSequenceClassifier::hf_optional_on_load() const {
  // Fine-tuning from a base or MLM checkpoint: the head (and BERT's pooler, which MLM
  // checkpoints lack) is new and keeps its initialization.
  std::vector<std::string> names = enc_.optional_names();
  for (const auto& s : enc_.store().specs())
    if (s.name.rfind("classifier.", 0) == 0) names.push_back(s.name);
  return names;
}

void BertSequenceClassifier::init_weights(Generator& gen) {
  enc_.init_weights(gen);
  BertInit init{enc_.store(), gen, float(cfg_.initializer_range)};
  if (cfg_.roberta_style()) {
    init.linear("classifier.dense");
    init.linear("classifier.out_proj");
  } else {
    init.linear("classifier");
  }
  enc_.store().sync_compute();
}

double BertSequenceClassifier::train_flops_per_token(int64_t seq_len) const {
  return enc_.train_flops_per_token(seq_len);  // the head runs once per sequence: negligible
}

Tensor BertSequenceClassifier::classify(const TokenBatch& batch, const ForwardOptions& options) {
  return classify_ragged(unpad(batch), options);
}

Tensor BertSequenceClassifier::classify_ragged(const RaggedBatch& r, const ForwardOptions& o) {
  const ParamStore& s = enc_.store();
  const float p = float(cfg_.classifier_dropout_prob());
  Generator none;
  Generator& gen = head_gen(o, p, none);
  Tensor h = enc_.encode(r, o);
  Tensor logits;
  if (cfg_.roberta_style()) {
    // RobertaClassificationHead: h_first -> dropout -> dense -> tanh -> dropout -> out_proj.
    Tensor x = ops::dropout(pool_sequences(h, r.cu_seqlens, Pooling::cls), p, gen, o.training);
    x = ops::activation(ops::linear(x, s.param("classifier.dense.weight"), s.param("classifier.dense.bias")),
                        Activation::tanh_act);
    x = ops::dropout(x, p, gen, o.training);
    logits = ops::linear(x, s.param("classifier.out_proj.weight"), s.param("classifier.out_proj.bias"));
  } else {
    // BertForSequenceClassification: classifier(dropout(pooler_output)).
    Tensor x = ops::dropout(enc_.pooled(h, r), p, gen, o.training);
    logits = ops::linear(x, s.param("classifier.weight"), s.param("classifier.bias"));
  }
  return ops::cast(logits, DType::f32);
}

void BertSequenceClassifier::set_label_names(const std::vector<std::string>& names) {
  if (static_cast<int64_t>(names.size()) != cfg_.num_labels)
    fail("[bert] set_label_names: ", names.size(), " names for a classifier with ", cfg_.num_labels,
         " labels");
  std::set<std::string> seen;
  for (const auto& n : names)
    if (!seen.insert(n).second)
      fail("[bert] set_label_names: label '", n, "' appears twice (label2id needs unique names)");
  cfg_.labels = names;
}

}  // namespace lmf
