#include "cli_runner.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_util.h"

namespace lmf::e2e {

CliRun lmforge(const std::string& args, Capture capture) {
  std::string cmd = "{ ";
  cmd.append(shell_quote(test::lmforge_bin())).append(" ").append(args);
  if (capture == Capture::stdout_only) cmd.append(" 2>/dev/null");
  if (capture == Capture::stderr_only) cmd.append(" 2>&1 >/dev/null");
  cmd.append("; }");
  CliRun r;
  r.rc = test::run_command(cmd, &r.out);
  EXPECT_GE(r.rc, 0) << args;
  EXPECT_LT(r.rc, 128) << "lmforge " << args << " crashed:\n" << r.out;
  return r;
}

void expect_one_line_error(const std::string& args, int rc, const std::vector<std::string>& needles) {
  CliRun both = lmforge(args);
  EXPECT_EQ(both.rc, rc) << args << "\n" << both.out;
  auto lines = lines_of(both.out);
  ASSERT_EQ(lines.size(), 1u) << args << "\n" << both.out;
  EXPECT_EQ(lines[0].rfind("lmforge: error: ", 0), 0u) << lines[0];
  for (const auto& n : needles) EXPECT_NE(lines[0].find(n), std::string::npos) << "'" << n << "' not in: " << lines[0];
  EXPECT_EQ(lmforge(args, Capture::stderr_only).out, both.out) << "the error must go to stderr: " << args;
  EXPECT_EQ(lmforge(args, Capture::stdout_only).out, "") << "nothing on stdout: " << args;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q.append("'\\''");
    else
      q.push_back(c);
  }
  q.push_back('\'');
  return q;
}

}  // namespace lmf::e2e
