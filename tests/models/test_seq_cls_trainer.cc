// train/seq_cls_trainer on a synthetic task with a tiny Mamba classifier: it learns, gradient
// accumulation equals the larger batch, early stopping fires after `patience` evaluations
// without improvement, and the exported best model reproduces the logged evaluation.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmforge/models/task_registry.h"
#include "lmforge/train/seq_cls_trainer.h"
#include "test_util.h"

using namespace lmf;

namespace {

nlohmann::json tiny_config() {
  return {{"architectures", {"MambaForCausalLM"}},
          {"model_type", "mamba"},
          {"vocab_size", 32},
          {"hidden_size", 16},
          {"state_size", 4},
          {"num_hidden_layers", 1},
          {"expand", 2},
          {"conv_kernel", 4},
          {"initializer_range", 0.1}};
}

struct Built {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
  SequenceClassifier* cls = nullptr;
};

Built build(uint64_t seed = 3) {
  Built b;
  b.store = std::make_unique<ParamStore>(Device::cpu(), DType::f32);
  TaskModelRequest req;
  req.head = TaskHead::sequence_classification;
  req.num_labels = 2;
  b.model = make_task_model(tiny_config(), "tiny", *b.store, req);
  b.store->finalize();
  Generator g{seed, 0};
  b.model->init_weights(g);
  b.cls = dynamic_cast<SequenceClassifier*>(b.model.get());
  b.cls->set_label_names({"low", "high"});
  return b;
}

// Label = whether the last token is >= 16 (learnable from the last real token's state).
std::vector<EncodedExample> task(int n, uint64_t seed) {
  std::vector<EncodedExample> v;
  Generator g{seed, 0};
  Tensor u = rand_uniform({int64_t(n) * 16}, DType::f32, g);
  auto r = u.to_float_vector();
  for (int i = 0; i < n; i++) {
    EncodedExample e;
    const int len = 2 + int(r[size_t(i * 16)] * 8);
    for (int t = 0; t < len; t++) e.ids.push_back(1 + int(r[size_t(i * 16 + 1 + t)] * 31));
    e.type_ids.assign(e.ids.size(), 0);
    e.label = e.ids.back() >= 16 ? 1 : 0;
    e.index = i;
    v.push_back(e);
  }
  return v;
}

FinetuneConfig config(double lr, int64_t batch, int64_t accum) {
  FinetuneConfig c;
  c.lr = lr;
  c.per_device_batch = batch;
  c.grad_accum = accum;
  c.eval_batch = 16;
  c.warmup_ratio = 0.0;
  c.schedule = LrScheduleKind::constant;
  c.log_every = 1;
  c.seed = 11;
  return c;
}

SeqClsData data_for(int n_train, int n_eval) {
  SeqClsData d;
  d.train = task(n_train, 1);
  d.eval = task(n_eval, 2);
  d.label_names = {"low", "high"};
  d.class_weights = {1.0, 1.0};
  return d;
}

}  // namespace

TEST(SeqClsTrainer, LearnsAndExportsTheBestModel) {
  Built b = build();
  SeqClsData d = data_for(256, 128);
  FinetuneConfig c = config(1e-2, 16, 1);
  c.epochs = 8;
  const std::string run = test::scratch_dir("seq_cls_trainer_learns");
  std::vector<nlohmann::json> evals, logs;
  SeqClsTrainer::Callbacks cb;
  cb.on_log = [&](const nlohmann::json& j) { logs.push_back(j); };
  cb.on_event = [&](const nlohmann::json& j) {
    if (j["event"] == "eval") evals.push_back(j);
  };
  SeqClsTrainer t(c, *b.cls, d, run, cb);
  EXPECT_EQ(t.steps_per_epoch(), 16);
  EXPECT_EQ(t.total_steps(), 128);
  EXPECT_EQ(t.effective_batch(), 16);
  ClassifierEval before = t.evaluate();
  SeqClsSummary s = t.train();
  ASSERT_EQ(evals.size(), 8u);  // one per epoch
  EXPECT_EQ(logs.size(), 128u);
  EXPECT_GT(s.best_metric, 0.85) << "accuracy before training: " << before.report.accuracy;
  EXPECT_GT(s.best_metric, before.report.accuracy + 0.2);
  EXPECT_LT(logs.back()["loss"].get<double>(), logs.front()["loss"].get<double>());
  // The exported best model, loaded back, gives exactly the logged best accuracy.
  ASSERT_TRUE(std::filesystem::exists(run + "/best/model.safetensors"));
  LoadedTaskModel l = load_task_model(run + "/best", Device::cpu(), DType::f32, TaskModelRequest());
  auto* cls = dynamic_cast<SequenceClassifier*>(l.model.get());
  ASSERT_NE(cls, nullptr);
  ClassifierEval e = evaluate_classifier(*cls, d.eval, 16, 0, {});
  EXPECT_EQ(e.report.accuracy, s.best_eval["accuracy"].get<double>());
  EXPECT_EQ(e.loss, s.best_eval["loss"].get<double>());
}

TEST(SeqClsTrainer, GradientAccumulationEqualsTheLargerBatch) {
  SeqClsData d = data_for(64, 0);
  auto run = [&](int64_t batch, int64_t accum, const std::string& name) {
    Built b = build();
    FinetuneConfig c = config(5e-3, batch, accum);
    c.max_steps = 3;
    SeqClsTrainer t(c, *b.cls, d, test::scratch_dir(name), {});
    EXPECT_EQ(t.effective_batch(), 16);
    t.train();
    return b.store->flat_master().to_float_vector();
  };
  auto one = run(16, 1, "accum1"), two = run(8, 2, "accum2"), four = run(4, 4, "accum4");
  Built fresh = build();
  auto init = fresh.store->flat_master().to_float_vector();
  double moved = 0, diff2 = 0, diff4 = 0;
  for (size_t i = 0; i < one.size(); i++) {
    moved = std::max(moved, double(std::abs(one[i] - init[i])));
    diff2 = std::max(diff2, double(std::abs(one[i] - two[i])));
    diff4 = std::max(diff4, double(std::abs(one[i] - four[i])));
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_LT(diff2, 2e-5);
  EXPECT_LT(diff4, 2e-5);
}

TEST(SeqClsTrainer, EarlyStoppingAfterPatienceEvaluations) {
  Built b = build();
  SeqClsData d = data_for(64, 32);
  FinetuneConfig c = config(1e-12, 8, 1);  // lr ~ 0: the metric cannot improve after the first eval
  c.epochs = 10;
  c.eval_per_epoch = false;
  c.eval_every_steps = 2;
  c.early_stopping = {"accuracy", 3, 0.0};
  const std::string run = test::scratch_dir("seq_cls_trainer_early_stop");
  int evals = 0, stops = 0;
  SeqClsTrainer::Callbacks cb;
  cb.on_event = [&](const nlohmann::json& j) {
    evals += j["event"] == "eval";
    stops += j["event"] == "early_stop";
  };
  SeqClsTrainer t(c, *b.cls, d, run, cb);
  SeqClsSummary s = t.train();
  // Evaluation 1 (step 2) is the best; evaluations 2, 3, 4 do not improve: stop at step 8.
  EXPECT_TRUE(s.early_stopped);
  EXPECT_EQ(stops, 1);
  EXPECT_EQ(s.best_step, 2);
  EXPECT_EQ(s.steps, 8);
  EXPECT_EQ(evals, int(s.steps / 2));
  EXPECT_LT(s.steps, t.total_steps());
  EXPECT_TRUE(std::filesystem::exists(run + "/best/config.json"));
}

TEST(SeqClsTrainer, RejectsInconsistentData) {
  Built b = build();
  SeqClsData d = data_for(8, 0);
  d.class_weights = {1.0};
  EXPECT_THROW(SeqClsTrainer(config(1e-3, 4, 1), *b.cls, d, test::scratch_dir("bad1"), {}), Error);
  SeqClsData empty = data_for(8, 0);
  empty.train.clear();
  EXPECT_THROW(SeqClsTrainer(config(1e-3, 4, 1), *b.cls, empty, test::scratch_dir("bad2"), {}), Error);
}
