// `lmforge pretrain` with train.objective = "mlm", as a user runs it: a tiny BERT's MLM loss
// falls clearly on the shipped English + French text, a resumed run equals an uninterrupted one,
// and a bad recipe gives one clear error line and leaves no run folder.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "cli_runner.h"
#include "lmforge/data/shard.h"
#include "lmforge/report/metrics_log.h"
#include "mlm_test_data.h"
#include "test_util.h"

using namespace lmf;
namespace fs = std::filesystem;

namespace {

// A three-phase recipe in the mmBERT shape: English and French (Moliere) first, French Wikipedia
// added mid-way, mask rate falling (30 % -> 20 % -> 15 %) and tau annealed (0.7 -> 0.5 -> 0.3).
std::string write_recipe(const std::string& dir, const std::string& run, int64_t steps, int64_t micro_batch) {
  const auto& c = test::mlm_corpus();
  fs::create_directories(dir);
  auto q = [](const std::string& s) { return "\"" + s + "\""; };
  const std::string en = "en = [" + q(c.en) + "]", fr = "fr = [" + q(c.fr) + "]";
  const std::string frwiki = "frwiki = [" + q(c.frwiki) + "]";
  std::string t;
  t += "[run]\ndir = " + q(run) + "\nseed = 3\ndevice = \"cpu\"\n\n";
  t += "[model]\nconfig = " + q(c.model_config) + "\n\n";
  t += "[data]\ntokenizer = " + q(c.tokenizer) + "\nmax_length = 64\n";
  t += "eval = { en = [" + q(c.en_val) + "], fr = [" + q(c.fr_val) + "] }\n\n";
  t += "[[data.phases]]\nname = \"pretrain\"\nstart_step = 0\nmask_rate = 0.3\ntau = 0.7\nlanguages = { " + en + ", " + fr + " }\n\n";
  t += "[[data.phases]]\nname = \"mid\"\nstart_step = " + std::to_string(steps * 6 / 10) +
       "\nmask_rate = 0.2\ntau = 0.5\nlanguages = { " + en + ", " + fr + ", " + frwiki + " }\n\n";
  t += "[[data.phases]]\nname = \"decay\"\nstart_step = " + std::to_string(steps * 9 / 10) +
       "\nmask_rate = 0.15\ntau = 0.3\nlanguages = { " + en + ", " + fr + ", " + frwiki + " }\n\n";
  t += "[train]\nobjective = \"mlm\"\nmicro_batch = " + std::to_string(micro_batch) +
       "\nmax_steps = " + std::to_string(steps) + "\nlog_every = 10\neval_batches = 8\n\n";
  t += "[optimizer]\nlr = 2e-3\nbetas = [0.9, 0.98]\neps = 1e-6\nweight_decay = 0.01\n\n";
  t += "[schedule]\nkind = \"wsd\"\nwarmup_steps = " + std::to_string(std::min<int64_t>(20, steps / 4)) + "\ndecay_fraction = 0.2\ndecay_shape = \"1-sqrt\"\nmin_ratio = 0.02\n";
  return e2e::write_file(dir + "/mlm.toml", t);
}

// Unigram entropy (nats/token) of the content tokens of the training shards.
double unigram_entropy(const std::vector<std::string>& prefixes) {
  std::map<uint32_t, int64_t> counts;
  int64_t total = 0;
  for (const auto& p : prefixes) {
    auto sh = Shard::open(p);
    for (uint64_t i = 0; i < sh->header().num_tokens; i++)
      if (sh->tokens()[i] != sh->header().eos_id) counts[sh->tokens()[i]]++, total++;
  }
  double h = 0;
  for (auto& [t, n] : counts) h -= double(n) / double(total) * std::log(double(n) / double(total));
  return h;
}

}  // namespace

// The threshold: H, the unigram entropy of the training text (6.5 nats/token). An untrained
// encoder predicts masked tokens at about ln(V) = 8.3 nats; one that only learned the token
// frequencies scores H; a held-out MLM loss at least 0.3 nats below H means the encoder predicts
// masked tokens from their context on both sides. 320 steps of 16 sequences get there on CPU in
// about a minute (measured: 6.2; the held-out set has ~1200 masked tokens, so the standard error
// of the loss is ~0.07).
TEST(PretrainMlmCli, TinyBertLossFallsClearly) {
  const std::string dir = test::scratch_dir("mlm_cli_learn");
  const std::string run = dir + "/run";
  const std::string recipe = write_recipe(dir, run, 320, 16);
  auto r = e2e::lmforge("pretrain -c " + recipe);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("BertForMaskedLM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data phase 'mid' from step 192"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eval @ step 320: MLM loss"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_000320/model.safetensors"));
  EXPECT_TRUE(fs::exists(run + "/config.resolved.toml"));

  const auto& c = test::mlm_corpus();
  const double H = unigram_entropy({c.en, c.fr});
  auto records = MetricsLog::read(run + "/metrics.jsonl");
  double first_loss = NAN, eval_loss = NAN, eval_acc = NAN;
  for (const auto& j : records) {
    if (j.contains("event") && j["event"] == "eval") {
      eval_loss = j["loss"].get<double>();
      eval_acc = j["accuracy"].get<double>();
      ASSERT_EQ(j["languages"].size(), 2u);
      // Each language ends at least 1 nat below the untrained ln(V).
      for (const auto& l : j["languages"])
        EXPECT_LT(l["loss"].get<double>(), std::log(double(c.vocab)) - 1.0) << l["language"];
    } else if (!j.contains("event") && std::isnan(first_loss)) {
      first_loss = j["loss"].get<double>();
    }
  }
  EXPECT_GT(first_loss, H + 1.0) << "the first 10 steps should sit near ln(V) = " << std::log(double(c.vocab));
  EXPECT_LT(eval_loss, H - 0.3) << "unigram entropy " << H << ", held-out MLM loss " << eval_loss;
  EXPECT_GT(eval_acc, 0.05);
}

TEST(PretrainMlmCli, ResumeEqualsUninterruptedRun) {
  const std::string dir = test::scratch_dir("mlm_cli_resume");
  // The schedule length is pinned so that stopping at step 4 does not change the LR of later steps.
  const std::string common = " --set +schedule.total_steps=8 --set train.log_every=1 --set schedule.warmup_steps=2"
                             " --set train.eval_batches=1";
  const std::string full = write_recipe(dir + "/a", dir + "/a/run", 8, 4);
  auto r0 = e2e::lmforge("pretrain -c " + full + common);
  ASSERT_EQ(r0.rc, 0) << r0.out;
  const std::string part = write_recipe(dir + "/b", dir + "/b/run", 8, 4);
  auto r1 = e2e::lmforge("pretrain -c " + part + common + " --set train.max_steps=4");
  ASSERT_EQ(r1.rc, 0) << r1.out;
  auto r2 = e2e::lmforge("pretrain -c " + part + common + " --resume");
  ASSERT_EQ(r2.rc, 0) << r2.out;
  EXPECT_NE(r2.out.find("resumed from"), std::string::npos) << r2.out;
  const std::string a = e2e::read_file(dir + "/a/run/checkpoints/step_000008/model.safetensors");
  const std::string b = e2e::read_file(dir + "/b/run/checkpoints/step_000008/model.safetensors");
  EXPECT_GT(a.size(), 100000u);
  EXPECT_TRUE(a == b) << "the resumed run's weights differ from the uninterrupted run's";
  // The logged losses of steps 5-8 agree exactly too.
  std::map<int64_t, double> la, lb;
  for (const auto& j : MetricsLog::read(dir + "/a/run/metrics.jsonl"))
    if (!j.contains("event")) la[j["step"].get<int64_t>()] = j["loss"].get<double>();
  for (const auto& j : MetricsLog::read(dir + "/b/run/metrics.jsonl"))
    if (!j.contains("event")) lb[j["step"].get<int64_t>()] = j["loss"].get<double>();
  ASSERT_EQ(la.size(), 8u);
  EXPECT_EQ(la, lb);
}

TEST(PretrainMlmCli, BadRecipesGiveOneClearError) {
  const std::string dir = test::scratch_dir("mlm_cli_bad");
  const std::string run = dir + "/run";
  const std::string recipe = write_recipe(dir, run, 10, 2);
  const std::string base = "pretrain -c " + recipe + " ";
  e2e::expect_one_line_error(base + "--set data.phases[0].mask_rate=1.5", 1,
                             {"data.phases[0].mask_rate: expected a mask rate in [0, 1], got 1.5"});
  e2e::expect_one_line_error(base + "--set data.phases[1].tau=-0.5", 1,
                             {"data.phases[1].tau: expected a sampling temperature >= 0"});
  // A language added in the last phase whose shards do not exist.
  e2e::expect_one_line_error(base + "--set '+data.phases[2].languages.de=[\"" + dir + "/no-such-shard\"]'", 1,
                             {"no-such-shard"});
  e2e::expect_one_line_error(base + "--set train.objective=foo", 1,
                             {"train.objective: expected one of causal_lm|mlm, got 'foo'"});
  EXPECT_FALSE(fs::exists(run)) << "a failed start must leave no run folder";
}
