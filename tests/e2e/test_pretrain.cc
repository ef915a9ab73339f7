// Pre-training end to end through the library (the CLI is covered in test_pretrain_cli.cc):
// a tiny Mamba learns the shipped text, resume is bit-exact, and the spike guard rolls back
// past a poisoned batch.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "lmforge/data/shard.h"
#include "lmforge/data/text_reader.h"
#include "lmforge/io/recipe.h"
#include "lmforge/models/mamba.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/train/causal_lm_trainer.h"
#include "lmforge/train/checkpoint.h"
#include "lmforge/train/pretrain_recipe.h"
#include "test_util.h"

using namespace lmf;

namespace {

struct Corpus {
  std::string train, val;
  int64_t vocab = 0;
  uint64_t fingerprint = 0;
  double unigram_entropy = 0;  // nats/token of the training shard
};

// Tokenizes the first `max_docs` paragraphs of Tiny Shakespeare with the shipped BPE.
const Corpus& corpus() {
  static Corpus c = [] {
    Corpus c;
    Tokenizer tok = Tokenizer::from_file(test::source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json"));
    TextReadOptions opt;
    auto docs = read_documents(test::source_path("data/text/tiny_shakespeare.txt"), opt);
    std::string dir = test::scratch_dir("pretrain_corpus");
    c.train = dir + "/train";
    c.val = dir + "/val";
    c.vocab = tok.vocab_size();
    c.fingerprint = tok.fingerprint();
    ShardWriter tw(c.train, uint64_t(c.vocab), c.fingerprint, 0), vw(c.val, uint64_t(c.vocab), c.fingerprint, 0);
    std::map<int32_t, int64_t> counts;
    int64_t total = 0;
    for (size_t i = 0; i < std::min<size_t>(docs.size(), 1500); i++) {
      auto ids = tok.encode(docs[i], false);
      ids.push_back(0);
      if (i % 20 == 19) {
        vw.add_document(ids);
      } else {
        tw.add_document(ids);
        for (int32_t t : ids) counts[t]++, total++;
      }
    }
    tw.finish();
    vw.finish();
    for (auto& [t, n] : counts) c.unigram_entropy -= double(n) / double(total) * std::log(double(n) / double(total));
    return c;
  }();
  return c;
}

MambaConfig tiny_config(int64_t vocab) {
  MambaConfig m;
  m.vocab_size = vocab;
  m.hidden_size = 64;
  m.num_hidden_layers = 2;
  m.state_size = 8;
  m.intermediate_size = 128;
  m.time_step_rank = 4;
  m.initializer_range = 0.02;
  return m;
}

PretrainConfig train_config(const std::string& run, int64_t steps) {
  const Corpus& c = corpus();
  PretrainConfig p;
  p.run_dir = run;
  p.seed = 7;
  p.device = Device::cpu();
  p.seq_len = 64;
  p.micro_batch = 8;
  p.max_steps = steps;
  p.phases = {{"main", 0, {{"shakespeare", {c.train}, 1.0}}}};
  p.eval_sources = {{"val", {c.val}, 1.0}};
  p.expect_vocab_size = uint64_t(c.vocab);
  p.expect_tokenizer_fingerprint = c.fingerprint;
  p.schedule.kind = LrScheduleKind::wsd;
  p.schedule.lr_peak = 5e-3;
  p.schedule.lr_min = 5e-4;
  p.schedule.warmup_steps = std::min<int64_t>(10, steps / 2);
  p.schedule.total_steps = steps;
  p.schedule.decay_fraction = 0.2;
  p.positional_weighting = true;
  p.log_every = 5;
  p.eval_batches = 8;
  p.eval_position_buckets = {0, 10, 32};
  return p;
}

struct Run {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<MambaModel> model;
  std::vector<nlohmann::json> events;
};

std::unique_ptr<Run> make_model() {
  auto r = std::make_unique<Run>();
  r->store = std::make_unique<ParamStore>(Device::cpu(), DType::f32);
  r->model = std::make_unique<MambaModel>(tiny_config(corpus().vocab), *r->store);
  r->store->finalize();
  Generator g{11, 0};
  r->model->init_weights(g);
  return r;
}

}  // namespace

// The loss threshold: the unigram entropy of the training text. A model whose held-out loss is
// clearly below it predicts from context; an untrained one sits at ln(4096) = 8.3 nats.
TEST(Pretrain, TinyMambaLearnsShippedText) {
  auto r = make_model();
  CausalLMTrainer::Callbacks cb;
  cb.on_event = [&](const nlohmann::json& e) { r->events.push_back(e); };
  CausalLMTrainer t(train_config(test::scratch_dir("pretrain_learn"), 100), *r->model, cb);
  EvalResult before = t.evaluate();
  t.train();
  EvalResult after = t.evaluate();
  const double H = corpus().unigram_entropy;
  EXPECT_GT(before.loss, H + 1.0) << "untrained model should be near ln(V)";
  EXPECT_LT(after.loss, H - 0.3) << "unigram entropy " << H << ", eval loss " << after.loss;
  EXPECT_NEAR(after.perplexity, std::exp(after.loss), 1e-6 * after.perplexity);
  EXPECT_GT(after.top10, after.top3);
  EXPECT_GE(after.top3, after.top1);
  EXPECT_EQ(after.buckets.size(), 3u);
  for (const auto& b : after.buckets) EXPECT_GT(b.tokens, 0);
  bool saw_eval = false;
  for (auto& e : r->events) saw_eval = saw_eval || e["event"] == "eval";
  EXPECT_TRUE(saw_eval);
}

TEST(Pretrain, ResumeIsBitExact) {
  const std::string dir_a = test::scratch_dir("pretrain_full"), dir_b = test::scratch_dir("pretrain_resumed");
  // Uninterrupted: 8 steps.
  auto a = make_model();
  {
    PretrainConfig cfg = train_config(dir_a, 8);
    cfg.eval_sources.clear();
    CausalLMTrainer t(cfg, *a->model, {});
    t.train();
  }
  // Interrupted: 4 steps (checkpoint), then a new process-like trainer resumes to 8.
  {
    auto b = make_model();
    PretrainConfig cfg = train_config(dir_b, 8);
    cfg.eval_sources.clear();
    cfg.max_steps = 4;
    CausalLMTrainer t(cfg, *b->model, {});
    t.train();
  }
  auto c = make_model();
  PretrainConfig cfg = train_config(dir_b, 8);
  cfg.eval_sources.clear();
  CausalLMTrainer t(cfg, *c->model, {});
  t.resume_from(latest_run_checkpoint(dir_b));
  EXPECT_EQ(t.step(), 4);
  t.train();
  EXPECT_EQ(t.step(), 8);
  auto va = a->store->flat_master().to_double_vector(), vc = c->store->flat_master().to_double_vector();
  ASSERT_EQ(va.size(), vc.size());
  size_t diff = 0;
  for (size_t i = 0; i < va.size(); i++) diff += va[i] != vc[i];
  EXPECT_EQ(diff, 0u) << "parameters differ after resume";
}

TEST(Pretrain, SpikeGuardRollsBackPastPoisonedBatch) {
  auto r = make_model();
  PretrainConfig cfg = train_config(test::scratch_dir("pretrain_spike"), 12);
  cfg.eval_sources.clear();
  cfg.checkpoint_every = 4;
  cfg.debug_poison_samples = {8 * 6 + 3};  // a sample of the 7th step's batch
  std::vector<nlohmann::json> events;
  CausalLMTrainer::Callbacks cb;
  cb.on_event = [&](const nlohmann::json& e) { events.push_back(e); };
  CausalLMTrainer t(cfg, *r->model, cb);
  t.train();
  EXPECT_EQ(t.step(), 12);
  EXPECT_EQ(t.rollbacks(), 1);
  int rollbacks = 0;
  for (auto& e : events)
    if (e["event"] == "spike_rollback") {
      rollbacks++;
      EXPECT_EQ(e["step"], 6);
      EXPECT_EQ(e["restored_step"], 4);
      EXPECT_EQ(e["reason"], "loss is NaN");
    }
  EXPECT_EQ(rollbacks, 1);
  EXPECT_TRUE(test::all_finite(r->store->flat_master()));
}

TEST(Pretrain, ShippedRecipesParse) {
  for (const char* name : {"tiny-mamba", "mamba-130m", "mamba-1.4b", "mambaoutai-wsd"}) {
    Recipe r = Recipe::load(test::source_path(std::string("configs/") + name + ".toml"));
    PretrainRecipe p = parse_pretrain_recipe(r);
    EXPECT_GT(p.config.max_steps, 0) << name;
    EXPECT_FALSE(p.config.phases.empty()) << name;
    EXPECT_TRUE(r.unused_keys().empty()) << name << ": unused key " << r.unused_keys()[0];
  }
}
