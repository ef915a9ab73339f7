// train/finetune_config: recipe keys (class_weights and eval_every in both forms), errors
// naming the key, "balanced" class weights n / (k n_c), the schedule's warmup ratio, and the
// class-weighted loss semantics the trainer relies on (HF CrossEntropyLoss(weight=w)).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/train/finetune_config.h"
#include "test_util.h"

using namespace lmf;

namespace {
const char* kBase = R"(
[data]
train = "t.tsv"
eval = "d.tsv"
[model]
config = "m.json"
tokenizer = "tok.json"
[train]
lr = 3e-5
epochs = 4
per_device_batch = 16
grad_accum = 2
)";

FinetuneConfig parse(const std::string& extra) {
  return parse_finetune_recipe(Recipe::parse(std::string(kBase) + extra, "ft.toml"));
}

std::string error_of(const std::string& extra) {
  try {
    parse(extra);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(FinetuneConfig, DefaultsAndForms) {
  FinetuneConfig c = parse("");
  EXPECT_EQ(c.task, "seq-cls");
  EXPECT_DOUBLE_EQ(c.lr, 3e-5);
  EXPECT_EQ(c.epochs, 4);
  EXPECT_EQ(c.per_device_batch, 16);
  EXPECT_EQ(c.grad_accum, 2);
  EXPECT_EQ(c.eval_batch, 16);
  EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.06);
  EXPECT_EQ(c.schedule, LrScheduleKind::linear);
  EXPECT_DOUBLE_EQ(c.adamw.beta2, 0.999);
  EXPECT_DOUBLE_EQ(c.adamw.weight_decay, 0.01);
  EXPECT_EQ(c.class_weights.mode, ClassWeightsSpec::Mode::none);
  EXPECT_TRUE(c.eval_per_epoch);
  EXPECT_EQ(c.encode.max_length, 128);
  EXPECT_EQ(c.encode.truncation, Truncation::longest_first);
  EXPECT_EQ(c.early_stopping.metric, "accuracy");

  FinetuneConfig b = parse(R"(class_weights = "balanced"
eval_every = 50
schedule = "cosine"
[train.early_stopping]
metric = "macro_f1"
patience = 3
min_delta = 0.001
)");
  EXPECT_EQ(b.class_weights.mode, ClassWeightsSpec::Mode::balanced);
  EXPECT_FALSE(b.eval_per_epoch);
  EXPECT_EQ(b.eval_every_steps, 50);
  EXPECT_EQ(b.schedule, LrScheduleKind::cosine);
  EXPECT_EQ(b.early_stopping.patience, 3);
  EXPECT_DOUBLE_EQ(b.early_stopping.min_delta, 0.001);

  FinetuneConfig g = parse("class_weights = [1.0, 3]\neval_every = \"epoch\"\n");
  EXPECT_EQ(g.class_weights.mode, ClassWeightsSpec::Mode::given);
  EXPECT_EQ(g.class_weights.given, (std::vector<double>{1.0, 3.0}));
  EXPECT_TRUE(g.eval_per_epoch);
}

TEST(FinetuneConfig, ErrorsNameTheKey) {
  EXPECT_NE(error_of("class_weights = \"inverse\"\n")
                .find("ft.toml: train.class_weights: expected \"none\", \"balanced\""),
            std::string::npos);
  EXPECT_NE(
      error_of("class_weights = [1.0, -2.0]\n").find("train.class_weights: every weight must be a positive"),
      std::string::npos);
  EXPECT_NE(error_of("class_weights = true\n").find("train.class_weights"), std::string::npos);
  EXPECT_NE(error_of("eval_every = \"step\"\n").find("train.eval_every: expected \"epoch\" or a number"),
            std::string::npos);
  EXPECT_NE(error_of("eval_every = 0\n").find("train.eval_every: expected a positive integer"),
            std::string::npos);
  EXPECT_NE(error_of("schedule = \"step\"\n").find("train.schedule"), std::string::npos);
  EXPECT_NE(error_of("warmup_ratio = 1.5\n").find("train.warmup_ratio"), std::string::npos);
  EXPECT_NE(error_of("eps = -1.0\n").find("ft.toml: train.eps: expected a number >= 0"), std::string::npos);
  EXPECT_NE(error_of("max_steps = -2\n").find("train.max_steps"), std::string::npos);
  EXPECT_NE(error_of("[train.early_stopping]\nmetric = \"f1\"\n").find("train.early_stopping.metric"),
            std::string::npos);
  EXPECT_NE(error_of("[task]\ntype = \"ner\"\n").find("task.type"), std::string::npos);
  try {
    parse_finetune_recipe(
        Recipe::parse("[data]\ntrain = \"t.tsv\"\n[train.early_stopping]\npatience = 2\n", "x.toml"));
    ADD_FAILURE() << "early stopping without eval data must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "x.toml: train.early_stopping.patience: early stopping needs evaluation data"),
              std::string::npos)
        << e.what();
  }
}

TEST(FinetuneConfig, BalancedClassWeights) {
  ClassWeightsSpec s;
  s.mode = ClassWeightsSpec::Mode::balanced;
  // n = 100, k = 3: w_c = 100 / (3 n_c).
  auto w = resolve_class_weights(s, {50, 30, 20}, {"a", "b", "c"});
  ASSERT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w[0], 100.0 / 150.0);
  EXPECT_DOUBLE_EQ(w[1], 100.0 / 90.0);
  EXPECT_DOUBLE_EQ(w[2], 100.0 / 60.0);
  // sum_c n_c w_c = n for balanced weights.
  EXPECT_NEAR(50 * w[0] + 30 * w[1] + 20 * w[2], 100.0, 1e-12);
  try {
    resolve_class_weights(s, {5, 0}, {"neg", "pos"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 'pos' has no training example"), std::string::npos)
        << e.what();
  }
  ClassWeightsSpec given;
  given.mode = ClassWeightsSpec::Mode::given;
  given.given = {1.0, 2.0};
  EXPECT_EQ(resolve_class_weights(given, {3, 4}, {"a", "b"}), (std::vector<double>{1.0, 2.0}));
  EXPECT_THROW(resolve_class_weights(given, {3, 4, 5}, {"a", "b", "c"}), Error);
  EXPECT_EQ(resolve_class_weights(ClassWeightsSpec(), {3, 4}, {"a", "b"}), (std::vector<double>{1.0, 1.0}));
}

TEST(FinetuneConfig, WarmupRatioSchedule) {
  FinetuneConfig c = parse("warmup_ratio = 0.1\n");
  ResolvedLrSchedule r = resolve(finetune_schedule(c, 95));
  EXPECT_EQ(r.warmup_steps, 10);  // ceil(95 * 0.1), HF get_warmup_steps
  EXPECT_DOUBLE_EQ(lr_at(r, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(r, 10), 3e-5);
  EXPECT_NEAR(lr_at(r, 95), 0.0, 1e-15);  // linear decay to 0 at the last step
}

TEST(FinetuneConfig, WeightedCrossEntropyIsHfWeightedMean) {
  // logits for 3 rows, 2 classes; targets 1, 0, 1; class weights w = (0.5, 2).
  const std::vector<float> z = {0.2f, -0.4f, 1.5f, 0.3f, -0.7f, 0.9f};
  const std::vector<int32_t> y = {1, 0, 1};
  const std::vector<double> w = {0.5, 2.0};
  double num = 0, den = 0;
  for (int i = 0; i < 3; i++) {
    const double a = z[size_t(2 * i)], b = z[size_t(2 * i + 1)];
    const double lse = std::log(std::exp(a) + std::exp(b));
    const double l = lse - (y[size_t(i)] == 0 ? a : b);
    num += w[size_t(y[size_t(i)])] * l;
    den += w[size_t(y[size_t(i)])];
  }
  ops::CrossEntropyOptions o;
  o.divide_by_weight_sum = true;
  auto r =
      ops::cross_entropy_logits(Tensor::from_vector<float>(z, {3, 2}), Tensor::from_vector<int32_t>(y, {3}),
                                Tensor::from_vector<float>({2.0f, 0.5f, 2.0f}, {3}), o);
  EXPECT_NEAR(r.loss.item(), num / den, 1e-6);
}

TEST(FinetuneConfig, ShippedRecipesParseWithoutUnknownKeys) {
  // The GPU recipes share the fair-comparison settings (seed 000): 3 epochs, effective batch 32,
  // max_length 128, the same eval protocol; LR in the guide's ranges.
  int gpu = 0;
  for (const char* name : {"tiny-mamba", "mamba-130m", "bert-base", "xlmr-base", "mmbert-base"}) {
    const std::string path = test::source_path(std::string("configs/finetune-sst2-") + name + ".toml");
    Recipe r = Recipe::load(path);
    FinetuneConfig c = parse_finetune_recipe(r);
    EXPECT_NO_THROW(r.reject_unused()) << path;
    EXPECT_EQ(c.task, "seq-cls");
    EXPECT_EQ(c.eval_path, "data/sst2/dev.tsv");
    if (std::string(name) == "tiny-mamba") continue;
    gpu++;
    EXPECT_EQ(c.epochs, 3) << name;
    EXPECT_EQ(c.per_device_batch * c.grad_accum, 32) << name;
    EXPECT_EQ(c.encode.max_length, 128) << name;
    EXPECT_EQ(c.eval_every_steps, 500) << name;
    EXPECT_GE(c.lr, 1e-5) << name;
    EXPECT_LE(c.lr, 3e-5) << name;
    EXPECT_GE(c.warmup_ratio, 0.06) << name;
    EXPECT_LE(c.warmup_ratio, 0.1) << name;
    EXPECT_FALSE(c.init_from.empty()) << name;
  }
  EXPECT_EQ(gpu, 4);
}

TEST(FinetuneConfig, FindsTheTokenizerOfAModelFolder) {
  const std::string dir = test::scratch_dir("find_tokenizer");
  EXPECT_EQ(find_tokenizer_file(dir), "");
  std::ofstream(dir + "/vocab.txt") << "[PAD]\n";
  EXPECT_EQ(find_tokenizer_file(dir), dir + "/vocab.txt");
  std::ofstream(dir + "/tokenizer.json") << "{}";
  EXPECT_EQ(find_tokenizer_file(dir), dir + "/tokenizer.json");  // tokenizer.json first, as HF's fast path
}
