// `lmforge pretrain` as a user runs it: a short run writes the run folder, --resume continues
// it, and a start that fails on its data leaves nothing behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lmforge/report/metrics_log.h"
#include "test_util.h"

using namespace lmf;
namespace fs = std::filesystem;

namespace {
std::string tokenize(const std::string& dir) {
  std::string out;
  const std::string cmd = test::lmforge_bin() + " tokenize --tokenizer " +
                          test::source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json") + " " +
                          test::source_path("data/text/tiny_shakespeare.txt") + " -o " + dir + "/en --holdout 0.05";
  EXPECT_EQ(test::run_command(cmd, &out), 0) << out;
  return dir + "/en";
}

std::string pretrain_cmd(const std::string& run, const std::string& shards, int steps) {
  // Recipe paths are relative to the working directory, as for a user in the repository root.
  return "cd " + test::source_path("") + " && " + test::lmforge_bin() + " pretrain -c configs/tiny-mamba.toml" +
         " --device cpu --set run.dir=" + run + " --set train.max_steps=" + std::to_string(steps) +
         " --set schedule.warmup_steps=2 --set train.log_every=2 --set train.checkpoint_every=4" +
         " --set data.seq_len=32 --set train.micro_batch=2 --set train.eval_batches=2" +
         " --set 'data.eval=[\"" + shards + "-val\"]'" +
         " --set 'data.phases[0].sources[0].shards=[\"" + shards + "\"]'" +
         " --set 'data.phases[0].sources[1].shards=[\"" + shards + "\"]'" +
         " --set 'data.phases[1].sources[0].shards=[\"" + shards + "\"]'" +
         " --set 'data.phases[1].sources[1].shards=[\"" + shards + "\"]'" +
         " --set 'data.phases[1].sources[2].shards=[\"" + shards + "\"]'" +
         " --set data.phases[1].start_step=" + std::to_string(steps - 2);
}
}  // namespace

TEST(PretrainCli, RunResumeAndCleanFailure) {
  const std::string dir = test::scratch_dir("pretrain_cli");
  const std::string shards = tokenize(dir);
  const std::string run = dir + "/run";
  std::string out;
  ASSERT_EQ(test::run_command(pretrain_cmd(run, shards, 6), &out), 0) << out;
  EXPECT_TRUE(fs::exists(run + "/config.resolved.toml"));
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_000006/model.safetensors"));
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_000006/config.json"));
  EXPECT_NE(out.find("eval @ step 6"), std::string::npos) << out;
  EXPECT_NE(out.find("data phase 'decay' from step 4"), std::string::npos) << out;
  auto records = MetricsLog::read(run + "/metrics.jsonl");
  int steps_logged = 0;
  for (const auto& r : records)
    if (r.contains("step") && r.contains("loss") && !r.contains("event")) steps_logged++;
  EXPECT_EQ(steps_logged, 3);
  // Resume to step 8 from the step-6 checkpoint.
  ASSERT_EQ(test::run_command(pretrain_cmd(run, shards, 8) + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_000008/trainer_state.json"));
  // A missing shard fails before the run folder is created.
  const std::string bad_run = dir + "/bad_run";
  int rc = test::run_command(pretrain_cmd(bad_run, dir + "/missing", 6), &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("missing"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(bad_run)) << "a failed start must leave no run folder";
}
