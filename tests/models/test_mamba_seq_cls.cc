// MambaForSequenceClassification: unpadded packing equals running each sequence alone (right,
// left padding), last pooling = the last REAL token's final-normed hidden state through the
// classifier, gradients (finite differences on the head), HF save/load round trip, loading a
// MambaForCausalLM folder with a new head, and config errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/mamba_seq_cls.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/linear.h"
#include "lmforge/train/seq_cls_trainer.h"
#include "test_util.h"

using namespace lmf;

namespace {

nlohmann::json tiny_config() {
  return {{"architectures", {"MambaForCausalLM"}},
          {"model_type", "mamba"},
          {"vocab_size", 50},
          {"hidden_size", 16},
          {"state_size", 4},
          {"num_hidden_layers", 2},
          {"expand", 2},
          {"conv_kernel", 4},
          {"time_step_rank", "auto"},
          {"initializer_range", 0.2},
          {"tie_word_embeddings", true}};
}

struct Built {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
  SequenceClassifier* cls = nullptr;
};

Built build(const nlohmann::json& cfg, int64_t k, const std::string& pooling = "", uint64_t seed = 7) {
  Built b;
  b.store = std::make_unique<ParamStore>(Device::cpu(), DType::f32);
  TaskModelRequest req;
  req.head = TaskHead::sequence_classification;
  req.num_labels = k;
  req.pooling = pooling;
  b.model = make_task_model(cfg, "tiny/config.json", *b.store, req);
  b.store->finalize();
  Generator g{seed, 0};
  b.model->init_weights(g);
  b.cls = dynamic_cast<SequenceClassifier*>(b.model.get());
  return b;
}

// A padded batch from rows of ids; `left` pads on the left.
TokenBatch batch_of(const std::vector<std::vector<int64_t>>& rows, bool left = false, int64_t pad = 0) {
  int64_t T = 0;
  for (const auto& r : rows) T = std::max<int64_t>(T, int64_t(r.size()));
  const int64_t B = int64_t(rows.size());
  std::vector<int64_t> ids(size_t(B * T), pad), mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; b++) {
    const int64_t off = left ? T - int64_t(rows[size_t(b)].size()) : 0;
    for (size_t t = 0; t < rows[size_t(b)].size(); t++) {
      ids[size_t(b * T + off) + t] = rows[size_t(b)][t];
      mask[size_t(b * T + off) + t] = 1;
    }
  }
  TokenBatch tb;
  tb.input_ids = Tensor::from_vector(ids, {B, T});
  tb.attention_mask = Tensor::from_vector(mask, {B, T});
  return tb;
}

const std::vector<std::vector<int64_t>> kRows = {{3, 17, 42, 8, 9, 11, 5}, {21, 4}, {7, 7, 30, 2, 49}};

}  // namespace

TEST(MambaSeqCls, PackedBatchEqualsEachSequenceAlone) {
  Built b = build(tiny_config(), 3);
  autograd::NoGradGuard ng;
  ForwardOptions fo;
  auto right = b.cls->classify(batch_of(kRows), fo).to_float_vector();
  auto left = b.cls->classify(batch_of(kRows, /*left=*/true, /*pad=*/13), fo).to_float_vector();
  ASSERT_EQ(right.size(), 9u);
  for (size_t r = 0; r < kRows.size(); r++) {
    auto alone = b.cls->classify(batch_of({kRows[r]}), fo).to_float_vector();
    for (int c = 0; c < 3; c++) {
      EXPECT_NEAR(right[r * 3 + size_t(c)], alone[size_t(c)], 1e-5) << "row " << r;
      EXPECT_NEAR(left[r * 3 + size_t(c)], alone[size_t(c)], 1e-5) << "row " << r;
    }
  }
  // Rows differ (the test is not vacuous).
  EXPECT_GT(std::abs(right[0] - right[3]) + std::abs(right[1] - right[4]), 1e-4);
}

TEST(MambaSeqCls, LastAndMeanPoolingByHand) {
  for (const std::string pooling : {"last", "mean"}) {
    Built b = build(tiny_config(), 2, pooling);
    auto* m = dynamic_cast<MambaForSequenceClassification*>(b.model.get());
    ASSERT_NE(m, nullptr);
    autograd::NoGradGuard ng;
    auto logits = b.cls->classify(batch_of(kRows), ForwardOptions()).to_float_vector();
    for (size_t r = 0; r < kRows.size(); r++) {
      const int64_t L = int64_t(kRows[r].size());
      Tensor h = m->backbone().forward_hidden(Tensor::from_vector(kRows[r], {1, L}), Tensor(), false);
      auto hv = h.to_float_vector();  // [L, 16]
      std::vector<float> pooled(16, 0.f);
      for (int64_t t = 0; t < L; t++)
        for (int j = 0; j < 16; j++) {
          if (pooling == "last" && t == L - 1) pooled[size_t(j)] = hv[size_t(t * 16 + j)];
          if (pooling == "mean") pooled[size_t(j)] += hv[size_t(t * 16 + j)] / float(L);
        }
      Tensor W = b.store->master("classifier.weight"), bias = b.store->master("classifier.bias");
      auto w = W.to_float_vector(), bv = bias.to_float_vector();
      for (int c = 0; c < 2; c++) {
        double z = bv[size_t(c)];
        for (int j = 0; j < 16; j++) z += double(w[size_t(c * 16 + j)]) * pooled[size_t(j)];
        EXPECT_NEAR(logits[r * 2 + size_t(c)], z, 1e-5) << pooling << " row " << r << " class " << c;
      }
    }
  }
}

TEST(MambaSeqCls, GradientsReachBackboneAndMatchFiniteDifferences) {
  Built b = build(tiny_config(), 3);
  // Perturb the zero-initialized bias so the check is not at a symmetric point.
  b.store->master("classifier.bias").copy_from(Tensor::from_vector<float>({0.3f, -0.2f, 0.1f}, {3}));
  b.store->sync_compute();
  const TokenBatch tb = batch_of(kRows);
  const Tensor targets = Tensor::from_vector<int32_t>({2, 0, 1}, {3});
  const Tensor weights = Tensor::from_vector<float>({0.5f, 2.0f, 1.0f}, {3});
  ops::CrossEntropyOptions opt;
  opt.divide_by_weight_sum = true;
  auto loss_now = [&]() {
    autograd::NoGradGuard ng;
    return ops::cross_entropy_logits(b.cls->classify(tb, ForwardOptions()), targets, weights, opt)
        .loss.item();
  };
  b.store->zero_grad();
  auto ce = ops::cross_entropy_logits(b.cls->classify(tb, ForwardOptions()), targets, weights, opt);
  autograd::backward(ce.loss);
  double backbone_grad = 0;
  for (float x : b.store->grad("backbone.layers.0.mixer.in_proj.weight").to_float_vector())
    backbone_grad += std::abs(x);
  EXPECT_GT(backbone_grad, 1e-6);
  for (const std::string name : {"classifier.bias", "backbone.norm_f.weight"}) {
    auto g = b.store->grad(name).to_float_vector();
    Tensor m = b.store->master(name);
    for (int64_t i : {int64_t(0), int64_t(2)}) {
      auto v = m.to_float_vector();
      const float eps = 1e-3f, x0 = v[size_t(i)];
      v[size_t(i)] = x0 + eps;
      m.copy_from(Tensor::from_vector<float>(v, m.shape()));
      const double up = loss_now();
      v[size_t(i)] = x0 - eps;
      m.copy_from(Tensor::from_vector<float>(v, m.shape()));
      const double down = loss_now();
      v[size_t(i)] = x0;
      m.copy_from(Tensor::from_vector<float>(v, m.shape()));
      EXPECT_NEAR(g[size_t(i)], (up - down) / (2 * eps), 2e-3) << name << "[" << i << "]";
    }
  }
}

TEST(MambaSeqCls, SaveLoadRoundTripWithLabels) {
  Built b = build(tiny_config(), 3, "mean");
  b.cls->set_label_names({"neg", "neu", "pos"});
  const std::string dir = test::scratch_dir("mamba_seq_cls_roundtrip") + "/model";
  export_classifier(*b.cls, dir, {}, {{"max_length", 16}});
  nlohmann::json cfg = config_json::read_json_file(dir + "/config.json");
  EXPECT_EQ(cfg["architectures"][0], "MambaForSequenceClassification");
  EXPECT_EQ(cfg["num_labels"], 3);
  EXPECT_EQ(cfg["id2label"]["2"], "pos");
  EXPECT_EQ(cfg["label2id"]["neu"], 1);
  EXPECT_EQ(cfg["lmforge_pooling"], "mean");
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  EXPECT_TRUE(std::filesystem::exists(dir + "/lmforge_finetune.json"));
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, TaskModelRequest());
  EXPECT_TRUE(l.missing_tensors.empty());
  EXPECT_TRUE(l.unused_tensors.empty());
  auto* cls = dynamic_cast<MambaForSequenceClassification*>(l.model.get());
  ASSERT_NE(cls, nullptr);
  EXPECT_EQ(cls->label_names(), (std::vector<std::string>{"neg", "neu", "pos"}));
  EXPECT_EQ(cls->pooling(), Pooling::mean);
  autograd::NoGradGuard ng;
  Tensor a = b.cls->classify(batch_of(kRows), ForwardOptions());
  Tensor c = cls->classify(batch_of(kRows), ForwardOptions());
  EXPECT_EQ(test::max_abs_diff(a, c), 0.0);
  // Re-exporting over an existing folder replaces it (no .tmp / .old left behind).
  export_classifier(*cls, dir, {}, nlohmann::json::object());
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(dir).parent_path())) {
    (void)e;
    entries++;
  }
  EXPECT_EQ(entries, 1);
}

TEST(MambaSeqCls, LoadsCausalLMCheckpointWithNewHead) {
  const std::string dir = test::source_path("tests/fixtures/mamba_tiny_untied");
  TaskModelRequest req;
  req.head = TaskHead::sequence_classification;
  req.num_labels = 2;
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, req, 5);
  EXPECT_EQ(l.missing_tensors, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_EQ(l.unused_tensors, (std::vector<std::string>{"lm_head.weight"}));
  EXPECT_FALSE(l.store->has("lm_head.weight"));
  auto* cls = dynamic_cast<SequenceClassifier*>(l.model.get());
  ASSERT_NE(cls, nullptr);
  EXPECT_EQ(cls->num_labels(), 2);
  // Backbone weights are the checkpoint's; the head is freshly initialized (normal, bias 0).
  auto ck = SafetensorsFile::open(dir + "/model.safetensors");
  EXPECT_EQ(test::max_abs_diff(l.store->master("backbone.layers.1.mixer.x_proj.weight"),
                               ck.tensor("backbone.layers.1.mixer.x_proj.weight")),
            0.0);
  auto w = l.store->master("classifier.weight").to_float_vector();
  double ss = 0;
  for (float x : w) ss += double(x) * x;
  EXPECT_GT(ss, 0.0);
  for (float x : l.store->master("classifier.bias").to_float_vector()) EXPECT_EQ(x, 0.f);
  // The weight-decay flags: classifier weight decays, its bias does not.
  EXPECT_TRUE(l.store->spec("classifier.weight").weight_decay);
  EXPECT_FALSE(l.store->spec("classifier.bias").weight_decay);
  nlohmann::json saved = l.model->hf_config();
  EXPECT_EQ(saved["tie_word_embeddings"], false);  // as the source config says
}

TEST(MambaSeqCls, ConfigErrors) {
  auto error_of = [](const nlohmann::json& cfg, TaskModelRequest req) {
    ParamStore store(Device::cpu(), DType::f32);
    try {
      make_task_model(cfg, "x/config.json", store, req);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  TaskModelRequest from_config;
  EXPECT_NE(error_of(tiny_config(), from_config).find("load it with head sequence_classification"),
            std::string::npos);
  TaskModelRequest no_labels;
  no_labels.head = TaskHead::sequence_classification;
  EXPECT_NE(error_of(tiny_config(), no_labels).find("number of labels is unknown"), std::string::npos);
  TaskModelRequest bad_pool = no_labels;
  bad_pool.num_labels = 2;
  bad_pool.pooling = "max";
  EXPECT_NE(error_of(tiny_config(), bad_pool).find("expected one of cls, mean, last"), std::string::npos);
  nlohmann::json cls_cfg = tiny_config();
  cls_cfg["architectures"] = {"MambaForSequenceClassification"};
  cls_cfg["id2label"] = {{"0", "a"}, {"1", "b"}};
  TaskModelRequest three = no_labels;
  three.num_labels = 3;
  EXPECT_NE(error_of(cls_cfg, three).find("has 2 labels but 3 were requested"), std::string::npos);
  cls_cfg["classifier_dropout"] = 1.5;
  EXPECT_NE(error_of(cls_cfg, from_config).find("classifier_dropout"), std::string::npos);
  TaskModelRequest mlm;
  mlm.head = TaskHead::masked_lm;
  EXPECT_NE(error_of(tiny_config(), mlm).find("only the sequence_classification head"), std::string::npos);
  // A batch row with no real token.
  Built b = build(tiny_config(), 2);
  TokenBatch tb = batch_of({{1, 2}, {3}});
  tb.attention_mask = Tensor::from_vector<int64_t>({1, 1, 0, 0}, {2, 2});
  EXPECT_THROW(b.cls->classify(tb, ForwardOptions()), Error);
  TokenBatch oov = batch_of({{1, 99}});
  EXPECT_THROW(b.cls->classify(oov, ForwardOptions()), Error);
}
