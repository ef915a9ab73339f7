#include "lmforge/models/modernbert.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/philox.h"
#include "lmforge/ops/activation.h"
#include "lmforge/ops/attention.h"
#include "lmforge/ops/dropout.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/norm.h"
#include "lmforge/ops/rope.h"
#include "lmforge/ops/slice.h"

namespace lmf {

namespace {

constexpr const char* kBase = "ModernBertModel";
constexpr const char* kMaskedLM = "ModernBertForMaskedLM";
constexpr const char* kSeqCls = "ModernBertForSequenceClassification";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// HF Trainer's default decay rule (get_decay_parameter_names): no decay for biases and norms.
bool modernbert_decays(const std::string& n) {
  return !(ends_with(n, ".bias") || ends_with(n, "norm.weight"));
}

bool is_norm(const std::string& n) { return n.find("norm.") != std::string::npos; }

void add_param(ParamStore& store, const std::string& name, Shape shape) {
  // LayerNorm parameters stay fp32 under bf16 compute: the norms run on the fp32 residual.
  store.add(ParamSpec{name, std::move(shape), true, modernbert_decays(name), is_norm(name)});
}

// Checkpoint-name mapping between the base model (no prefix) and the task models ("model.").
std::map<std::string, std::string> prefix_renames(bool ours_prefixed, bool source_prefixed) {
  if (ours_prefixed == source_prefixed) return {};
  if (ours_prefixed)
    return {{"embeddings.", "model.embeddings."}, {"final_norm.", "model.final_norm."}, {"layers.", "model.layers."}};
  return {{"model.", ""}};
}

// Host-side initializers drawing from `gen` (one Philox stream per parameter).
struct Init {
  ParamStore& store;
  Generator& gen;
  void fill(const std::string& name, const std::function<float(int64_t)>& value_of) {
    Tensor m = store.master(name);
    std::vector<float> v(size_t(m.numel()));
    for (size_t i = 0; i < v.size(); i++) v[i] = value_of(int64_t(i));
    m.copy_from(Tensor::from_vector<float>(v, m.shape()));
  }
  void constant(const std::string& name, float c) {
    if (store.has(name)) fill(name, [c](int64_t) { return c; });
  }
  // torch.nn.init.trunc_normal_(mean 0, std, a = -cutoff * std, b = cutoff * std): rejection
  // sampling on the Philox normal stream (element i tries draws i, i + n, i + 2n, ...).
  void trunc_normal(const std::string& name, double std, double cutoff) {
    const uint64_t off = gen.next_offset(), seed = gen.seed;
    const int64_t n = store.master(name).numel();
    const float s = float(std), bound = float(cutoff * std);
    fill(name, [&](int64_t i) {
      for (int64_t k = 0; k < 64; k++) {
        const float z = s * philox_normal(seed, off, uint64_t(i + k * n));
        if (std::fabs(z) <= bound) return z;
      }
      return 0.f;  // probability < 0.05^64 at the default cutoff
    });
  }
  // HF init_weight: the weight truncated-normal, the Linear's bias (if any) zero.
  void linear(const std::string& stem, double std, double cutoff) {
    trunc_normal(stem + ".weight", std, cutoff);
    constant(stem + ".bias", 0.f);
  }
  void layer_norm(const std::string& stem) {
    constant(stem + ".weight", 1.f);
    constant(stem + ".bias", 0.f);
  }
};

Tensor dropout_if(const Tensor& x, double p, const ForwardOptions& o, Generator* gen) {
  if (!o.training || p == 0) return x;
  return ops::dropout(x, float(p), *gen, true);
}

void check_training(const ModernBertConfig& c, const ForwardOptions& o) {
  if (!o.training) return;
  if (c.attention_dropout > 0)
    fail("[modernbert] attention_dropout = ", c.attention_dropout,
         " is not supported in training (ops::attention has no attention-probability dropout); set it to 0");
  if ((c.embedding_dropout > 0 || c.mlp_dropout > 0 || c.classifier_dropout > 0) && o.gen == nullptr)
    fail("[modernbert] training with dropout needs ForwardOptions::gen");
}

}  // namespace

// ---- encoder ----------------------------------------------------------------------------------

ModernBertEncoder::ModernBertEncoder(const ModernBertConfig& c, ParamStore& store, std::string prefix)
    : cfg_(c), store_(store), prefix_(std::move(prefix)) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  auto add = [&](const std::string& suffix, Shape shape) { add_param(store_, name(suffix), std::move(shape)); };
  auto add_norm = [&](const std::string& stem) {
    add(stem + ".weight", {H});
    if (c.norm_bias) add(stem + ".bias", {H});
  };
  add("embeddings.tok_embeddings.weight", {c.vocab_size, H});
  add_norm("embeddings.norm");
  for (int64_t l = 0; l < c.num_hidden_layers; l++) {
    const std::string L = "layers." + std::to_string(l) + ".";
    if (l > 0) add_norm(L + "attn_norm");
    add(L + "attn.Wqkv.weight", {3 * H, H});
    if (c.attention_bias) add(L + "attn.Wqkv.bias", {3 * H});
    add(L + "attn.Wo.weight", {H, H});
    if (c.attention_bias) add(L + "attn.Wo.bias", {H});
    add_norm(L + "mlp_norm");
    add(L + "mlp.Wi.weight", {2 * I, H});
    if (c.mlp_bias) add(L + "mlp.Wi.bias", {2 * I});
    add(L + "mlp.Wo.weight", {H, I});
    if (c.mlp_bias) add(L + "mlp.Wo.bias", {H});
  }
  add_norm("final_norm");
}

void ModernBertEncoder::init_weights(Generator& gen) {
  // HF ModernBertPreTrainedModel._init_weights: "in" / "embedding" std = initializer_range,
  // "out" std = initializer_range / sqrt(2 * num_hidden_layers), truncated at cutoff_factor std.
  const double cut = cfg_.initializer_cutoff_factor, in = cfg_.initializer_range,
               out = cfg_.initializer_range / std::sqrt(2.0 * double(cfg_.num_hidden_layers));
  Init init{store_, gen};
  init.trunc_normal(name("embeddings.tok_embeddings.weight"), in, cut);
  init.layer_norm(name("embeddings.norm"));
  for (int64_t l = 0; l < cfg_.num_hidden_layers; l++) {
    const std::string L = name("layers." + std::to_string(l) + ".");
    init.layer_norm(L + "attn_norm");
    init.linear(L + "attn.Wqkv", in, cut);
    init.linear(L + "attn.Wo", out, cut);
    init.layer_norm(L + "mlp_norm");
    init.linear(L + "mlp.Wi", in, cut);
    init.linear(L + "mlp.Wo", out, cut);
  }
  init.layer_norm(name("final_norm"));
}

Tensor ModernBertEncoder::param_or_none(const std::string& n) const {
  return store_.has(n) ? store_.param(n) : Tensor();
}

Tensor ModernBertEncoder::norm(const std::string& stem, const Tensor& x) const { return norm(stem, x, x.dtype()); }

Tensor ModernBertEncoder::norm(const std::string& stem, const Tensor& x, DType out_dtype) const {
  const Tensor& w = store_.param(name(stem + ".weight"));
  const Tensor b = param_or_none(name(stem + ".bias"));
  // One kernel for norm + cast where the op allows it (f32 residual and weights, bf16 compute).
  if (out_dtype == x.dtype() || (out_dtype == DType::bf16 && x.dtype() == DType::f32 && w.dtype() == DType::f32))
    return ops::layer_norm(x, w, b, float(cfg_.norm_eps), out_dtype);
  return ops::cast(ops::layer_norm(x, w, b, float(cfg_.norm_eps)), out_dtype);
}

Tensor ModernBertEncoder::layer(int64_t l, const Tensor& h, const Tensor& positions, const std::vector<int32_t>& cu,
                                const ForwardOptions& options, Generator* gen) {
  const ModernBertConfig& c = cfg_;
  const std::string L = "layers." + std::to_string(l) + ".";
  auto P = [&](const std::string& s) { return store_.param(name(L + s)); };
  auto opt = [&](const std::string& s) { return param_or_none(name(L + s)); };
  const DType compute = P("attn.Wqkv.weight").dtype();
  const int64_t N = h.size(0), H = c.hidden_size;
  // Attention block (layer 0: no attn_norm). The residual stream h may be f32 under bf16
  // compute: the norms write bf16 directly and the branches are added to h without a cast.
  Tensor x = l == 0 ? ops::cast(h, compute) : norm(L + "attn_norm", h, compute);
  Tensor qkv = ops::linear(x, P("attn.Wqkv.weight"), opt("attn.Wqkv.bias"));  // [N, 3H]
  ops::RopeQKV r = ops::rope_qkv(qkv.view({N, 3, c.num_attention_heads, c.head_dim}), positions, c.rope_theta(l));
  ops::AttentionOptions ao;
  if (!c.is_global(l)) ao.window_left = ao.window_right = c.window();
  Tensor a = ops::attention(r.q, r.k, r.v, cu, ao);  // [N, heads, head_dim]
  Tensor o = ops::linear(a.view({N, H}), P("attn.Wo.weight"), opt("attn.Wo.bias"));
  Tensor h1 = ops::add(h, o);
  // GeGLU MLP: act(first half of Wi) * second half, one kernel.
  Tensor m = norm(L + "mlp_norm", h1, compute);
  Tensor wi = ops::linear(m, P("mlp.Wi.weight"), opt("mlp.Wi.bias"));  // [N, 2I]
  Tensor g = ops::gated_activation(wi, c.hidden_act);
  g = dropout_if(g, c.mlp_dropout, options, gen);
  Tensor mo = ops::linear(g, P("mlp.Wo.weight"), opt("mlp.Wo.bias"));
  return ops::add(h1, mo);
}

Tensor ModernBertEncoder::encode(const RaggedBatch& ragged, const ForwardOptions& options) {
  check_training(cfg_, options);
  if (ragged.num_tokens() == 0) fail("[modernbert] the batch has no real tokens");
  const Device dev = store_.device();
  for (int64_t id : ragged.ids)  // on the host, so the device gather needs no check (a sync)
    if (id < 0 || id >= cfg_.vocab_size)
      fail("[modernbert] input id ", id, " is outside the vocabulary of ", cfg_.vocab_size, " tokens");
  Tensor ids = to_index_tensor(ragged.ids, dev);
  Tensor positions = to_index_tensor(ragged.rank, dev);  // rank within the sequence (HF FA2 / eager arange)
  Tensor emb = store_.param(name("embeddings.tok_embeddings.weight"));
  const DType compute = emb.dtype();
  const DType residual = (compute == DType::bf16 || compute == DType::f16) ? DType::f32 : compute;
  Tensor h = norm("embeddings.norm", ops::cast(ops::embedding(ids, emb, /*ids_checked=*/true), residual));
  h = dropout_if(h, cfg_.embedding_dropout, options, options.gen);
  const bool draws = options.training && cfg_.mlp_dropout > 0;
  for (int64_t l = 0; l < cfg_.num_hidden_layers; l++) {
    // Each layer's dropout stream starts at an offset reserved here, so a recomputed layer
    // draws the same masks as its first run.
    Generator layer_gen;
    if (draws) {
      layer_gen = *options.gen;
      options.gen->offset += 1;  // one dropout per layer (the MLP's)
    }
    if (options.recompute && autograd::grad_mode_enabled()) {
      const std::vector<int32_t> cu = ragged.cu_seqlens;
      h = autograd::recompute(
          [this, l, positions, cu, options, layer_gen, draws](const Tensor& in) {
            Generator g = layer_gen;
            return layer(l, in, positions, cu, options, draws ? &g : nullptr);
          },
          h, "modernbert_layer");
    } else {
      h = layer(l, h, positions, ragged.cu_seqlens, options, draws ? &layer_gen : nullptr);
    }
  }
  return norm("final_norm", h);
}

double ModernBertEncoder::train_flops_per_token(int64_t seq_len) const {
  const ModernBertConfig& c = cfg_;
  const double H = double(c.hidden_size), I = double(c.intermediate_size);
  const double matmul = double(c.num_hidden_layers) * (H * 3 * H + H * H + H * 2 * I + I * H);
  // Attention: QK^T and PV, 2 * 2 * H * keys per token forward, x3 with backward.
  double attn = 0;
  const double local_keys = double(std::min<int64_t>(seq_len, 2 * c.window() + 1));
  for (int64_t l = 0; l < c.num_hidden_layers; l++) attn += 12 * H * (c.is_global(l) ? double(seq_len) : local_keys);
  return 6 * matmul + attn;
}

// ---- prediction head (head.dense -> act -> head.norm) -------------------------------------------

ModernBertHead::ModernBertHead(const ModernBertConfig& c, ParamStore& store) : cfg_(c), store_(store) {
  const int64_t H = c.hidden_size;
  add_param(store_, "head.dense.weight", {H, H});
  if (c.classifier_bias) add_param(store_, "head.dense.bias", {H});
  add_param(store_, "head.norm.weight", {H});
  if (c.norm_bias) add_param(store_, "head.norm.bias", {H});
}

void ModernBertHead::init_weights(Generator& gen) {
  Init init{store_, gen};
  init.linear("head.dense", cfg_.initializer_range / std::sqrt(2.0 * double(cfg_.num_hidden_layers)),
              cfg_.initializer_cutoff_factor);
  init.layer_norm("head.norm");
}

Tensor ModernBertHead::forward(const Tensor& x) const {
  const Tensor& w = store_.param("head.dense.weight");
  Tensor b = store_.has("head.dense.bias") ? store_.param("head.dense.bias") : Tensor();
  Tensor d = ops::activation(ops::linear(ops::cast(x, w.dtype()), w, b), cfg_.classifier_act);
  Tensor nb = store_.has("head.norm.bias") ? store_.param("head.norm.bias") : Tensor();
  return ops::layer_norm(ops::cast(d, x.dtype()), store_.param("head.norm.weight"), nb, float(cfg_.norm_eps));
}

// ---- ModernBertModel ----------------------------------------------------------------------------

ModernBertBase::ModernBertBase(const ModernBertConfig& c, ParamStore& store) : store_(store), enc_(c, store, "") {}

std::map<std::string, std::string> ModernBertBase::hf_renames_on_load() const {
  return prefix_renames(false, source_prefixed_);
}

void ModernBertBase::init_weights(Generator& gen) {
  enc_.init_weights(gen);
  store_.sync_compute();
}

Tensor ModernBertBase::forward_output(const TokenBatch& batch, const ForwardOptions& options) {
  RaggedBatch r = unpad(batch);
  return repad(ops::cast(enc_.encode(r, options), DType::f32), r);
}

// ---- ModernBertForMaskedLM ----------------------------------------------------------------------

ModernBertMaskedLM::ModernBertMaskedLM(const ModernBertConfig& c, ParamStore& store)
    : store_(store), enc_(c, store, "model."), head_(enc_.config(), store) {
  if (!c.tie_word_embeddings) add_param(store_, "decoder.weight", {c.vocab_size, c.hidden_size});
  if (c.decoder_bias) add_param(store_, "decoder.bias", {c.vocab_size});
}

std::vector<std::string> ModernBertMaskedLM::hf_optional_on_load() const {
  if (source_arch_ == kMaskedLM) return {};
  std::vector<std::string> names;
  for (const auto& s : store_.specs())
    if (s.name.rfind("head.", 0) == 0 || s.name.rfind("decoder.", 0) == 0) names.push_back(s.name);
  return names;
}

std::map<std::string, std::string> ModernBertMaskedLM::hf_renames_on_load() const {
  return prefix_renames(true, source_arch_ != kBase);
}

void ModernBertMaskedLM::init_weights(Generator& gen) {
  enc_.init_weights(gen);
  head_.init_weights(gen);
  // HF: init_weight(decoder, "out" std); a tied decoder keeps the embedding's values.
  const ModernBertConfig& c = enc_.config();
  Init init{store_, gen};
  if (!c.tie_word_embeddings)
    init.trunc_normal("decoder.weight", c.initializer_range / std::sqrt(2.0 * double(c.num_hidden_layers)),
                      c.initializer_cutoff_factor);
  init.constant("decoder.bias", 0.f);
  store_.sync_compute();
}

Tensor ModernBertMaskedLM::mlm_transform(const Tensor& h) {
  return ops::cast(head_.forward(h), decoder_weight().dtype());
}

Tensor ModernBertMaskedLM::decoder_weight() const {
  return store_.param(enc_.config().tie_word_embeddings ? "model.embeddings.tok_embeddings.weight" : "decoder.weight");
}

Tensor ModernBertMaskedLM::decoder_bias() const {
  return store_.has("decoder.bias") ? store_.param("decoder.bias") : Tensor();
}

Tensor ModernBertMaskedLM::forward_output(const TokenBatch& batch, const ForwardOptions& options) {
  RaggedBatch r = unpad(batch);
  Tensor t = mlm_transform(enc_.encode(r, options));
  Tensor logits = ops::linear(t, decoder_weight(), decoder_bias());
  return repad(ops::cast(logits, DType::f32), r);
}

double ModernBertMaskedLM::train_flops_per_token(int64_t seq_len) const {
  // The head transform runs on the masked rows only, like the vocabulary projection (6 V H per
  // masked row), which the MLM trainer adds for the rows it selects; neither is counted here.
  return enc_.train_flops_per_token(seq_len);
}

// ---- ModernBertForSequenceClassification -------------------------------------------------------

ModernBertSequenceClassifier::ModernBertSequenceClassifier(const ModernBertConfig& c, ParamStore& store)
    : store_(store), enc_(c, store, "model."), head_(enc_.config(), store),
      pooling_(parse_pooling(c.classifier_pooling, "classifier_pooling")) {
  add_param(store_, "classifier.weight", {c.num_labels, c.hidden_size});
  add_param(store_, "classifier.bias", {c.num_labels});
}

std::vector<std::string> ModernBertSequenceClassifier::hf_optional_on_load() const {
  if (source_arch_ == kSeqCls) return {};
  std::vector<std::string> names;
  for (const auto& s : store_.specs())
    if (s.name.rfind("head.", 0) == 0 || s.name.rfind("classifier.", 0) == 0) names.push_back(s.name);
  return names;
}

std::map<std::string, std::string> ModernBertSequenceClassifier::hf_renames_on_load() const {
  return prefix_renames(true, source_arch_ != kBase);
}

void ModernBertSequenceClassifier::init_weights(Generator& gen) {
  enc_.init_weights(gen);
  head_.init_weights(gen);
  // HF: init_weight(classifier, "final_out" std = hidden_size^-0.5), bias 0.
  const ModernBertConfig& c = enc_.config();
  Init init{store_, gen};
  init.linear("classifier", 1.0 / std::sqrt(double(c.hidden_size)), c.initializer_cutoff_factor);
  store_.sync_compute();
}

Tensor ModernBertSequenceClassifier::classify(const TokenBatch& batch, const ForwardOptions& options) {
  const ModernBertConfig& c = enc_.config();
  check_training(c, options);
  RaggedBatch r = unpad(batch);
  Tensor h = enc_.encode(r, options);
  Tensor pooled = head_.forward(pool_sequences(h, r.cu_seqlens, pooling_));
  pooled = dropout_if(pooled, c.classifier_dropout, options, options.gen);
  const Tensor& w = store_.param("classifier.weight");
  Tensor logits = ops::linear(ops::cast(pooled, w.dtype()), w, store_.param("classifier.bias"));
  return ops::cast(logits, DType::f32);
}

void ModernBertSequenceClassifier::set_label_names(const std::vector<std::string>& names) {
  if (int64_t(names.size()) != num_labels())
    fail("[modernbert] ", names.size(), " label names for a classifier with num_labels = ", num_labels());
  enc_.mutable_config().label_names = names;
}

// ---- factory ------------------------------------------------------------------------------------

std::unique_ptr<HfModel> make_modernbert(const nlohmann::json& j, const std::string& source, ParamStore& store,
                                         const TaskModelRequest& request) {
  ModernBertConfig c = parse_modernbert_config(j, source);
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    if (!j["architectures"][0].is_string()) fail(source, ": architectures: expected a list of strings");
    arch = j["architectures"][0].get<std::string>();
    if (arch != kBase && arch != kMaskedLM && arch != kSeqCls)
      fail(source, ": architectures: '", arch, "' is not supported (expected ", kBase, ", ", kMaskedLM, " or ", kSeqCls,
           ")");
  }
  TaskHead head = request.head;
  if (head == TaskHead::from_config)
    head = arch == kMaskedLM ? TaskHead::masked_lm
           : arch == kSeqCls ? TaskHead::sequence_classification
                             : TaskHead::base;
  switch (head) {
    case TaskHead::base: {
      auto m = std::make_unique<ModernBertBase>(c, store);
      m->set_source_prefixed(!arch.empty() && arch != kBase);
      return m;
    }
    case TaskHead::masked_lm: {
      auto m = std::make_unique<ModernBertMaskedLM>(c, store);
      m->set_source_architecture(arch.empty() ? kMaskedLM : arch);
      return m;
    }
    case TaskHead::sequence_classification: {
      if (request.num_labels < 0) fail(source, ": num_labels: expected a positive number, got ", request.num_labels);
      if (request.num_labels > 0 && request.num_labels != c.num_labels) {
        c.num_labels = request.num_labels;
        c.label_names.clear();  // a new head: HF's LABEL_i names until set_label_names
      }
      if (!request.pooling.empty()) {
        if (request.pooling == "last")
          fail(source, ": pooling 'last' is not available for ModernBERT (HF classifier_pooling is cls or mean)");
        c.classifier_pooling = pooling_name(parse_pooling(request.pooling, "pooling"));
      }
      auto m = std::make_unique<ModernBertSequenceClassifier>(c, store);
      m->set_source_architecture(arch.empty() ? kSeqCls : arch);
      return m;
    }
    case TaskHead::from_config: break;
  }
  fail(source, ": unsupported head");
}

}  // namespace lmf
