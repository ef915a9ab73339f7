// MLM pre-training end to end through the library (learning and the CLI are covered in
// test_pretrain_mlm_cli.cc): the tokenizer's special tokens, languages and mask rates per
// phase, bit-exact resume (dropout on, across a phase change), the spike guard's rollback past a
// poisoned batch, and a refused checkpoint of another objective.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "lmforge/io/hf_params.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/train/checkpoint.h"
#include "lmforge/train/mlm_trainer.h"
#include "mlm_test_data.h"
#include "test_util.h"

using namespace lmf;

namespace {

PretrainConfig mlm_config(const std::string& run, int64_t steps) {
  const auto& c = test::mlm_corpus();
  PretrainConfig p;
  p.objective = PretrainObjective::mlm;
  p.run_dir = run;
  p.seed = 5;
  p.device = Device::cpu();
  p.seq_len = 64;
  p.micro_batch = 16;
  p.max_steps = steps;
  // Phase 1: English only; phase 2 adds French (languages enter per phase, as mmBERT's).
  DataPhase p1{"pretrain", 0, {{"en", {c.en}, 1.0}}, 0.3, 0.7};
  DataPhase p2{"decay", steps / 2, {{"en", {c.en}, 1.0}, {"fr", {c.fr}, 1.0}}, 0.15, 0.3};
  p.phases = {p1, p2};
  p.eval_sources = {{"en", {c.en_val}, 1.0}, {"fr", {c.fr_val}, 1.0}};
  p.expect_vocab_size = uint64_t(c.vocab);
  p.expect_tokenizer_fingerprint = c.fingerprint;
  p.schedule.kind = LrScheduleKind::wsd;
  p.schedule.lr_peak = 2e-3;
  p.schedule.min_ratio = 0.02;
  p.schedule.warmup_steps = std::min<int64_t>(10, steps / 4);
  p.schedule.total_steps = steps;
  p.schedule.decay_fraction = 0.2;
  p.schedule.decay_shape = DecayShape::one_minus_sqrt;
  p.adamw = {0.9, 0.98, 1e-6, 0.01};
  p.log_every = 5;
  p.eval_batches = 4;
  return p;
}

struct Run {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
  MaskedLM* mlm = nullptr;
};

// The tiny BERT of the test corpus, or another HF config given as JSON.
std::unique_ptr<Run> make_model(const nlohmann::json& config = nlohmann::json()) {
  auto r = std::make_unique<Run>();
  const auto& c = test::mlm_corpus();
  r->store = std::make_unique<ParamStore>(Device::cpu(), DType::f32);
  TaskModelRequest req;
  req.head = TaskHead::masked_lm;
  const nlohmann::json cfg = config.is_null() ? config_json::read_json_file(c.model_config) : config;
  r->model = make_task_model(cfg, c.model_config, *r->store, req);
  r->store->finalize();
  Generator g{11, 0};
  r->model->init_weights(g);
  r->store->sync_compute();
  r->mlm = dynamic_cast<MaskedLM*>(r->model.get());
  return r;
}

MlmSpecialTokens special() {
  static Tokenizer tok = Tokenizer::from_file(test::mlm_corpus().tokenizer);
  return mlm_special_tokens(tok);
}

}  // namespace

TEST(PretrainMlm, SpecialTokensComeFromTheTokenizer) {
  const auto& c = test::mlm_corpus();
  MlmSpecialTokens sp = special();
  EXPECT_EQ(sp.prefix, std::vector<int32_t>{int32_t(c.vocab - 3)});  // [CLS]
  EXPECT_EQ(sp.suffix, std::vector<int32_t>{int32_t(c.vocab - 2)});  // [SEP]
  EXPECT_EQ(sp.mask_id, c.vocab - 1);
  EXPECT_EQ(sp.pad_id, c.vocab - 4);
  EXPECT_EQ(sp.window_for(64), 62);
  for (int32_t id :
       {0, int32_t(c.vocab - 4), int32_t(c.vocab - 3), int32_t(c.vocab - 2), int32_t(c.vocab - 1)})
    EXPECT_TRUE(std::binary_search(sp.never_masked.begin(), sp.never_masked.end(), id)) << id;
  EXPECT_FALSE(std::binary_search(sp.never_masked.begin(), sp.never_masked.end(), 100));
}

// Languages enter per phase, the mask rate follows the phase, evaluation reports every
// language. (Learning itself is checked through the CLI: test_pretrain_mlm_cli.cc.)
TEST(PretrainMlm, LanguagesAndMaskRateFollowThePhases) {
  auto r = make_model();
  std::vector<nlohmann::json> logs, events;
  MlmTrainer::Callbacks cb;
  cb.on_log = [&](const nlohmann::json& j) { logs.push_back(j); };
  cb.on_event = [&](const nlohmann::json& j) { events.push_back(j); };
  const int64_t steps = 20;
  PretrainConfig cfg = mlm_config(test::scratch_dir("mlm_phases"), steps);
  cfg.micro_batch = 8;
  cfg.log_every = 2;
  cfg.eval_batches = 2;
  MlmTrainer t(cfg, *r->mlm, special(), cb);
  t.train();
  EXPECT_EQ(t.step(), steps);
  // Phase 1 samples English only; French appears after the phase change at step 10.
  int64_t fr_before = 0, fr_after = 0, en_after = 0, masked = 0;
  for (const auto& j : logs) {
    const auto& s = j["sequences_by_language"];
    const int64_t fr = s.value("fr", int64_t(0)), en = s.value("en", int64_t(0));
    const bool late = j["step"].get<int64_t>() > steps / 2;
    (late ? fr_after : fr_before) += fr;
    if (late) en_after += en;
    EXPECT_EQ(en + fr, 2 * 8) << "two steps of 8 sequences per record";
    EXPECT_EQ(j["mask_rate"].get<double>(), late ? 0.15 : 0.3);
    EXPECT_EQ(j["phase"].get<std::string>(), late ? "decay" : "pretrain");
    masked += j["masked_tokens"].get<int64_t>();
    EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
  }
  EXPECT_EQ(fr_before, 0);
  EXPECT_GT(fr_after, 0);
  EXPECT_GT(en_after, 0);
  EXPECT_EQ(masked, t.masked_tokens_seen());
  int phase_events = 0, evals = 0;
  for (const auto& e : events) {
    if (e["event"] == "phase") {
      phase_events++;
      EXPECT_EQ(e["step"], steps / 2);
      EXPECT_EQ(e["languages"], nlohmann::json::array({"en", "fr"}));
    }
    if (e["event"] == "eval") {
      evals++;
      ASSERT_EQ(e["languages"].size(), 2u);
      EXPECT_EQ(e["languages"][1]["language"], "fr");
      EXPECT_GT(e["languages"][1]["tokens"].get<int64_t>(), 10);
      // Same masked tokens at every evaluation: a fixed stream.
      EXPECT_EQ(e["tokens"], t.evaluate().tokens);
    }
  }
  EXPECT_EQ(phase_events, 1);
  EXPECT_EQ(evals, 1);
}

TEST(PretrainMlm, ResumeIsBitExactAcrossAPhaseChange) {
  const std::string dir_a = test::scratch_dir("mlm_full"), dir_b = test::scratch_dir("mlm_resumed");
  auto cfg_for = [](const std::string& dir, int64_t max_steps) {
    PretrainConfig c = mlm_config(dir, 10);  // phases: en from 0, en+fr from 5
    c.max_steps = max_steps;
    c.micro_batch = 4;
    c.grad_accum = 2;
    c.eval_sources.clear();
    return c;
  };
  auto a = make_model();
  {
    MlmTrainer t(cfg_for(dir_a, 10), *a->mlm, special(), {});
    t.train();
  }
  {
    auto b = make_model();
    MlmTrainer t(cfg_for(dir_b, 4), *b->mlm, special(), {});
    t.train();
  }
  auto c = make_model();
  MlmTrainer t(cfg_for(dir_b, 10), *c->mlm, special(), {});
  t.resume_from(latest_run_checkpoint(dir_b));
  EXPECT_EQ(t.step(), 4);
  t.train();
  EXPECT_EQ(t.step(), 10);
  auto va = a->store->flat_master().to_double_vector(), vc = c->store->flat_master().to_double_vector();
  ASSERT_EQ(va.size(), vc.size());
  size_t diff = 0;
  for (size_t i = 0; i < va.size(); i++) diff += va[i] != vc[i];
  EXPECT_EQ(diff, 0u) << "parameters differ after resume";
  // A resumed model differs from a fresh one (the test is not vacuous).
  auto fresh = make_model();
  auto vf = fresh->store->flat_master().to_double_vector();
  size_t moved = 0;
  for (size_t i = 0; i < va.size(); i++) moved += va[i] != vf[i];
  EXPECT_GT(moved, va.size() / 2);
}

TEST(PretrainMlm, SpikeGuardRollsBackPastPoisonedBatch) {
  auto r = make_model();
  PretrainConfig cfg = mlm_config(test::scratch_dir("mlm_spike"), 12);
  cfg.eval_sources.clear();
  cfg.checkpoint_every = 4;
  cfg.micro_batch = 4;
  cfg.debug_poison_samples = {4 * 6 + 1};  // a sequence of the 7th step
  std::vector<nlohmann::json> events;
  MlmTrainer::Callbacks cb;
  cb.on_event = [&](const nlohmann::json& e) { events.push_back(e); };
  MlmTrainer t(cfg, *r->mlm, special(), cb);
  t.train();
  EXPECT_EQ(t.step(), 12);
  EXPECT_EQ(t.rollbacks(), 1);
  int rollbacks = 0;
  for (auto& e : events)
    if (e["event"] == "spike_rollback") {
      rollbacks++;
      EXPECT_EQ(e["step"], 6);
      EXPECT_EQ(e["restored_step"], 4);
    }
  EXPECT_EQ(rollbacks, 1);
  // The skipped data is not revisited: steps 1-6, the poisoned 7th, then steps 5-12 again on
  // fresh data = 15 steps of 4 sequences.
  EXPECT_EQ(t.sampler().sample(), uint64_t(15 * 4));
  EXPECT_TRUE(test::all_finite(r->store->flat_master()));
}

TEST(PretrainMlm, ResumeRefusesACausalCheckpoint) {
  const std::string dir = test::scratch_dir("mlm_wrong_ckpt");
  auto r = make_model();
  PretrainConfig cfg = mlm_config(dir, 2);
  cfg.eval_sources.clear();
  MlmTrainer t(cfg, *r->mlm, special(), {});
  const std::string ck = t.save_checkpoint();
  // Rewrite trainer_state.json as a causal run would have written it.
  nlohmann::json st = read_trainer_state(ck);
  st.erase("objective");
  std::ofstream(ck + "/trainer_state.json") << st.dump();
  try {
    t.resume_from(ck);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("comes from a causal_lm run, not an mlm one"), std::string::npos)
        << e.what();
  }
}

// ModernBERT (mmBERT's architecture: decoder bias, GeGLU, RoPE, local/global attention) through
// the same loop: the loss falls over a few steps and resume is bit-exact.
TEST(PretrainMlm, ModernBertTrainsAndResumesExactly) {
  nlohmann::json cfg = config_json::read_json_file(test::source_path("configs/models/tiny-modernbert.json"));
  cfg["vocab_size"] = test::mlm_corpus().vocab;
  cfg["num_hidden_layers"] = 3;  // layer 0 global, layers 1-2 sliding window
  cfg["hidden_size"] = 64;
  cfg["intermediate_size"] = 96;
  cfg["num_attention_heads"] = 2;
  cfg["local_attention"] = 16;
  cfg["pad_token_id"] = test::mlm_corpus().vocab - 4;
  const std::string dir_a = test::scratch_dir("mlm_mb_full"), dir_b = test::scratch_dir("mlm_mb_resumed");
  auto cfg_for = [](const std::string& dir, int64_t max_steps) {
    PretrainConfig c = mlm_config(dir, 12);
    c.max_steps = max_steps;
    c.micro_batch = 8;
    c.log_every = 1;
    c.eval_sources.clear();
    c.schedule.lr_peak = 3e-3;
    return c;
  };
  auto a = make_model(cfg);
  ASSERT_TRUE(a->mlm != nullptr);
  EXPECT_STREQ(a->model->architecture(), "ModernBertForMaskedLM");
  ASSERT_TRUE(a->mlm->decoder_bias().defined());
  std::vector<double> losses;
  MlmTrainer::Callbacks cb;
  cb.on_log = [&](const nlohmann::json& j) { losses.push_back(j["loss"].get<double>()); };
  {
    MlmTrainer t(cfg_for(dir_a, 12), *a->mlm, special(), cb);
    t.train();
  }
  ASSERT_EQ(losses.size(), 12u);
  EXPECT_LT(losses.back(), losses.front() - 0.5) << "loss " << losses.front() << " -> " << losses.back();
  {
    auto b = make_model(cfg);
    MlmTrainer t(cfg_for(dir_b, 5), *b->mlm, special(), {});
    t.train();
  }
  auto c = make_model(cfg);
  MlmTrainer t(cfg_for(dir_b, 12), *c->mlm, special(), {});
  t.resume_from(latest_run_checkpoint(dir_b));
  t.train();
  auto va = a->store->flat_master().to_double_vector(), vc = c->store->flat_master().to_double_vector();
  ASSERT_EQ(va.size(), vc.size());
  size_t diff = 0;
  for (size_t i = 0; i < va.size(); i++) diff += va[i] != vc[i];
  EXPECT_EQ(diff, 0u) << "parameters differ after resume";
}
