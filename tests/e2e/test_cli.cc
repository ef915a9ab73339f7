// Runs the built `lmforge` binary (LMF_BIN) and checks its conventions: exit codes, one-line
// errors on stderr, help with examples everywhere, and `config show` output.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "lmforge/io/recipe.h"
#include "cli_runner.h"
#include "test_util.h"

using namespace lmf;

namespace {

using e2e::Capture;
using e2e::CliRun;
using e2e::expect_one_line_error;
using e2e::lines_of;
using e2e::lmforge;

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

const char* kRecipe = R"(name = "tiny"
seed = 7

[model]
arch = "mamba"
n_layer = 2

[optimizer]
lr = 3e-4
betas = [0.9, 0.95]

[[phases]]
steps = 90

[[phases]]
steps = 10
)";

// Command names listed under "Commands:" in a help text.
std::vector<std::string> commands_in_help(const std::string& help) {
  std::vector<std::string> names;
  bool in_commands = false;
  for (const auto& l : lines_of(help)) {
    if (l == "Commands:") {
      in_commands = true;
      continue;
    }
    if (!in_commands) continue;
    if (l.empty() || l[0] != ' ') break;
    std::istringstream words(l);
    std::string name;
    words >> name;
    names.push_back(name);
  }
  return names;
}

}  // namespace

TEST(Cli, VersionReportsBuildAndGpus) {
  CliRun r = lmforge("version");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find(std::string("lmforge ") + LMF_VERSION), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CUDA"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(LMF_WITH_CUDA ? "CUDA            on" : "CUDA            off"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("cuDNN"), std::string::npos);
  EXPECT_NE(r.out.find("NCCL"), std::string::npos);
  EXPECT_NE(r.out.find("GPUs visible"), std::string::npos);
  EXPECT_NE(r.out.find("OpenMP threads"), std::string::npos);

  CliRun j = lmforge("version --json", Capture::stdout_only);
  ASSERT_EQ(j.rc, 0);
  auto info = nlohmann::json::parse(j.out);
  EXPECT_EQ(info["version"], LMF_VERSION);
  EXPECT_EQ(info["cuda"].get<bool>(), static_cast<bool>(LMF_WITH_CUDA));
  EXPECT_GE(info["gpus"].get<int>(), 0);
  EXPECT_GE(info["openmp_threads"].get<int>(), 1);

  CliRun v = lmforge("--version");
  EXPECT_EQ(v.rc, 0);
  EXPECT_EQ(v.out, std::string("lmforge ") + LMF_VERSION + "\n");
}

TEST(Cli, HelpListsCommandsWithExamples) {
  CliRun help = lmforge("--help", Capture::stdout_only);
  ASSERT_EQ(help.rc, 0);
  auto names = commands_in_help(help.out);
  EXPECT_NE(std::find(names.begin(), names.end(), "version"), names.end()) << help.out;
  EXPECT_NE(std::find(names.begin(), names.end(), "config"), names.end()) << help.out;
  EXPECT_NE(help.out.find("Examples:"), std::string::npos);
  // No arguments at all: the same help, success.
  CliRun bare = lmforge("", Capture::stdout_only);
  EXPECT_EQ(bare.rc, 0);
  EXPECT_EQ(bare.out, help.out);
  // Every command (and config's own subcommands) has help with an Examples: footer.
  for (const auto& name : names) {
    CliRun sub = lmforge(name + " --help", Capture::stdout_only);
    EXPECT_EQ(sub.rc, 0) << name;
    EXPECT_NE(sub.out.find("Examples:\n  lmforge " + name), std::string::npos) << sub.out;
  }
  CliRun show = lmforge("config show --help", Capture::stdout_only);
  EXPECT_EQ(show.rc, 0);
  EXPECT_NE(show.out.find("--set"), std::string::npos);
  EXPECT_NE(show.out.find("Examples:\n  lmforge config show"), std::string::npos) << show.out;
}

TEST(Cli, UsageErrorsExitTwoWithOneLine) {
  expect_one_line_error("frobnicate", 2, {"unknown command 'frobnicate'"});
  expect_one_line_error("verson", 2, {"did you mean 'version'?"});
  expect_one_line_error("--bogus", 2, {"unknown option '--bogus'"});
  expect_one_line_error("version --bogus", 2, {"--bogus", "lmforge version --help"});
  expect_one_line_error("config", 2, {"lmforge config --help"});
  expect_one_line_error("config show", 2, {"--config is required"});
  expect_one_line_error("config show --config x.toml --format yaml", 2, {"--format"});
}

TEST(Cli, ConfigShowResolvesOverrides) {
  std::string dir = test::scratch_dir("cli_config_show");
  std::string recipe = write_file(dir, "tiny.toml", kRecipe);
  std::string out_path = dir + "/resolved.toml";
  CliRun r =
      lmforge("config show --config " + recipe +
              " --set optimizer.lr=1e-3 --set model.n_layer=4 --set 'phases[1].steps=20' --set +eval.every=50"
              " >" +
              out_path);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "");  // nothing on stderr either
  Recipe back = Recipe::load(out_path);
  EXPECT_DOUBLE_EQ(back.require<double>("optimizer.lr"), 1e-3);
  EXPECT_EQ(back.require<int>("model.n_layer"), 4);
  EXPECT_EQ(back.tables("phases")[1].require<int64_t>("steps"), 20);
  EXPECT_EQ(back.tables("phases")[0].require<int64_t>("steps"), 90);
  EXPECT_EQ(back.require<int64_t>("eval.every"), 50);
  EXPECT_EQ(back.require<std::string>("model.arch"), "mamba");

  CliRun j = lmforge("config show -c " + recipe + " --set=name=run1 --format json", Capture::stdout_only);
  ASSERT_EQ(j.rc, 0);
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["name"], "run1");
  EXPECT_EQ(doc["optimizer"]["betas"][1].get<double>(), 0.95);
  EXPECT_EQ(doc["phases"].size(), 2u);
}

TEST(Cli, ConfigShowErrorsNameFileAndKey) {
  std::string dir = test::scratch_dir("cli_config_errors");
  std::string good = write_file(dir, "good.toml", kRecipe);
  std::string bad = write_file(dir, "bad.toml", "a = 1\n[b]\nc = \"unterminated\n");
  // Malformed TOML: file:line:col, exit 1.
  expect_one_line_error("config show --config " + bad, 1, {bad + ":3:"});
  // Missing file: exit 1.
  expect_one_line_error("config show --config " + dir + "/missing.toml", 1,
                        {dir + "/missing.toml: cannot read"});
  // Unknown key in --set: usage error, names the key and suggests the right one.
  expect_one_line_error(
      "config show --config " + good + " --set optimizer.lrr=1", 2,
      {good, "--set optimizer.lrr=1", "unknown key 'optimizer.lrr'", "did you mean 'optimizer.lr'?"});
  // Wrong type in --set.
  expect_one_line_error("config show --config " + good + " --set optimizer.lr=abc", 2,
                        {good, "--set optimizer.lr=abc", "expected a number, got string 'abc'"});
  expect_one_line_error("config show --config " + good + " --set model.n_layer=true", 2,
                        {"expected an integer, got boolean true"});
  expect_one_line_error("config show --config " + good + " --set optimizer=1", 2, {"'optimizer' is a table"});
  expect_one_line_error("config show --config " + good + " --set novalue", 2, {"expected key=value"});
}

TEST(Cli, CorruptedRecipesNeverCrash) {
  // Random byte edits of a valid recipe: each run either succeeds or fails with one line.
  std::string dir = test::scratch_dir("cli_corrupt");
  std::mt19937 gen(1234);
  std::string base = kRecipe;
  std::uniform_int_distribution<int> byte(0, 255);
  int failures = 0;
  for (int trial = 0; trial < 24; trial++) {
    std::string text = base;
    std::uniform_int_distribution<size_t> pos(0, text.size() - 1);
    for (int edit = 0; edit < 1 + trial % 4; edit++) {
      size_t p = pos(gen);
      if (trial % 3 == 0) {
        text.insert(text.begin() + p, static_cast<char>(byte(gen)));
      } else if (trial % 3 == 1) {
        text[p] = static_cast<char>(byte(gen));
      } else {
        text.erase(p, 1);
      }
    }
    std::string name = std::to_string(trial);
    name.insert(0, 1, 'r').append(".toml");
    std::string path = write_file(dir, name, text);
    CliRun r = lmforge(std::string("config show --config ").append(path));
    if (r.rc == 0) continue;
    failures++;
    EXPECT_EQ(r.rc, 1) << r.out;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 1u) << r.out;
    EXPECT_EQ(lines[0].rfind("lmforge: error: " + path + ":", 0), 0u) << lines[0];
  }
  EXPECT_GT(failures, 0);  // the edits did break some files
}
