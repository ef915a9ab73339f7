// `lmforge finetune --task seq-cls` + `lmforge predict` as a user runs them: a tiny Mamba
// trained from scratch on the shipped SST-2 subset beats the majority class on the full dev set
// by a wide margin; predict on the exported best model reproduces the trainer's evaluation
// exactly; bad inputs fail with one error line and leave no run folder.
//
// Threshold: the dev set has 428 negative and 444 positive sentences, so the majority class
// scores 444 / 872 = 0.509. A classifier with no skill has accuracy 0.509 +- sqrt(0.25 / 872) =
// 0.017 (one standard error); 0.62 is 6.5 standard errors above the majority rate. The run
// here reaches about 0.70 (2 epochs, ~8.4k examples; docs/finetune.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "lmforge/report/metrics_log.h"
#include "test_util.h"

using namespace lmf;
using namespace lmf::e2e;
namespace fs = std::filesystem;

namespace {

// configs/models/mamba-tiny.json at half the width and half the depth: CPU-friendly for CI.
std::string micro_model_config(const std::string& dir) {
  nlohmann::json j = nlohmann::json::parse(read_file(test::source_path("configs/models/mamba-tiny.json")));
  j["hidden_size"] = 64;
  j["num_hidden_layers"] = 2;
  return write_file(dir + "/mamba-micro.json", j.dump(2));
}

std::string finetune_args(const std::string& run, const std::string& model_cfg,
                          const std::string& extra = "") {
  return "finetune --task seq-cls -c " +
         shell_quote(test::source_path("configs/finetune-sst2-tiny-mamba.toml")) + " --device cpu --out " +
         shell_quote(run) + " --set model.config=" + shell_quote(model_cfg) + " --set model.tokenizer=" +
         shell_quote(test::source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json")) +
         " --set data.train=" + shell_quote(test::source_path("data/sst2/train-8k.tsv")) +
         " --set data.eval=" + shell_quote(test::source_path("data/sst2/dev.tsv")) + " --set train.lr=3e-3" +
         extra;
}

std::vector<int> dev_labels() {
  std::vector<int> y;
  auto lines = lines_of(read_file(test::source_path("data/sst2/dev.tsv")));
  for (size_t i = 1; i < lines.size(); i++) y.push_back(lines[i].back() - '0');
  return y;
}

}  // namespace

TEST(FinetuneMamba, Sst2BeatsMajorityAndPredictReproducesEval) {
  const std::string dir = test::scratch_dir("finetune_mamba_sst2");
  const std::string run = dir + "/run";
  CliRun r = lmforge(finetune_args(run, micro_model_config(dir)));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("effective batch 32 = per_device_batch 32 x grad_accum 1 x world_size 1"),
            std::string::npos)
      << r.out;
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json", "lmforge_finetune.json"})
    EXPECT_TRUE(fs::exists(run + "/best/" + f)) << f;
  EXPECT_TRUE(fs::exists(run + "/config.resolved.toml"));

  // The trainer's evaluations (metrics.jsonl) and the best one.
  int evals = 0;
  double best = 0;
  for (const auto& rec : MetricsLog::read(run + "/metrics.jsonl")) {
    if (rec.value("event", "") == "start") {
      EXPECT_EQ(rec["effective_batch"].get<int64_t>(), 32);
      EXPECT_EQ(rec["train_examples"].get<int64_t>(), 8419);
    }
    if (rec.value("event", "") == "eval") {
      evals++;
      best = std::max(best, rec["accuracy"].get<double>());
      EXPECT_EQ(rec["num_examples"].get<int64_t>(), 872);
    }
  }
  EXPECT_EQ(evals, 2);  // once per epoch
  nlohmann::json results = nlohmann::json::parse(read_file(run + "/results.json"));
  const double acc = results["best_eval"]["accuracy"].get<double>();
  EXPECT_EQ(acc, best);
  EXPECT_GE(acc, 0.62) << "majority class: 444/872 = 0.509";
  std::printf("[ finetune ] SST-2 dev accuracy %.4f (macro-F1 %.4f) after %lld steps\n", acc,
              results["best_eval"]["macro_f1"].get<double>(), (long long)results["steps"].get<int64_t>());

  // predict on the exported best model: the same accuracy, prediction by prediction.
  const std::string preds = dir + "/preds.jsonl", metrics = dir + "/predict_metrics.json";
  CliRun p = lmforge("predict --model " + shell_quote(run + "/best") + " --input " +
                         shell_quote(test::source_path("data/sst2/dev.tsv")) +
                         " --text-column text --label-column label --metrics " + shell_quote(metrics) +
                         " -o " + shell_quote(preds),
                     Capture::both);
  ASSERT_EQ(p.rc, 0) << p.out;
  const std::vector<int> y = dev_labels();
  auto pred_lines = lines_of(read_file(preds));
  ASSERT_EQ(pred_lines.size(), y.size());
  int correct = 0;
  for (size_t i = 0; i < y.size(); i++) {
    nlohmann::json j = nlohmann::json::parse(pred_lines[i]);
    const int label = std::stoi(j["label"].get<std::string>());
    EXPECT_EQ(j["label_id"].get<int>(), label);
    const auto probs = j["probs"].get<std::vector<double>>();
    ASSERT_EQ(probs.size(), 2u);
    EXPECT_NEAR(probs[0] + probs[1], 1.0, 1e-9);
    EXPECT_EQ(j["score"].get<double>(), probs[size_t(label)]);
    correct += label == y[i];
  }
  EXPECT_EQ(double(correct) / double(y.size()), acc);
  nlohmann::json pm = nlohmann::json::parse(read_file(metrics));
  EXPECT_EQ(pm["accuracy"].get<double>(), acc);
  EXPECT_EQ(pm["confusion_matrix"], results["best_eval"]["confusion_matrix"]);
  EXPECT_NE(p.out.find("accuracy"), std::string::npos) << p.out;

  // Plain text on stdin, one text per line.
  const std::string texts = write_file(
      dir + "/texts.txt",
      "a gorgeous , witty , seductive movie .\nthe plot is nothing but boilerplate clich\xc3\xa9s\n");
  CliRun s = lmforge(
      "predict --model " + shell_quote(run + "/best") + " --no-probs --input - < " + shell_quote(texts),
      Capture::stdout_only);
  ASSERT_EQ(s.rc, 0) << s.out;
  auto out = lines_of(s.out);
  ASSERT_EQ(out.size(), 2u) << s.out;
  for (const auto& l : out) {
    nlohmann::json j = nlohmann::json::parse(l);
    EXPECT_TRUE(j["label"] == "0" || j["label"] == "1") << l;
    EXPECT_FALSE(j.contains("probs"));
  }
}

// The trainer uses only the SequenceClassifier interface: BERT and ModernBERT (tiny, from
// scratch, 200 steps) go through the same CLI, export and predict path.
TEST(FinetuneMamba, EncodersPlugIntoTheSameTrainer) {
  for (const std::string family : {"tiny-bert", "tiny-modernbert"}) {
    const std::string dir = test::scratch_dir("finetune_" + family);
    nlohmann::json j =
        nlohmann::json::parse(read_file(test::source_path("configs/models/" + family + ".json")));
    j["hidden_size"] = 64;
    j["intermediate_size"] = 128;
    j["num_hidden_layers"] = 2;
    const std::string cfg = write_file(dir + "/model.json", j.dump(2));
    const std::string run = dir + "/run";
    CliRun r = lmforge(
        finetune_args(run, cfg, " --set 'model.pooling=\"\"' --set train.lr=1e-3 --set train.max_steps=200"));
    ASSERT_EQ(r.rc, 0) << r.out;
    nlohmann::json results = nlohmann::json::parse(read_file(run + "/results.json"));
    const double acc = results["best_eval"]["accuracy"].get<double>();
    EXPECT_EQ(results["steps"].get<int64_t>(), 200);
    EXPECT_GT(acc, 0.60) << family << ": majority class 0.509";
    std::printf("[ finetune ] %s: SST-2 dev accuracy %.4f after 200 steps\n", family.c_str(), acc);
    nlohmann::json config = nlohmann::json::parse(read_file(run + "/best/config.json"));
    EXPECT_NE(config["architectures"][0].get<std::string>().find("ForSequenceClassification"),
              std::string::npos);
    EXPECT_EQ(config["id2label"]["1"], "1");
    CliRun p = lmforge("predict --model " + shell_quote(run + "/best") + " --input " +
                       shell_quote(test::source_path("data/sst2/dev.tsv")) +
                       " --text-column text --label-column label --no-probs --metrics " +
                       shell_quote(dir + "/m.json") + " -o " + shell_quote(dir + "/p.jsonl"));
    ASSERT_EQ(p.rc, 0) << p.out;
    EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/m.json"))["accuracy"].get<double>(), acc) << family;
  }
}

TEST(FinetuneMamba, BadInputFailsCleanly) {
  const std::string dir = test::scratch_dir("finetune_mamba_bad");
  const std::string model = micro_model_config(dir);
  const std::string good =
      write_file(dir + "/train.tsv", "text\tlabel\nfine film\t1\nawful film\t0\ngood\t1\n");
  const std::string run = dir + "/run";
  auto with_data = [&](const std::string& train, const std::string& eval) {
    return finetune_args(run, model) + " --set data.train=" + shell_quote(train) +
           " --set data.eval=" + shell_quote(eval);
  };
  struct Case {
    std::string args;
    int rc;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {with_data(good, good) + " --set data.label_column=gold",
       1,
       {"train.tsv:1: no label column 'gold' (columns: text, label)"}},
      {with_data(good, write_file(dir + "/dev_bad_label.tsv", "text\tlabel\nok\t1\nmeh\tneutral\n")),
       1,
       {"dev_bad_label.tsv:3: label 'neutral' is not in the label set (0, 1)"}},
      {with_data(write_file(dir + "/empty_row.tsv", "text\tlabel\na\t1\n\nb\t0\n"), good),
       1,
       {"empty_row.tsv:3: empty row"}},
      {with_data(write_file(dir + "/latin1.tsv", "text\tlabel\na\t1\ncaf\xe9 cr\xe8me\t0\n"), good),
       1,
       {"latin1.tsv:3: invalid UTF-8"}},
      {with_data(write_file(dir + "/empty_text.tsv", "text\tlabel\na\t1\n  \t0\n"), good),
       1,
       {"empty_text.tsv:3: column 'text' is empty"}},
      {with_data(write_file(dir + "/one_label.tsv", "text\tlabel\na\t1\nb\t1\n"), good),
       1,
       {"only one label"}},
      {with_data(dir + "/missing.tsv", good), 1, {"missing.tsv: cannot open"}},
      {with_data(good, good) + " --set train.class_weights=inverse", 1, {"train.class_weights"}},
      {"finetune --task ner -c " + shell_quote(test::source_path("configs/finetune-sst2-tiny-mamba.toml")) +
           " --out " + shell_quote(run),
       2,
       {"--task: 'ner' is not supported (supported: seq-cls)"}},
  };
  for (const auto& c : cases) {
    expect_one_line_error(c.args, c.rc, c.needles);
    EXPECT_FALSE(fs::exists(run)) << "a failed start must leave no run folder: " << c.args;
  }
  // predict: not a classifier folder, and no input lines.
  expect_one_line_error(
      "predict --model " + shell_quote(test::source_path("tests/fixtures/mamba_tiny_untied")) +
          " --tokenizer " + shell_quote(test::source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json")) +
          " --input " + shell_quote(good),
      1, {"not a Mamba task model"});
}
