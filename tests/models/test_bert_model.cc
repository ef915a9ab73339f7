// The `bert` family without reference fixtures: padding invariance (HF semantics per model
// type), dropout determinism and recomputation, init rules, save/load and legacy names, and
// one-line errors for bad configs and checkpoints. Parity with transformers: test_bert_hf.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <tuple>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/bert.h"
#include "lmforge/models/config_json.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/linear.h"
#include "test_util.h"

using namespace lmf;
using nlohmann::json;

namespace {

json tiny_config(const std::string& type, const std::string& arch) {
  const bool bert = type == "bert";
  return json{{"model_type", type},
              {"architectures", {arch}},
              {"vocab_size", 60},
              {"hidden_size", 16},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"intermediate_size", 24},
              {"max_position_embeddings", 24},
              {"type_vocab_size", bert ? 2 : 1},
              {"layer_norm_eps", bert ? 1e-12 : 1e-5},
              {"pad_token_id", bert ? 0 : 1},
              {"initializer_range", 0.3},
              {"hidden_act", "gelu"},
              {"id2label", {{"0", "a"}, {"1", "b"}, {"2", "c"}}}};
}

struct Built {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
};

Built build(const json& cfg, TaskHead head = TaskHead::from_config, uint64_t seed = 5) {
  Built b;
  b.store = std::make_unique<ParamStore>(Device::cpu(), DType::f32);
  TaskModelRequest req;
  req.head = head;
  b.model = make_task_model(cfg, "tiny/config.json", *b.store, req);
  b.store->finalize();
  Generator g{seed, 0};
  b.model->init_weights(g);
  return b;
}

// Sequences of real ids (never the pad id, which is 0 or 1) laid out in a padded batch. BERT
// batches (pad 0) get two segments per row; RoBERTa ones (pad 1, type_vocab_size 1) none.
struct Layout {
  std::vector<std::vector<int64_t>> seqs;
  TokenBatch batch(int64_t T, bool left, int64_t pad) const {
    const int64_t B = int64_t(seqs.size());
    std::vector<int64_t> ids(size_t(B * T), pad), mask(size_t(B * T), 0), types(size_t(B * T), 0);
    for (int64_t b = 0; b < B; b++) {
      const int64_t n = int64_t(seqs[size_t(b)].size()), start = left ? T - n : 0;
      for (int64_t t = 0; t < n; t++) {
        ids[size_t(b * T + start + t)] = seqs[size_t(b)][size_t(t)];
        mask[size_t(b * T + start + t)] = 1;
        types[size_t(b * T + start + t)] = pad == 0 && t >= n / 2 ? 1 : 0;
      }
    }
    TokenBatch tb;
    tb.input_ids = Tensor::from_vector<int64_t>(ids, {B, T});
    tb.attention_mask = Tensor::from_vector<int64_t>(mask, {B, T});
    tb.token_type_ids = Tensor::from_vector<int64_t>(types, {B, T});
    return tb;
  }
};

Layout three_sequences() { return Layout{{{2, 17, 33, 8, 41}, {2, 9, 55}, {2, 12, 29, 30, 44, 5, 3}}}; }

// Row b, columns [start, start + n) of a [B, T, X] tensor as doubles.
std::vector<double> rows(const Tensor& x, int64_t b, int64_t start, int64_t n) {
  const int64_t T = x.size(1), X = x.size(2);
  auto v = x.to_double_vector();
  return std::vector<double>(v.begin() + (b * T + start) * X, v.begin() + (b * T + start + n) * X);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

void expect_one_line_error(const std::function<void()>& f, const std::string& needle) {
  const std::string msg = error_of(f);
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace

TEST(BertModel, RightPaddingEqualsEachSequenceAloneAndLeftPaddingShiftsBertPositions) {
  autograd::NoGradGuard ng;
  Built m = build(tiny_config("bert", "BertForMaskedLM"));
  Layout l = three_sequences();
  Tensor right = m.model->forward_output(l.batch(9, false, 0), {});
  Tensor left = m.model->forward_output(l.batch(9, true, 0), {});
  ASSERT_EQ(right.shape(), (Shape{3, 9, 60}));
  for (int64_t b = 0; b < 3; b++) {
    const int64_t n = int64_t(l.seqs[size_t(b)].size());
    Layout one{{l.seqs[size_t(b)]}};
    Tensor alone = m.model->forward_output(one.batch(n, false, 0), {});
    EXPECT_LT(test::rel_error(rows(right, b, 0, n), rows(alone, 0, 0, n)), 1e-5) << "row " << b;
    // Pad rows of the output are exactly 0.
    for (double v : rows(right, b, n, 9 - n)) ASSERT_EQ(v, 0.0);
    // BERT positions are the padded columns (HF's arange): left padding moves them.
    EXPECT_GT(test::rel_error(rows(left, b, 9 - n, n), rows(alone, 0, 0, n)), 1e-3) << "row " << b;
  }
}

TEST(BertModel, RobertaPositionsIgnoreLeftPaddingForMlmAndClassification) {
  autograd::NoGradGuard ng;
  for (const char* type : {"roberta", "xlm-roberta"}) {
    Built mlm = build(tiny_config(type, "XLMRobertaForMaskedLM"));
    Built cls = build(tiny_config(type, "RobertaForSequenceClassification"));
    Layout l = three_sequences();
    for (auto& s : l.seqs) s[0] = 0;  // <s>
    Tensor right = mlm.model->forward_output(l.batch(10, false, 1), {});
    Tensor left = mlm.model->forward_output(l.batch(10, true, 1), {});
    for (int64_t b = 0; b < 3; b++) {
      const int64_t n = int64_t(l.seqs[size_t(b)].size());
      EXPECT_LT(test::rel_error(rows(left, b, 10 - n, n), rows(right, b, 0, n)), 1e-5)
          << type << " row " << b;
    }
    Tensor cr = cls.model->forward_output(l.batch(10, false, 1), {});
    Tensor cl = cls.model->forward_output(l.batch(10, true, 1), {});
    ASSERT_EQ(cr.shape(), (Shape{3, 3}));
    EXPECT_LT(test::rel_error(cl, cr), 1e-5) << type;
    EXPECT_GT(test::max_abs_diff(cr, Tensor::zeros({3, 3}, DType::f32)), 1e-3);
  }
}

TEST(BertModel, BertClassifierOfAPaddedBatchEqualsEachSequenceAlone) {
  autograd::NoGradGuard ng;
  Built m = build(tiny_config("bert", "BertForSequenceClassification"));
  auto* cls = dynamic_cast<SequenceClassifier*>(m.model.get());
  ASSERT_NE(cls, nullptr);
  EXPECT_EQ(cls->num_labels(), 3);
  Layout l = three_sequences();
  std::vector<double> batched = cls->classify(l.batch(8, false, 0), {}).to_double_vector();
  for (int64_t b = 0; b < 3; b++) {
    Layout one{{l.seqs[size_t(b)]}};
    std::vector<double> alone =
        cls->classify(one.batch(int64_t(l.seqs[size_t(b)].size()), false, 0), {}).to_double_vector();
    std::vector<double> mine(batched.begin() + b * 3, batched.begin() + b * 3 + 3);
    EXPECT_LT(test::rel_error(mine, alone), 1e-5) << "row " << b;
  }
}

TEST(BertModel, InitFollowsHfRules) {
  for (const char* type : {"bert", "roberta"}) {
    json cfg = tiny_config(type, "BertForMaskedLM");
    cfg["vocab_size"] = 400;
    cfg["hidden_size"] = 32;
    cfg["initializer_range"] = 0.02;
    Built m = build(cfg);
    ParamStore& s = *m.store;
    const std::string pre = std::string(type) == "bert" ? "bert." : "roberta.";
    const int64_t pad = std::string(type) == "bert" ? 0 : 1;
    Tensor word = s.master(pre + "embeddings.word_embeddings.weight");
    for (double v : word.select(0, pad).to_double_vector()) ASSERT_EQ(v, 0.0) << type;
    auto w = word.to_double_vector();
    double sum2 = 0;
    for (double v : w) sum2 += v * v;
    EXPECT_NEAR(std::sqrt(sum2 / double(w.size() - 32)), 0.02, 0.002) << type;
    Tensor pos = s.master(pre + "embeddings.position_embeddings.weight");
    double pad_row = 0;
    for (double v : pos.select(0, pad).to_double_vector()) pad_row += std::abs(v);
    // RoBERTa's position table has padding_idx = pad (row zeroed); BERT's has none.
    if (std::string(type) == "bert")
      EXPECT_GT(pad_row, 0.0);
    else
      EXPECT_EQ(pad_row, 0.0);
    for (double v : s.master(pre + "encoder.layer.1.output.LayerNorm.weight").to_double_vector())
      ASSERT_EQ(v, 1.0);
    for (double v : s.master(pre + "encoder.layer.0.attention.self.key.bias").to_double_vector())
      ASSERT_EQ(v, 0.0);
    for (double v :
         s.master(std::string(type) == "bert" ? "cls.predictions.bias" : "lm_head.bias").to_double_vector())
      ASSERT_EQ(v, 0.0);
    // Distinct tensors get distinct streams, and the same seed gives the same weights.
    EXPECT_GT(test::max_abs_diff(s.master(pre + "encoder.layer.0.attention.self.query.weight"),
                                 s.master(pre + "encoder.layer.0.attention.self.key.weight")),
              1e-3);
    Built again = build(cfg);
    EXPECT_EQ(test::max_abs_diff(again.store->flat_master(), s.flat_master()), 0.0);
  }
}

TEST(BertModel, DropoutIsSeededAndRecomputationReproducesIt) {
  json cfg = tiny_config("bert", "BertForSequenceClassification");
  Layout l = three_sequences();
  TokenBatch batch = l.batch(8, false, 0);
  Tensor labels = Tensor::from_vector<int64_t>({0, 2, 1}, {3});
  auto run = [&](bool training, bool recompute, uint64_t seed, std::vector<double>* grads) {
    Built m = build(cfg);
    Generator gen{seed, 0};
    ForwardOptions o;
    o.training = training;
    o.gen = &gen;
    o.recompute = recompute;
    Tensor logits = m.model->forward_output(batch, o);
    auto ce = ops::cross_entropy_logits(logits, labels);
    autograd::backward(ce.loss);
    if (grads) *grads = m.store->flat_grads().to_double_vector();
    return logits.to_double_vector();
  };
  std::vector<double> g1, g2, g3;
  auto eval = run(false, false, 1, nullptr);
  auto t1 = run(true, false, 1, &g1);
  auto t2 = run(true, true, 1, &g2);
  auto t3 = run(true, false, 2, &g3);
  EXPECT_GT(test::rel_error(t1, eval), 1e-3);
  EXPECT_EQ(t1, t2);
  EXPECT_LT(test::rel_error(g2, g1), 1e-6);
  EXPECT_GT(test::rel_error(t3, t1), 1e-3);
  // Training with dropout but no generator is a caller error.
  Built m = build(cfg);
  ForwardOptions o;
  o.training = true;
  expect_one_line_error([&] { m.model->forward_output(batch, o); }, "needs ForwardOptions::gen");
}

TEST(BertModel, SaveLoadRoundTripIsBitExactForEveryHead) {
  for (const auto& [type, arch] :
       std::vector<std::pair<std::string, std::string>>{{"bert", "BertModel"},
                                                        {"bert", "BertForMaskedLM"},
                                                        {"bert", "BertForSequenceClassification"},
                                                        {"xlm-roberta", "XLMRobertaForMaskedLM"},
                                                        {"roberta", "RobertaForSequenceClassification"}}) {
    Built m = build(tiny_config(type, arch));
    EXPECT_EQ(std::string(m.model->architecture()), arch);
    const std::string dir = test::scratch_dir("bert_roundtrip_" + arch);
    save_hf_params(*m.store, dir, m.model->hf_config(), DType::f32, m.model->hf_skip_on_save());
    LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, {});
    EXPECT_EQ(std::string(l.model->architecture()), arch);
    EXPECT_TRUE(l.unused_tensors.empty()) << arch;
    EXPECT_TRUE(l.missing_tensors.empty()) << arch;
    EXPECT_EQ(test::max_abs_diff(l.store->flat_master(), m.store->flat_master()), 0.0) << arch;
    autograd::NoGradGuard ng;
    TokenBatch batch = three_sequences().batch(8, false, type == "bert" ? 0 : 1);
    EXPECT_EQ(test::max_abs_diff(l.model->forward_output(batch, {}), m.model->forward_output(batch, {})),
              0.0);
  }
}

TEST(BertModel, LabelNamesAndNumLabelsReachTheSavedConfig) {
  TaskModelRequest req;
  req.head = TaskHead::sequence_classification;
  req.num_labels = 4;
  ParamStore store(Device::cpu(), DType::f32);
  auto model = make_task_model(tiny_config("bert", "BertForMaskedLM"), "t/config.json", store, req);
  auto* cls = dynamic_cast<SequenceClassifier*>(model.get());
  ASSERT_NE(cls, nullptr);
  EXPECT_EQ(cls->num_labels(), 4);
  EXPECT_EQ(model->hf_config()["id2label"]["3"], "LABEL_3");
  cls->set_label_names({"w", "x", "y", "z"});
  json j = model->hf_config();
  EXPECT_EQ(j["id2label"]["2"], "y");
  EXPECT_EQ(j["label2id"]["z"], 3);
  EXPECT_EQ(j["architectures"][0], "BertForSequenceClassification");
  EXPECT_FALSE(j.contains("num_labels"));
  expect_one_line_error([&] { cls->set_label_names({"a", "b"}); }, "2 names for a classifier with 4 labels");
  expect_one_line_error([&] { cls->set_label_names({"a", "b", "a", "c"}); }, "appears twice");
}

TEST(BertModel, LegacyGammaBetaAndBaseModelPrefixesLoad) {
  Built mlm = build(tiny_config("bert", "BertForMaskedLM"));
  const std::string dir = test::scratch_dir("bert_legacy_names");
  // A BertModel-style (unprefixed) checkpoint with TF-era gamma/beta names, plus the MLM head.
  NamedTensors legacy;
  for (const auto& spec : mlm.store->specs()) {
    std::string n = spec.name;
    if (n.rfind("bert.", 0) == 0) n = n.substr(5);
    auto pos = n.find("LayerNorm.weight");
    if (pos != std::string::npos) n.replace(pos, 16, "LayerNorm.gamma");
    pos = n.find("LayerNorm.bias");
    if (pos != std::string::npos) n.replace(pos, 14, "LayerNorm.beta");
    legacy.emplace_back(n, mlm.store->master(spec.name));
  }
  save_safetensors(dir + "/model.safetensors", legacy);
  std::ofstream(dir + "/config.json") << tiny_config("bert", "BertForMaskedLM").dump();
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, {});
  EXPECT_TRUE(l.unused_tensors.empty());
  EXPECT_EQ(test::max_abs_diff(l.store->flat_master(), mlm.store->flat_master()), 0.0);

  // The prefixed MLM checkpoint as a base model: the pooler is new, the MLM head unused.
  const std::string dir2 = test::scratch_dir("bert_prefixed_as_base");
  save_hf_params(*mlm.store, dir2, mlm.model->hf_config());
  TaskModelRequest base;
  base.head = TaskHead::base;
  LoadedTaskModel b = load_task_model(dir2, Device::cpu(), DType::f32, base);
  EXPECT_EQ(std::string(b.model->architecture()), "BertModel");
  EXPECT_EQ(b.missing_tensors, (std::vector<std::string>{"pooler.dense.weight", "pooler.dense.bias"}));
  EXPECT_EQ(b.unused_tensors.size(), 5u);  // cls.predictions.{bias, transform.dense.*, transform.LayerNorm.*}
  EXPECT_EQ(test::max_abs_diff(b.store->master("encoder.layer.1.output.dense.weight"),
                               mlm.store->master("bert.encoder.layer.1.output.dense.weight")),
            0.0);
  // The MLM checkpoint as a classifier: pooler and classifier are new (HF "newly initialized").
  TaskModelRequest cls;
  cls.head = TaskHead::sequence_classification;
  LoadedTaskModel c = load_task_model(dir2, Device::cpu(), DType::f32, cls);
  EXPECT_EQ(c.missing_tensors.size(), 4u);
  EXPECT_EQ(c.unused_tensors.size(), 5u);
}

TEST(BertModel, BadConfigsAreOneLineErrors) {
  auto parse = [](json j) { return [j] { parse_bert_config(j, "m/config.json"); }; };
  json base = tiny_config("bert", "BertForMaskedLM");
  json j = base;
  j.erase("hidden_size");
  expect_one_line_error(parse(j), "m/config.json: hidden_size: missing");
  j = base;
  j["num_attention_heads"] = 3;
  expect_one_line_error(parse(j), "hidden_size 16 is not a multiple of num_attention_heads 3");
  j = base;
  j["position_embedding_type"] = "rotary";
  expect_one_line_error(parse(j), "position_embedding_type: unknown value 'rotary'");
  j["position_embedding_type"] = "relative_key";
  expect_one_line_error(parse(j), "'relative_key' is not supported");
  j = base;
  j["model_type"] = "gpt2";
  expect_one_line_error(parse(j), "model_type: expected \"bert\"");
  j = base;
  j["num_labels"] = 2;
  expect_one_line_error(parse(j), "num_labels 2 contradicts id2label, which has 3 labels");
  j = base;
  j["id2label"] = {{"0", "a"}, {"2", "b"}};
  expect_one_line_error(parse(j), "id2label: key '2'");
  j = base;
  j["hidden_act"] = "swiglu";
  expect_one_line_error(parse(j), "m/config.json: hidden_act: unknown activation 'swiglu'");
  j = base;
  j["is_decoder"] = true;
  expect_one_line_error(parse(j), "is_decoder");
  j = base;
  j["hidden_dropout_prob"] = 1.5;
  expect_one_line_error(parse(j), "hidden_dropout_prob: expected a probability");

  auto make = [](json j, TaskModelRequest req) {
    return [j, req] {
      ParamStore s(Device::cpu(), DType::f32);
      make_task_model(j, "m/config.json", s, req);
    };
  };
  TaskModelRequest cls;
  cls.head = TaskHead::sequence_classification;
  j = base;
  j.erase("id2label");
  j["num_labels"] = 1;
  expect_one_line_error(make(j, cls), "num_labels 1 means regression");
  j = base;
  j["problem_type"] = "multi_label_classification";
  expect_one_line_error(make(j, cls), "problem_type: 'multi_label_classification' is not supported");
  cls.pooling = "mean";
  expect_one_line_error(make(base, cls), "only 'cls' is supported");
  j = base;
  j["architectures"] = {"BertForQuestionAnswering"};
  expect_one_line_error(make(j, {}), "'BertForQuestionAnswering' is not supported by the bert family");
}

TEST(BertModel, BadCheckpointsAndBatchesAreOneLineErrors) {
  Built m = build(tiny_config("bert", "BertForMaskedLM"));
  const std::string dir = test::scratch_dir("bert_bad_shape");
  save_hf_params(*m.store, dir, m.model->hf_config());
  json cfg = tiny_config("bert", "BertForMaskedLM");
  cfg["intermediate_size"] = 20;
  std::ofstream(dir + "/config.json") << cfg.dump();
  const std::string msg = error_of([&] { load_task_model(dir, Device::cpu(), DType::f32, {}); });
  EXPECT_NE(msg.find("tensor 'bert.encoder.layer.0.intermediate.dense.weight' has shape [24, 16], the config "
                     "expects [20, 16]"),
            std::string::npos)
      << msg;

  autograd::NoGradGuard ng;
  Layout l{{{2, 70, 3}}};  // 70 >= vocab_size 60
  expect_one_line_error([&] { m.model->forward_output(l.batch(3, false, 0), {}); },
                        "[bert] input id 70 is outside the vocabulary of 60 tokens");
  Layout long_seq{{std::vector<int64_t>(25, 7)}};  // 25 > max_position_embeddings 24
  expect_one_line_error([&] { m.model->forward_output(long_seq.batch(25, false, 0), {}); },
                        "beyond max_position_embeddings 24");
  TokenBatch bad_types = three_sequences().batch(8, false, 0);
  bad_types.token_type_ids.data<int64_t>()[0] = 2;
  expect_one_line_error([&] { m.model->forward_output(bad_types, {}); }, "token_type_id 2 is outside");
  Built rob = build(tiny_config("roberta", "RobertaForMaskedLM"));
  Layout fits{{std::vector<int64_t>(22, 7)}};  // RoBERTa: positions 2..23 fit in 24
  EXPECT_EQ(rob.model->forward_output(fits.batch(22, false, 1), {}).size(1), 22);
  Layout too_long{{std::vector<int64_t>(23, 7)}};
  expect_one_line_error([&] { rob.model->forward_output(too_long.batch(23, false, 1), {}); },
                        "at most 22 tokens");
}

TEST(BertModel, ShippedConfigsBuildWithTheKnownParameterCounts) {
  // BertForMaskedLM(bert-base-multilingual-cased) and XLMRobertaForMaskedLM(xlm-roberta-base):
  // embeddings + 12 x 7,087,872 per layer + MLM head (dense, norm, vocabulary bias; tied decoder).
  for (const auto& [file, arch, expected] : std::vector<std::tuple<std::string, std::string, int64_t>>{
           {"mbert-base.json", "BertForMaskedLM", 177974523},
           {"xlmr-base.json", "XLMRobertaForMaskedLM", 278295186},
           {"tiny-bert.json", "BertForMaskedLM", 0}}) {
    const std::string path = test::source_path("configs/models/" + file);
    ParamStore store(Device::cpu(), DType::f32);
    auto model = make_task_model(config_json::read_json_file(path), path, store, {});
    EXPECT_EQ(std::string(model->architecture()), arch) << file;
    int64_t n = 0;
    for (const auto& s : store.specs()) n += shape_numel(s.shape);
    if (expected > 0) {
      EXPECT_EQ(n, expected) << file;
    }
    if (file == "tiny-bert.json") {
      // 6 x (4 layers x (4 H^2 + 2 H I) + H^2 + V H) + 3 x 4 layers x 4 seq H, H 128, I 512, V 4096.
      EXPECT_EQ(model->train_flops_per_token(128),
                6.0 * (4 * (4 * 16384 + 2 * 65536) + 16384 + 4096 * 128) + 3.0 * 4 * 4 * 128 * 128);
    }
  }
}
