#include "lmforge/models/bert.h"

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/philox.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/pooling.h"
#include "lmforge/ops/activation.h"
#include "lmforge/ops/attention.h"
#include "lmforge/ops/dropout.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/norm.h"

namespace lmf {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// HF Trainer / original BERT optimizer rule: no weight decay on biases and LayerNorm weights.
bool bert_param_decays(const std::string& n) {
  return !(ends_with(n, ".bias") || n.find("LayerNorm.") != std::string::npos ||
           n.find("layer_norm.") != std::string::npos);
}

}  // namespace

// ---- init ---------------------------------------------------------------------------------

void BertInit::normal(const std::string& name) const {
  Tensor m = store.master(name);
  const uint64_t off = gen.next_offset();
  std::vector<float> v(size_t(m.numel()));
  for (size_t i = 0; i < v.size(); i++) v[i] = std * philox_normal(gen.seed, off, uint64_t(i));
  m.copy_from(Tensor::from_vector<float>(v, m.shape()));
}

void BertInit::constant(const std::string& name, float value) const {
  Tensor m = store.master(name);
  m.copy_from(Tensor::full(m.shape(), value, DType::f32));
}

void BertInit::linear(const std::string& prefix) const {
  normal(prefix + ".weight");
  if (store.has(prefix + ".bias")) constant(prefix + ".bias", 0.f);
}

void BertInit::layer_norm(const std::string& prefix) const {
  constant(prefix + ".weight", 1.f);
  constant(prefix + ".bias", 0.f);
}

void BertInit::embedding(const std::string& name, int64_t padding_idx) const {
  normal(name);
  if (padding_idx < 0) return;
  Tensor m = store.master(name);
  m.select(0, padding_idx).copy_from(Tensor::zeros({m.size(1)}, DType::f32));
}

// ---- encoder ------------------------------------------------------------------------------

BertEncoder::BertEncoder(const BertConfig& c, ParamStore& store, std::string prefix, bool with_pooler)
    : cfg_(c), store_(store), prefix_(std::move(prefix)), with_pooler_(with_pooler) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  auto add = [&](const std::string& name, Shape shape) {
    store_.add(ParamSpec{name, std::move(shape), true, bert_param_decays(name), false});
  };
  auto add_linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name + ".weight", {out, in});
    add(name + ".bias", {out});
  };
  auto add_norm = [&](const std::string& name) {
    add(name + ".weight", {H});
    add(name + ".bias", {H});
  };
  add(p("embeddings.word_embeddings.weight"), {c.vocab_size, H});
  add(p("embeddings.position_embeddings.weight"), {c.max_position_embeddings, H});
  add(p("embeddings.token_type_embeddings.weight"), {c.type_vocab_size, H});
  add_norm(p("embeddings.LayerNorm"));
  for (int l = 0; l < c.num_hidden_layers; l++) {
    for (const char* qkv : {"attention.self.query", "attention.self.key", "attention.self.value"})
      add_linear(layer_p(l, qkv), H, H);
    add_linear(layer_p(l, "attention.output.dense"), H, H);
    add_norm(layer_p(l, "attention.output.LayerNorm"));
    add_linear(layer_p(l, "intermediate.dense"), I, H);
    add_linear(layer_p(l, "output.dense"), H, I);
    add_norm(layer_p(l, "output.LayerNorm"));
  }
  if (with_pooler_) add_linear(p("pooler.dense"), H, H);
}

std::string BertEncoder::layer_p(int l, const std::string& suffix) const {
  return prefix_ + "encoder.layer." + std::to_string(l) + "." + suffix;
}

void BertEncoder::init_weights(Generator& gen) const {
  BertInit init{store_, gen, float(cfg_.initializer_range)};
  // nn.Embedding(padding_idx=pad) for words; RoBERTa's position table is padded too.
  init.embedding(p("embeddings.word_embeddings.weight"), cfg_.pad_token_id);
  init.embedding(p("embeddings.position_embeddings.weight"), cfg_.roberta_style() ? cfg_.pad_token_id : -1);
  init.embedding(p("embeddings.token_type_embeddings.weight"), -1);
  init.layer_norm(p("embeddings.LayerNorm"));
  for (int l = 0; l < cfg_.num_hidden_layers; l++) {
    for (const char* lin : {"attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "intermediate.dense", "output.dense"})
      init.linear(layer_p(l, lin));
    init.layer_norm(layer_p(l, "attention.output.LayerNorm"));
    init.layer_norm(layer_p(l, "output.LayerNorm"));
  }
  if (with_pooler_) init.linear(p("pooler.dense"));
}

std::map<std::string, std::string> BertEncoder::renames() const {
  // Legacy TF-converted checkpoints (bert-base-uncased) name LayerNorm parameters gamma/beta.
  std::map<std::string, std::string> r = {{"LayerNorm.gamma", "LayerNorm.weight"},
                                          {"LayerNorm.beta", "LayerNorm.bias"}};
  const std::string hf_prefix = cfg_.roberta_style() ? "roberta." : "bert.";
  if (prefix_.empty()) {
    r["^" + hf_prefix] = "";  // a head model's checkpoint loaded as the base model
  } else {
    for (const char* part : {"embeddings.", "encoder.", "pooler."})
      r["^" + std::string(part)] = prefix_ + part;
  }
  return r;
}

std::vector<std::string> BertEncoder::optional_names() const {
  if (!with_pooler_) return {};
  return {p("pooler.dense.weight"), p("pooler.dense.bias")};
}

double BertEncoder::train_flops_per_token(int64_t seq_len) const {
  const double H = double(cfg_.hidden_size), I = double(cfg_.intermediate_size),
               L = double(cfg_.num_hidden_layers);
  const double matmul_params = L * (4 * H * H + 2 * H * I);
  // Attention scores and the weighted sum: 2 * 2 * seq * H flops per token and layer forward.
  const double attention = L * 4 * double(seq_len) * H;
  return 6 * matmul_params + 3 * attention;
}

Tensor BertEncoder::layer(int l, const Tensor& x, const std::vector<int32_t>& cu, Generator gen,
                          bool training) const {
  const int64_t N = x.size(0), H = cfg_.hidden_size, heads = cfg_.num_attention_heads, d = cfg_.head_dim();
  const float p_hidden = float(cfg_.hidden_dropout_prob), eps = float(cfg_.layer_norm_eps);
  auto lin = [&](const Tensor& in, const std::string& name) {
    return ops::linear(in, P(layer_p(l, name + ".weight")), P(layer_p(l, name + ".bias")));
  };
  // BertSelfAttention: heads own contiguous column blocks of q, k, v (view(B, L, h, d)).
  Tensor q = lin(x, "attention.self.query").view({N, heads, d});
  Tensor k = lin(x, "attention.self.key").view({N, heads, d});
  Tensor v = lin(x, "attention.self.value").view({N, heads, d});
  ops::AttentionOptions ao;
  ao.scale = float(1.0 / std::sqrt(double(d)));
  Tensor ctx = ops::attention(q, k, v, cu, ao).view({N, H});
  // BertSelfOutput: LayerNorm(dropout(dense(ctx)) + x).
  Tensor a = ops::dropout(lin(ctx, "attention.output.dense"), p_hidden, gen, training);
  a = ops::layer_norm(ops::add(a, x), P(layer_p(l, "attention.output.LayerNorm.weight")),
                      P(layer_p(l, "attention.output.LayerNorm.bias")), eps);
  // BertIntermediate + BertOutput: LayerNorm(dropout(dense2(act(dense1(a)))) + a).
  Tensor f = ops::activation(lin(a, "intermediate.dense"), cfg_.act);
  f = ops::dropout(lin(f, "output.dense"), p_hidden, gen, training);
  return ops::layer_norm(ops::add(f, a), P(layer_p(l, "output.LayerNorm.weight")),
                         P(layer_p(l, "output.LayerNorm.bias")), eps);
}

Tensor BertEncoder::encode(const RaggedBatch& r, const ForwardOptions& o) const {
  const BertConfig& c = cfg_;
  const int64_t N = r.num_tokens();
  if (N == 0) fail("[bert] the batch has no real tokens (attention_mask is all 0)");
  const bool dropout_on = o.training && c.hidden_dropout_prob > 0;
  if (dropout_on && o.gen == nullptr)
    fail("[bert] training with hidden_dropout_prob ", c.hidden_dropout_prob, " needs ForwardOptions::gen");
  // Validate on the host so the error names the model's limits, not an embedding table.
  std::vector<int64_t> positions(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; i++) {
    const int64_t id = r.ids[size_t(i)], tt = r.token_types[size_t(i)];
    if (id < 0 || id >= c.vocab_size)
      fail("[bert] input id ", id, " is outside the vocabulary of ", c.vocab_size, " tokens");
    if (tt < 0 || tt >= c.type_vocab_size)
      fail("[bert] token_type_id ", tt, " is outside [0, type_vocab_size = ", c.type_vocab_size, ")");
    // BERT: arange over the padded columns. RoBERTa / XLM-R: padding_idx + 1 + rank (PARITY §3).
    const int64_t pos = c.roberta_style() ? c.pad_token_id + 1 + r.rank[size_t(i)] : r.column[size_t(i)];
    if (pos >= c.max_position_embeddings)
      fail("[bert] position ", pos, " is beyond max_position_embeddings ", c.max_position_embeddings,
           " (the batch is longer than the model supports: at most ",
           c.roberta_style() ? c.max_position_embeddings - c.pad_token_id - 1 : c.max_position_embeddings,
           " tokens per sequence)");
    positions[size_t(i)] = pos;
  }
  const Device dev = store_.device();
  // BertEmbeddings: (word + token_type) + position, LayerNorm, dropout.
  // Every id was checked on the host above: the gathers skip the device-side check (a sync).
  constexpr bool kChecked = true;
  Tensor e = ops::embedding(to_index_tensor(r.ids, dev), P(p("embeddings.word_embeddings.weight")), kChecked);
  e = ops::add(e, ops::embedding(to_index_tensor(r.token_types, dev),
                                 P(p("embeddings.token_type_embeddings.weight")), kChecked));
  e = ops::add(e, ops::embedding(to_index_tensor(positions, dev), P(p("embeddings.position_embeddings.weight")),
                                 kChecked));
  Tensor x = ops::layer_norm(e, P(p("embeddings.LayerNorm.weight")), P(p("embeddings.LayerNorm.bias")),
                             float(c.layer_norm_eps));
  Generator none;
  Generator& gen = o.gen ? *o.gen : none;
  x = ops::dropout(x, float(c.hidden_dropout_prob), gen, dropout_on);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    // Each layer draws its two dropout streams from offsets reserved here, so a recomputed
    // layer redraws exactly the same masks.
    Generator layer_gen{gen.seed, gen.offset};
    if (dropout_on) gen.offset += 2;
    if (o.recompute && autograd::grad_mode_enabled()) {
      std::vector<int32_t> cu = r.cu_seqlens;
      x = autograd::recompute([this, l, cu, layer_gen, dropout_on](
                                  const Tensor& in) { return layer(l, in, cu, layer_gen, dropout_on); },
                              x, "bert_layer");
    } else {
      x = layer(l, x, r.cu_seqlens, layer_gen, dropout_on);
    }
  }
  return x;
}

Tensor BertEncoder::pooled(const Tensor& h, const RaggedBatch& r) const {
  LMF_CHECK(with_pooler_, "BertEncoder::pooled without a pooler");
  Tensor first = pool_sequences(h, r.cu_seqlens, Pooling::cls);
  Tensor y = ops::linear(first, P(p("pooler.dense.weight")), P(p("pooler.dense.bias")));
  return ops::activation(y, Activation::tanh_act);
}

// ---- base model ---------------------------------------------------------------------------

BertBaseModel::BertBaseModel(const BertConfig& c, ParamStore& store)
    : enc_(c, store, "", /*with_pooler=*/true) {}

const char* BertBaseModel::architecture() const { return bert_architecture(enc_.config().kind, "Model"); }

nlohmann::json BertBaseModel::hf_config() const {
  return bert_config_to_json(enc_.config(), architecture(), /*with_labels=*/false);
}

void BertBaseModel::init_weights(Generator& gen) {
  enc_.init_weights(gen);
  enc_.store().sync_compute();
}

Tensor BertBaseModel::forward_output(const TokenBatch& batch, const ForwardOptions& options) {
  RaggedBatch r = unpad(batch);
  return repad(ops::cast(enc_.encode(r, options), DType::f32), r);
}

// ---- factory ------------------------------------------------------------------------------

std::unique_ptr<HfModel> make_bert_model(const nlohmann::json& j, const std::string& source,
                                         ParamStore& store, const TaskModelRequest& request) {
  BertConfig c = parse_bert_config(j, source);
  TaskHead head = request.head;
  if (head == TaskHead::from_config) {
    const std::string arch = c.architectures.empty() ? std::string() : c.architectures.front();
    if (arch.empty() || ends_with(arch, "Model"))
      head = TaskHead::base;
    else if (ends_with(arch, "ForMaskedLM") || arch == "BertForPreTraining")
      head = TaskHead::masked_lm;
    else if (ends_with(arch, "ForSequenceClassification"))
      head = TaskHead::sequence_classification;
    else
      fail(source, ": architectures: '", arch,
           "' is not supported by the bert family (supported: ", bert_architecture(c.kind, "Model"), ", ",
           bert_architecture(c.kind, "ForMaskedLM"), ", ",
           bert_architecture(c.kind, "ForSequenceClassification"),
           "; or ask for a head explicitly to load its encoder)");
  }
  switch (head) {
    case TaskHead::base:
      return std::make_unique<BertBaseModel>(c, store);
    case TaskHead::masked_lm:
      return std::make_unique<BertMaskedLM>(c, store);
    case TaskHead::sequence_classification: {
      if (!request.pooling.empty() && request.pooling != "cls")
        fail(source, ": pooling '", request.pooling, "': the ", c.model_type,
             " classifier pools the first token ([CLS] / <s>) as HF does; only 'cls' is supported");
      if (request.num_labels > 0 && request.num_labels != c.num_labels) {
        c.num_labels = request.num_labels;
        c.labels.clear();  // the config's names were for another label count
      }
      const std::string problem = config_json::get_string(j, source, "problem_type", "");
      if (!problem.empty() && problem != "single_label_classification")
        fail(source, ": problem_type: '", problem,
             "' is not supported (lmforge's sequence classification is single_label_classification)");
      if (c.num_labels < 2)
        fail(source, ": num_labels ", c.num_labels,
             " means regression in HF; lmforge's sequence classification needs at least 2 labels");
      return std::make_unique<BertSequenceClassifier>(c, store);
    }
    case TaskHead::from_config:
      break;
  }
  fail(source, ": internal error: unresolved head");
}

}  // namespace lmf
