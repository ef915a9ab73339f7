// ModernBERT parity with HF transformers (fixtures made by tools/fixtures/make_modernbert_fixtures.py:
// eager attention, fp32, right-padded batches) and the model's own invariants: padding-independence
// (right, left, extra padding, one sequence at a time), save/load round trips, loading across heads,
// HF init statistics, recomputation, config errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/modernbert.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/linear.h"
#include "test_util.h"

using namespace lmf;

namespace {

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/" + name); }

// Values of a padded [B, T, ...] tensor at the positions where mask [B, T] is 1.
std::vector<double> real_rows(const Tensor& padded, const Tensor& mask) {
  auto v = padded.contiguous().to_double_vector();
  auto m = mask.to_double_vector();
  const size_t row = v.size() / m.size();
  std::vector<double> out;
  for (size_t i = 0; i < m.size(); i++)
    if (m[i] != 0) out.insert(out.end(), v.begin() + long(i * row), v.begin() + long((i + 1) * row));
  return out;
}

// Values at the pad positions (they must be exactly 0 in lmforge's outputs).
double max_abs_at_pads(const Tensor& padded, const Tensor& mask) {
  auto v = padded.contiguous().to_double_vector();
  auto m = mask.to_double_vector();
  const size_t row = v.size() / m.size();
  double worst = 0;
  for (size_t i = 0; i < m.size(); i++)
    if (m[i] == 0)
      for (size_t k = 0; k < row; k++) worst = std::max(worst, std::fabs(v[i * row + k]));
  return worst;
}

// Stream-order targets [N] from padded labels [B, T] (real positions only).
Tensor stream_labels(const Tensor& labels, const Tensor& mask) {
  auto l = labels.to_double_vector(), m = mask.to_double_vector();
  std::vector<int64_t> t;
  for (size_t i = 0; i < m.size(); i++)
    if (m[i] != 0) t.push_back(int64_t(l[i]));
  return Tensor::from_vector<int64_t>(t, {int64_t(t.size())});
}

// Prints a parity figure (the report quotes them) and checks it.
void expect_parity(const std::string& what, double rel, double tol) {
  std::printf("[parity] %-44s rel %.3g\n", what.c_str(), rel);
  EXPECT_LT(rel, tol) << what;
}

void expect_grads(const LoadedTaskModel& l, const SafetensorsFile& exp, const std::string& what, double tol) {
  int checked = 0;
  double worst = 0;
  for (const auto& spec : l.store->specs()) {
    const std::string g = "grad." + spec.name;
    ASSERT_TRUE(exp.contains(g)) << what << ": fixture has no " << g;
    Tensor mine = l.store->grad(spec.name);
    const double e = test::rel_error(mine, exp.tensor(g).reshape(mine.shape()));
    EXPECT_LT(e, tol) << what << " " << g;
    worst = std::max(worst, e);
    checked++;
  }
  EXPECT_GT(checked, 20) << what;
  expect_parity(what + " grads (worst of " + std::to_string(checked) + ")", worst, tol);
}

LoadedTaskModel load(const std::string& dir, TaskHead head = TaskHead::from_config, int64_t num_labels = 0) {
  TaskModelRequest req;
  req.head = head;
  req.num_labels = num_labels;
  return load_task_model(dir, Device::cpu(), DType::f32, req);
}

// A random-init model from a config (no checkpoint).
struct Synthetic {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
};
nlohmann::json tiny_config() {
  return nlohmann::json::parse(R"({"model_type": "modernbert", "architectures": ["ModernBertForMaskedLM"],
    "vocab_size": 97, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 4,
    "num_attention_heads": 4, "local_attention": 4, "global_attn_every_n_layers": 3,
    "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1, "cls_token_id": 1,
    "eos_token_id": 2, "sep_token_id": 2})");
}
Synthetic synthetic(const nlohmann::json& cfg, TaskHead head, uint64_t seed = 5) {
  Synthetic s;
  s.store = std::make_unique<ParamStore>(Device::cpu(), DType::f32);
  TaskModelRequest req;
  req.head = head;
  s.model = make_task_model(cfg, "tiny/config.json", *s.store, req);
  s.store->finalize();
  Generator gen{seed, 0};
  s.model->init_weights(gen);
  // Norm weights off 1 so that every parameter matters.
  for (const auto& spec : s.store->specs())
    if (spec.name.find("norm.weight") != std::string::npos) {
      Tensor m = s.store->master(spec.name);
      m.copy_from(test::random_tensor(m.shape(), DType::f32, seed + 7, 0.5f, 1.5f));
    }
  s.store->sync_compute();
  return s;
}

// Sequences -> a padded batch: right padding to T, or left padding.
TokenBatch make_batch(const std::vector<std::vector<int64_t>>& seqs, int64_t T, bool left) {
  const int64_t B = int64_t(seqs.size());
  std::vector<int64_t> ids(size_t(B * T), 0), mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; b++) {
    const int64_t n = int64_t(seqs[size_t(b)].size()), start = left ? T - n : 0;
    for (int64_t i = 0; i < n; i++) {
      ids[size_t(b * T + start + i)] = seqs[size_t(b)][size_t(i)];
      mask[size_t(b * T + start + i)] = 1;
    }
  }
  return TokenBatch{Tensor::from_vector<int64_t>(ids, {B, T}), Tensor::from_vector<int64_t>(mask, {B, T}), Tensor()};
}

std::vector<std::vector<int64_t>> random_sequences(const std::vector<int64_t>& lengths, int64_t vocab, uint64_t seed) {
  std::vector<std::vector<int64_t>> seqs;
  for (size_t s = 0; s < lengths.size(); s++) {
    auto u = test::random_tensor({lengths[s]}, DType::f32, seed + s, 3.f, float(vocab)).to_float_vector();
    std::vector<int64_t> ids;
    for (float x : u) ids.push_back(int64_t(x));
    ids[0] = 1;
    seqs.push_back(ids);
  }
  return seqs;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

// ---- parity with HF (fixtures) --------------------------------------------------------------------

TEST(ModernBertHF, MaskedLMMatchesTransformers) {
  const std::string dir = fixture("modernbert_mlm");
  LoadedTaskModel l = load(dir);
  EXPECT_STREQ(l.model->architecture(), "ModernBertForMaskedLM");
  EXPECT_TRUE(l.missing_tensors.empty());
  EXPECT_TRUE(l.unused_tensors.empty()) << l.unused_tensors.front();
  auto* mlm = dynamic_cast<MaskedLM*>(l.model.get());
  ASSERT_NE(mlm, nullptr);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  Tensor mask = exp.tensor("attention_mask");
  TokenBatch batch{exp.tensor("input_ids"), mask, Tensor()};
  {
    autograd::NoGradGuard ng;
    Tensor logits = l.model->forward_output(batch, ForwardOptions());
    ASSERT_EQ(logits.shape(), exp.tensor("logits").shape());
    expect_parity("mlm logits (real positions)", test::rel_error(real_rows(logits, mask), real_rows(exp.tensor("logits"), mask)),
                  1e-4);
    EXPECT_EQ(max_abs_at_pads(logits, mask), 0.0);
  }
  // Loss and gradients: HF's loss covers every position whose label is not -100 (all real here).
  RaggedBatch r = unpad(batch);
  Tensor h = mlm->encode(r, ForwardOptions());
  Tensor logits = ops::linear(mlm->mlm_transform(h), mlm->decoder_weight(), mlm->decoder_bias());
  auto ce = ops::cross_entropy_logits(logits, stream_labels(exp.tensor("labels"), mask));
  const double ref = exp.tensor("loss").item();
  expect_parity("mlm loss", std::fabs(ce.loss.item() - ref) / std::fabs(ref), 1e-4);
  autograd::backward(ce.loss);
  expect_grads(l, exp, "mlm", 1e-4);
}

TEST(ModernBertHF, BaseModelMatchesLastHiddenState) {
  // The MLM checkpoint loaded as ModernBertModel ("model." names mapped to the base names).
  const std::string dir = fixture("modernbert_mlm");
  LoadedTaskModel l = load(dir, TaskHead::base);
  EXPECT_STREQ(l.model->architecture(), "ModernBertModel");
  EXPECT_TRUE(l.store->has("embeddings.tok_embeddings.weight"));
  // The head's and decoder's tensors are reported unused, as transformers does.
  EXPECT_EQ(l.unused_tensors.size(), 3u);  // head.dense.weight, head.norm.weight, decoder.bias
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  Tensor mask = exp.tensor("attention_mask");
  autograd::NoGradGuard ng;
  Tensor hidden = l.model->forward_output(TokenBatch{exp.tensor("input_ids"), mask, Tensor()}, ForwardOptions());
  expect_parity("base last_hidden_state (real positions)",
                test::rel_error(real_rows(hidden, mask), real_rows(exp.tensor("hidden"), mask)), 1e-4);
  EXPECT_EQ(max_abs_at_pads(hidden, mask), 0.0);
}

void check_classifier(const std::string& name, Pooling expected_pooling) {
  const std::string dir = fixture(name);
  LoadedTaskModel l = load(dir);
  EXPECT_TRUE(l.missing_tensors.empty()) << name;
  EXPECT_TRUE(l.unused_tensors.empty()) << name;
  auto* cls = dynamic_cast<ModernBertSequenceClassifier*>(l.model.get());
  ASSERT_NE(cls, nullptr) << name;
  EXPECT_EQ(cls->pooling(), expected_pooling);
  EXPECT_EQ(cls->num_labels(), 3);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  TokenBatch batch{exp.tensor("input_ids"), exp.tensor("attention_mask"), Tensor()};
  Tensor logits = cls->classify(batch, ForwardOptions());
  expect_parity(name + " logits", test::rel_error(logits, exp.tensor("logits")), 1e-4);
  auto ce = ops::cross_entropy_logits(logits, exp.tensor("labels"));
  const double ref = exp.tensor("loss").item();
  expect_parity(name + " loss", std::fabs(ce.loss.item() - ref) / std::fabs(ref), 1e-4);
  autograd::backward(ce.loss);
  expect_grads(l, exp, name, 1e-4);
}

TEST(ModernBertHF, ClassifierMeanPoolingAllBiasesMatchesTransformers) {
  check_classifier("modernbert_cls_mean", Pooling::mean);
}
TEST(ModernBertHF, ClassifierClsPoolingMatchesTransformers) { check_classifier("modernbert_cls_cls", Pooling::cls); }

// ---- invariants --------------------------------------------------------------------------------

TEST(ModernBert, PaddingDoesNotChangeOutputs) {
  Synthetic s = synthetic(tiny_config(), TaskHead::masked_lm);
  auto seqs = random_sequences({17, 9, 4, 12}, 97, 40);
  autograd::NoGradGuard ng;
  TokenBatch right = make_batch(seqs, 17, false), more = make_batch(seqs, 23, false), left = make_batch(seqs, 20, true);
  Tensor a = s.model->forward_output(right, ForwardOptions());
  Tensor b = s.model->forward_output(more, ForwardOptions());
  Tensor c = s.model->forward_output(left, ForwardOptions());
  auto ra = real_rows(a, right.attention_mask);
  EXPECT_EQ(ra, real_rows(b, more.attention_mask));  // the same unpadded stream: bit-identical
  EXPECT_EQ(ra, real_rows(c, left.attention_mask));  // left padding: positions are ranks, not columns
  EXPECT_EQ(max_abs_at_pads(c, left.attention_mask), 0.0);
  // Each sequence alone (no padding at all) gives the same outputs.
  std::vector<double> alone;
  for (const auto& seq : seqs) {
    TokenBatch one = make_batch({seq}, int64_t(seq.size()), false);
    auto v = s.model->forward_output(one, ForwardOptions()).to_double_vector();
    alone.insert(alone.end(), v.begin(), v.end());
  }
  EXPECT_LT(test::rel_error(alone, ra), 1e-6);
  // The local window matters: a base model whose layers are all local differs from all-global.
  auto cfg = tiny_config();
  cfg["global_attn_every_n_layers"] = 1;
  Synthetic g = synthetic(cfg, TaskHead::masked_lm);
  EXPECT_GT(test::rel_error(real_rows(g.model->forward_output(right, ForwardOptions()), right.attention_mask), ra), 1e-3);
}

TEST(ModernBert, SaveLoadRoundTripAndCrossHeadLoading) {
  Synthetic s = synthetic(tiny_config(), TaskHead::masked_lm);
  const std::string out = test::scratch_dir("modernbert_save_mlm");
  save_hf_params(*s.store, out, s.model->hf_config(), DType::f32, s.model->hf_skip_on_save());
  auto saved = config_json::read_json_file(out + "/config.json");
  EXPECT_EQ(saved["architectures"][0], "ModernBertForMaskedLM");
  EXPECT_EQ(saved["rope_parameters"]["full_attention"]["rope_theta"], 160000.0);
  EXPECT_EQ(saved["layer_types"][3], "full_attention");
  EXPECT_EQ(saved["layer_types"][2], "sliding_attention");
  LoadedTaskModel again = load(out);
  EXPECT_STREQ(again.model->architecture(), "ModernBertForMaskedLM");
  EXPECT_EQ(test::max_abs_diff(again.store->flat_master(), s.store->flat_master()), 0.0);
  auto seqs = random_sequences({11, 6}, 97, 50);
  TokenBatch batch = make_batch(seqs, 11, false);
  {
    autograd::NoGradGuard ng;
    EXPECT_EQ(test::max_abs_diff(again.model->forward_output(batch, ForwardOptions()),
                                 s.model->forward_output(batch, ForwardOptions())),
              0.0);
  }
  // The MLM checkpoint fine-tuned as a 4-way classifier: a new classifier (reported missing),
  // the MLM head reused (HF's names coincide), decoder.bias unused.
  LoadedTaskModel c = load(out, TaskHead::sequence_classification, 4);
  EXPECT_EQ(c.missing_tensors, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_EQ(c.unused_tensors, (std::vector<std::string>{"decoder.bias"}));
  EXPECT_EQ(test::max_abs_diff(c.store->master("head.dense.weight"), s.store->master("head.dense.weight")), 0.0);
  auto* cls = dynamic_cast<SequenceClassifier*>(c.model.get());
  ASSERT_NE(cls, nullptr);
  EXPECT_EQ(cls->classify(batch, ForwardOptions()).shape(), (Shape{2, 4}));
  cls->set_label_names({"a", "b", "c", "d"});
  EXPECT_EQ(cls->hf_config()["id2label"]["2"], "c");
  EXPECT_EQ(cls->hf_config()["label2id"]["d"], 3);
  EXPECT_NE(error_of([&] { cls->set_label_names({"a"}); }).find("num_labels = 4"), std::string::npos);
  // Base model saved without the prefix, then loaded as an MLM: head and decoder bias initialized.
  LoadedTaskModel base = load(out, TaskHead::base);
  const std::string base_dir = test::scratch_dir("modernbert_save_base");
  save_hf_params(*base.store, base_dir, base.model->hf_config(), DType::f32);
  EXPECT_EQ(config_json::read_json_file(base_dir + "/config.json")["architectures"][0], "ModernBertModel");
  LoadedTaskModel m2 = load(base_dir, TaskHead::masked_lm);
  EXPECT_EQ(m2.missing_tensors.size(), 3u);  // head.dense.weight, head.norm.weight, decoder.bias
  EXPECT_EQ(test::max_abs_diff(m2.store->master("model.layers.2.mlp.Wi.weight"),
                               s.store->master("model.layers.2.mlp.Wi.weight")),
            0.0);
}

TEST(ModernBert, InitFollowsHFRules) {
  auto cfg = tiny_config();
  cfg["num_labels"] = 3;
  cfg["norm_bias"] = true;
  cfg["attention_bias"] = true;
  ParamStore store(Device::cpu(), DType::f32);
  TaskModelRequest req;
  req.head = TaskHead::sequence_classification;
  auto model = make_task_model(cfg, "x", store, req);
  store.finalize();
  Generator gen{11, 0};
  model->init_weights(gen);
  auto stats = [&](const std::string& n, double* std_out, double* max_abs) {
    auto v = store.master(n).to_double_vector();
    double s2 = 0, m = 0;
    for (double x : v) {
      s2 += x * x;
      m = std::max(m, std::fabs(x));
    }
    *std_out = std::sqrt(s2 / double(v.size()));
    *max_abs = m;
  };
  // Truncated at 2 std: the std of N(0, s) truncated at +-2s is 0.880 s.
  const double in = 0.02, out = 0.02 / std::sqrt(8.0), final_out = 1 / std::sqrt(32.0);
  struct Row {
    const char* name;
    double std;
  };
  for (Row r : {Row{"model.embeddings.tok_embeddings.weight", in}, Row{"model.layers.1.attn.Wqkv.weight", in},
                Row{"model.layers.1.attn.Wo.weight", out}, Row{"model.layers.3.mlp.Wi.weight", in},
                Row{"model.layers.0.mlp.Wo.weight", out}, Row{"head.dense.weight", out},
                Row{"classifier.weight", final_out}}) {
    double s = 0, m = 0;
    stats(r.name, &s, &m);
    EXPECT_NEAR(s, 0.880 * r.std, 0.1 * r.std) << r.name;
    EXPECT_LE(m, 2 * r.std * (1 + 1e-6)) << r.name;
    EXPECT_GT(m, 1.5 * r.std) << r.name;
  }
  EXPECT_EQ(store.master("model.layers.2.attn_norm.weight").to_float_vector(), std::vector<float>(32, 1.f));
  EXPECT_EQ(store.master("model.layers.2.attn_norm.bias").to_float_vector(), std::vector<float>(32, 0.f));
  EXPECT_EQ(store.master("model.layers.2.attn.Wqkv.bias").to_float_vector(), std::vector<float>(96, 0.f));
  EXPECT_EQ(store.master("classifier.bias").to_float_vector(), std::vector<float>(3, 0.f));
  EXPECT_FALSE(store.has("model.layers.0.attn_norm.weight"));  // layer 0 has none
  EXPECT_FALSE(store.spec("model.layers.1.mlp_norm.weight").weight_decay);
  EXPECT_TRUE(store.spec("model.layers.1.mlp.Wi.weight").weight_decay);
}

TEST(ModernBert, RecomputeAndDropoutGiveTheSameGradients) {
  auto cfg = tiny_config();
  cfg["mlp_dropout"] = 0.2;
  cfg["embedding_dropout"] = 0.1;
  auto seqs = random_sequences({13, 8}, 97, 60);
  TokenBatch batch = make_batch(seqs, 13, false);
  std::vector<std::vector<double>> grads;
  std::vector<uint64_t> offsets;
  for (bool recompute : {false, true}) {
    Synthetic s = synthetic(cfg, TaskHead::masked_lm);
    auto* mlm = dynamic_cast<MaskedLM*>(s.model.get());
    Generator gen{77, 0};
    ForwardOptions o;
    o.training = true;
    o.gen = &gen;
    o.recompute = recompute;
    RaggedBatch r = unpad(batch);
    Tensor h = mlm->encode(r, o);
    std::vector<int64_t> t(size_t(r.num_tokens()), -100);
    for (size_t i = 0; i < t.size(); i += 3) t[i] = int64_t(r.ids[i]);
    Tensor logits = ops::linear(mlm->mlm_transform(h), mlm->decoder_weight(), mlm->decoder_bias());
    auto ce = ops::cross_entropy_logits(logits, Tensor::from_vector<int64_t>(t, {int64_t(t.size())}));
    autograd::backward(ce.loss);
    grads.push_back(s.store->flat_grads().to_double_vector());
    offsets.push_back(gen.offset);
  }
  EXPECT_LT(test::rel_error(grads[1], grads[0]), 1e-6);
  EXPECT_EQ(offsets[0], offsets[1]);
  EXPECT_EQ(offsets[0], 5u);  // the embedding's dropout + one per layer
  // Training with dropout but no generator fails clearly.
  Synthetic s = synthetic(cfg, TaskHead::masked_lm);
  ForwardOptions bad;
  bad.training = true;
  EXPECT_NE(error_of([&] { s.model->forward_output(batch, bad); }).find("needs ForwardOptions::gen"), std::string::npos);
}

TEST(ModernBert, ConfigParsingAndErrors) {
  auto parse = [](const std::string& text) {
    return parse_modernbert_config(nlohmann::json::parse(text), "m/config.json");
  };
  auto msg = [&](const std::string& text) { return error_of([&] { parse(text); }); };
  // HF defaults (ModernBERT-base shapes).
  ModernBertConfig d = parse("{}");
  EXPECT_EQ(d.head_dim, 64);
  EXPECT_EQ(d.window(), 64);
  EXPECT_TRUE(d.is_global(0) && d.is_global(3) && !d.is_global(1) && !d.is_global(2));
  EXPECT_EQ(d.rope_theta(0), 160000.0);
  EXPECT_EQ(d.rope_theta(1), 10000.0);
  EXPECT_EQ(d.num_labels, 2);
  // v4 keys and v5 rope_parameters (agreeing), id2label.
  ModernBertConfig v5 = parse(R"({"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 80000},
      "sliding_attention": {"rope_type": "default", "rope_theta": 5000}}, "global_rope_theta": 80000,
      "id2label": {"1": "pos", "0": "neg"}})");
  EXPECT_EQ(v5.global_rope_theta, 80000.0);
  EXPECT_EQ(v5.local_rope_theta, 5000.0);
  EXPECT_EQ(v5.label_names, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(parse(R"({"local_rope_theta": 321})").local_rope_theta, 321.0);
  auto has = [&](const std::string& text, const std::string& piece) {
    const std::string m = msg(text);
    EXPECT_NE(m.find(piece), std::string::npos) << "config " << text << " gave: " << m;
  };
  has(R"({"hidden_size": 100})", "m/config.json: hidden_size: 100 is not a multiple of num_attention_heads = 12");
  has(R"({"hidden_size": 36, "num_attention_heads": 4})", "must be even (RoPE)");
  has(R"({"hidden_activation": "swiglu"})", "m/config.json: hidden_activation: unknown activation 'swiglu'");
  has(R"({"classifier_activation": 3})", "classifier_activation: expected a string");
  has(R"({"classifier_pooling": "max"})", "classifier_pooling: expected \"cls\" or \"mean\"");
  has(R"({"num_hidden_layers": 0})", "num_hidden_layers: expected a positive integer");
  has(R"({"local_attention": -2})", "local_attention: expected a positive integer");
  has(R"({"global_rope_theta": 1000, "rope_parameters": {"full_attention": {"rope_theta": 2000},
      "sliding_attention": {}}})",
      "rope_parameters.full_attention.rope_theta 2000 contradicts global_rope_theta 1000");
  has(R"({"rope_parameters": {"rope_theta": 10000}})", "expected per-layer-type entries");
  has(R"({"rope_parameters": {"full_attention": {"rope_type": "yarn"}, "sliding_attention": {}}})",
      "rope_type: 'yarn' is not supported");
  has(R"({"rope_parameters": {"full_attention": {}}})", "rope_parameters.sliding_attention: missing");
  has(R"({"num_hidden_layers": 3, "layer_types": ["full_attention", "full_attention", "sliding_attention"]})",
      "layer_types[1]: full_attention contradicts global_attn_every_n_layers = 3");
  has(R"({"num_hidden_layers": 3, "layer_types": ["full_attention"]})", "expected a list of num_hidden_layers = 3");
  has(R"({"num_labels": 3, "id2label": {"0": "a", "1": "b"}})", "num_labels: 3 contradicts id2label with 2 entries");
  has(R"({"id2label": {"0": "a", "2": "b"}})", "id2label: key '2'");
  has(R"({"mlp_dropout": 1.5})", "mlp_dropout: expected a dropout probability");
  has(R"({"model_type": "bert"})", "model_type: expected \"modernbert\"");
  has(R"({"head_dim": 32})", "head_dim: 32 contradicts");
  has(R"({"rope_scaling": {"type": "linear", "factor": 2}})", "rope_scaling: RoPE scaling is not supported");
  has(R"({"vocab_size": 10})", "pad_token_id: 50283 is outside the vocabulary");
  // Factory errors: unknown architecture, unsupported pooling.
  ParamStore store(Device::cpu(), DType::f32);
  auto cfg = tiny_config();
  cfg["architectures"] = {"ModernBertForTokenClassification"};
  EXPECT_NE(error_of([&] { make_task_model(cfg, "c.json", store, TaskModelRequest()); })
                .find("c.json: architectures: 'ModernBertForTokenClassification' is not supported"),
            std::string::npos);
  TaskModelRequest last;
  last.head = TaskHead::sequence_classification;
  last.pooling = "last";
  EXPECT_NE(error_of([&] { make_task_model(tiny_config(), "c.json", store, last); }).find("pooling 'last'"),
            std::string::npos);
}

TEST(ModernBert, CheckpointShapeMismatchFailsClearly) {
  Synthetic s = synthetic(tiny_config(), TaskHead::masked_lm);
  const std::string out = test::scratch_dir("modernbert_shape");
  save_hf_params(*s.store, out, s.model->hf_config(), DType::f32);
  auto cfg = tiny_config();
  cfg["intermediate_size"] = 40;
  ParamStore store(Device::cpu(), DType::f32);
  TaskModelRequest req;
  auto model = make_task_model(cfg, "x", store, req);
  store.finalize();
  const std::string m = error_of([&] { load_hf_params(store, out, model->hf_optional_on_load()); });
  EXPECT_NE(m.find("tensor 'model.layers.0.mlp.Wi.weight' has shape [96, 32], the config expects [80, 32]"),
            std::string::npos)
      << m;
}

TEST(ModernBert, ShippedConfigsParse) {
  // Registration only (no allocation before finalize): parameter counts of the shipped configs.
  auto count = [](const std::string& rel, TaskHead head) {
    const std::string path = test::source_path(rel);
    ParamStore store(Device::cpu(), DType::f32);
    TaskModelRequest req;
    req.head = head;
    auto model = make_task_model(config_json::read_json_file(path), path, store, req);
    int64_t n = 0;
    for (const auto& s : store.specs()) n += shape_numel(s.shape);
    return n;
  };
  // mmBERT-base: 256000 x 768 tied embeddings + 22 layers of 5.01M + head + decoder bias = 307.5M.
  const int64_t H = 768, I = 1152, V = 256000, L = 22;
  const int64_t per_layer = 3 * H * H + H * H + 2 * I * H + I * H + 2 * H;  // + attn_norm, mlp_norm
  const int64_t expected = V * H + H + L * per_layer - H /* layer 0 has no attn_norm */ + H /* final_norm */ +
                           H * H + H /* head */ + V /* decoder.bias */;
  EXPECT_EQ(count("configs/models/mmbert-base.json", TaskHead::from_config), expected);
  EXPECT_NEAR(double(expected), 307.5e6, 0.5e6);
  auto cfg = parse_modernbert_config(config_json::read_json_file(test::source_path("configs/models/mmbert-base.json")),
                                     "mmbert-base.json");
  EXPECT_EQ(cfg.window(), 64);
  EXPECT_EQ(cfg.local_rope_theta, 160000.0);
  EXPECT_GT(count("configs/models/tiny-modernbert.json", TaskHead::sequence_classification), 500000);
}
