// `lmforge compare`: the side-by-side table of fine-tuning runs from their results.json (the
// demo's last step); one-line errors for a folder without results or without eval data.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_runner.h"
#include "test_util.h"

using namespace lmf;
using namespace lmf::e2e;

namespace {

std::string make_run(const std::string& root, const std::string& name, const std::string& json) {
  const std::string dir = root + "/" + name;
  std::filesystem::create_directories(dir);
  write_file(dir + "/results.json", json);
  return dir;
}

TEST(CompareCli, TableAndJson) {
  const std::string root = test::scratch_dir("compare");
  const std::string a = make_run(root, "mamba-run",
                                 R"({"architecture":"MambaForSequenceClassification","params":991000,)"
                                 R"("train_tokens_per_s":914.0,"best_eval":{"accuracy":0.7087,"macro_f1":0.7081}})");
  const std::string b = make_run(root, "bert-run",
                                 R"({"architecture":"BertForSequenceClassification","params":1370000,)"
                                 R"("train_tokens_per_s":3080.0,"best_eval":{"accuracy":0.6911,"macro_f1":0.6899}})");
  CliRun r = lmforge("compare " + shell_quote(a) + " " + shell_quote(b), Capture::stdout_only);
  ASSERT_EQ(r.rc, 0) << r.out;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_NE(lines[1].find("mamba-run"), std::string::npos);
  EXPECT_NE(lines[1].find("0.7087"), std::string::npos);
  EXPECT_NE(lines[1].find("991k"), std::string::npos);
  EXPECT_NE(lines[2].find("BertForSequenceClassification"), std::string::npos);
  EXPECT_NE(lines[2].find("0.6899"), std::string::npos);
  CliRun j = lmforge("compare --json " + shell_quote(a) + " " + shell_quote(b), Capture::stdout_only);
  ASSERT_EQ(j.rc, 0);
  EXPECT_NE(j.out.find("\"accuracy\":0.6911"), std::string::npos) << j.out;
}

TEST(CompareCli, MissingResultsAreOneLineErrors) {
  const std::string root = test::scratch_dir("compare_bad");
  expect_one_line_error("compare " + shell_quote(root + "/none"), 1, {"results.json", "not found"});
  const std::string noeval = make_run(root, "noeval", R"({"architecture":"X","params":1})");
  expect_one_line_error("compare " + shell_quote(noeval), 1, {"best_eval"});
}

}  // namespace
