// The MLM pre-training recipe (train.objective = "mlm"): per-phase mask_rate, tau and languages,
// eval languages, [mlm] settings, and one clear error per bad value.
#include <gtest/gtest.h>

#include <string>

#include "lmforge/core/error.h"
#include "lmforge/train/pretrain_recipe.h"
#include "test_util.h"

using namespace lmf;

namespace {

const char* kRecipe = R"(
[run]
dir = "runs/mlm"
seed = 7

[model]
config = "configs/models/tiny-bert.json"

[data]
tokenizer = "tok.json"
max_length = 64
eval = { en = ["d/en-val"], fr = ["d/fr-val"] }

[[data.phases]]
name = "pretrain"
start_step = 0
mask_rate = 0.30
tau = 0.7
languages = { en = ["d/en"], fr = ["d/fr"] }

[[data.phases]]
name = "mid"
start_step = 60
mask_rate = 0.20
tau = 0.5
languages = { en = ["d/en"], fr = ["d/fr"], frwiki = ["d/frwiki-a", "d/frwiki-b"] }

[[data.phases]]
name = "decay"
start_step = 90
mask_rate = 0.05
tau = 0.3
languages = { en = ["d/en"], fr = ["d/fr"], frwiki = ["d/frwiki-a", "d/frwiki-b"] }

[train]
objective = "mlm"
max_steps = 100

[mlm]
mask_token = "[MASK]"
random_replace_prob = 0.05

[eval]
mask_rate = 0.2

[schedule]
kind = "wsd"
decay_shape = "1-sqrt"
decay_fraction = 0.1
min_ratio = 0.02
)";

PretrainRecipe parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  Recipe r = Recipe::parse(text, "mlm.toml");
  r.apply_overrides(overrides);
  return parse_pretrain_recipe(r);
}

void expect_error(const std::vector<std::string>& overrides, const std::string& needle,
                  const std::string& text = kRecipe) {
  try {
    parse(text, overrides);
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

}  // namespace

TEST(PretrainRecipeMlm, ParsesPhasesLanguagesAndSettings) {
  PretrainRecipe pr = parse(kRecipe);
  const PretrainConfig& c = pr.config;
  EXPECT_EQ(c.objective, PretrainObjective::mlm);
  EXPECT_EQ(c.seq_len, 64);
  ASSERT_EQ(c.phases.size(), 3u);
  EXPECT_EQ(c.phases[0].name, "pretrain");
  EXPECT_DOUBLE_EQ(c.phases[0].mask_rate, 0.30);
  EXPECT_DOUBLE_EQ(c.phases[1].tau, 0.5);
  EXPECT_DOUBLE_EQ(c.phases[2].mask_rate, 0.05);
  EXPECT_EQ(c.phases[2].start_step, 90);
  ASSERT_EQ(c.phases[0].sources.size(), 2u);
  ASSERT_EQ(c.phases[1].sources.size(), 3u);
  EXPECT_EQ(c.phases[1].sources[2].name, "frwiki");
  EXPECT_EQ(c.phases[1].sources[2].shard_prefixes, (std::vector<std::string>{"d/frwiki-a", "d/frwiki-b"}));
  ASSERT_EQ(c.eval_sources.size(), 2u);
  EXPECT_EQ(c.eval_sources[1].name, "fr");
  EXPECT_EQ(c.eval_sources[1].shard_prefixes, (std::vector<std::string>{"d/fr-val"}));
  EXPECT_EQ(c.mlm.mask_token, "[MASK]");
  EXPECT_DOUBLE_EQ(c.mlm.mask_replace_prob, 0.8);
  EXPECT_DOUBLE_EQ(c.mlm.random_replace_prob, 0.05);
  EXPECT_DOUBLE_EQ(c.mlm.eval_mask_rate, 0.2);
  EXPECT_EQ(c.schedule.decay_shape, DecayShape::one_minus_sqrt);
  // Defaults: BERT's 15 % and proportional sampling.
  PretrainRecipe d = parse(kRecipe, {"data.phases[0].mask_rate=0.15"});
  EXPECT_DOUBLE_EQ(d.config.phases[0].mask_rate, 0.15);
}

TEST(PretrainRecipeMlm, BadValuesGiveOneClearError) {
  expect_error({"data.phases[0].mask_rate=1.5"},
               "mlm.toml: data.phases[0].mask_rate: expected a mask rate in [0, 1], got 1.5");
  expect_error({"data.phases[1].tau=-0.5"},
               "mlm.toml: data.phases[1].tau: expected a sampling temperature >= 0");
  expect_error({"train.objective=foo"},
               "mlm.toml: train.objective: expected one of causal_lm|mlm, got 'foo'");
  expect_error({"data.max_length=2"}, "data.max_length: expected an integer >= 3");
  expect_error({"eval.mask_rate=0"}, "eval.mask_rate: expected a mask rate in (0, 1]");
  expect_error({"+mlm.mask_replace_prob=0.97"}, "mask_replace_prob + random_replace_prob must be <= 1");
  expect_error({"data.phases[2].languages.frwiki=[d/other]"},
               "data.phases[2].languages.frwiki: lists other shards than in phase 'mid'");
  expect_error({"data.phases[1].languages.frwiki=[]"},
               "data.phases[1].languages.frwiki: expected at least one shard");
  expect_error({"data.phases[2].start_step=60"},
               "data.phases[2].start_step: phases must start at increasing steps");
  std::string no_langs = kRecipe;
  no_langs.replace(no_langs.find("languages = { en = [\"d/en\"], fr = [\"d/fr\"] }"),
                   std::string("languages = { en = [\"d/en\"], fr = [\"d/fr\"] }").size(), "languages = {}");
  expect_error({}, "data.phases[0].languages: expected at least one language", no_langs);
}

// The shipped MLM recipes parse, use every key they set, and follow the seed's shape: three
// phases with a falling mask rate and tau, languages only ever added.
TEST(PretrainRecipeMlm, ShippedRecipesParse) {
  for (const char* name : {"configs/tiny-mlm.toml", "configs/mmbert-base.toml"}) {
    SCOPED_TRACE(name);
    Recipe r = Recipe::load(test::source_path(name));
    PretrainRecipe pr = parse_pretrain_recipe(r);
    EXPECT_EQ(r.unused_keys(), std::vector<std::string>{});
    const PretrainConfig& c = pr.config;
    EXPECT_EQ(c.objective, PretrainObjective::mlm);
    ASSERT_EQ(c.phases.size(), 3u);
    EXPECT_DOUBLE_EQ(c.phases[0].mask_rate, 0.30);
    EXPECT_DOUBLE_EQ(c.phases[1].mask_rate, 0.20);
    EXPECT_DOUBLE_EQ(c.phases[2].mask_rate, 0.05);
    EXPECT_DOUBLE_EQ(c.phases[0].tau, 0.7);
    EXPECT_DOUBLE_EQ(c.phases[1].tau, 0.5);
    EXPECT_DOUBLE_EQ(c.phases[2].tau, 0.3);
    for (size_t k = 1; k < 3; k++) EXPECT_GT(c.phases[k].sources.size(), c.phases[k - 1].sources.size());
    EXPECT_EQ(c.schedule.kind, LrScheduleKind::wsd);
    EXPECT_EQ(c.schedule.decay_shape, DecayShape::one_minus_sqrt);
    EXPECT_DOUBLE_EQ(*c.schedule.min_ratio, 0.02);
    // WSD's decay starts with the last phase (mmBERT: the decay phase is the LR decay).
    const ResolvedLrSchedule s = resolve(c.schedule);
    EXPECT_EQ(s.decay_start, c.phases[2].start_step);
  }
  Recipe r = Recipe::load(test::source_path("configs/mmbert-base.toml"));
  PretrainRecipe pr = parse_pretrain_recipe(r);
  EXPECT_DOUBLE_EQ(pr.config.schedule.lr_peak, 8e-4);
  EXPECT_DOUBLE_EQ(pr.config.adamw.weight_decay, 8e-5);
  EXPECT_DOUBLE_EQ(pr.config.adamw.beta1, 0.9);
  EXPECT_DOUBLE_EQ(pr.config.adamw.beta2, 0.95);
}
