// Helpers for e2e tests that run the built `lmforge` binary (test::lmforge_bin()).
#pragma once

#include <string>
#include <vector>

namespace lmf::e2e {

enum class Capture { both, stdout_only, stderr_only };

struct CliRun {
  int rc = -1;
  std::string out;
};

// Runs `lmforge <args>` through the shell (args may contain redirections and pipes after the
// command); records a test failure if the process ended by a signal (exit code >= 128).
CliRun lmforge(const std::string& args, Capture capture = Capture::both);

// The command fails with exit code `rc`, prints exactly one line, "lmforge: error: ...", on
// stderr and nothing on stdout, and the line contains every string in `needles`.
void expect_one_line_error(const std::string& args, int rc, const std::vector<std::string>& needles);

std::vector<std::string> lines_of(const std::string& s);
std::string write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
// 'x' -> "'x'" for the shell (single quotes inside are escaped).
std::string shell_quote(const std::string& s);

}  // namespace lmf::e2e
