// lmforge: the command-line entry point. Builds the CLI from the subcommand table
// (registry.cc), runs the chosen subcommand, and turns every failure into ONE line on stderr:
//   "lmforge: error: <message>"   exit 2 for usage errors (bad flag, unknown subcommand,
//                                 bad --set), exit 1 for everything else.
// No exception escapes main().
#include <cstdlib>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <new>
#include <string>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/core/build_info.h"
#include "lmforge/core/error.h"
#include "lmforge/core/suggest.h"
#include "lmforge/io/recipe.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Prints the message as one line, whatever it contains.
void print_error(std::string message) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  std::string line = "lmforge: error: ";
  line.append(message).append("\n");
  std::fflush(stdout);
  std::fputs(line.c_str(), stderr);
}

// Checks what comes before the subcommand: top-level options are only -h/--help/--version and
// take no value, so the first non-option argument is the subcommand the user meant. Catching
// these here gives better messages than CLI11 ("A subcommand is required" for `--bogus`).
void check_command_word(int argc, char** argv, const std::vector<std::string>& names) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "--version") continue;
    if (arg.rfind("-", 0) == 0)
      throw lmf::cli::UsageError("unknown option '" + arg +
                                 "' (options of a command go after it; see 'lmforge --help')");
    if (std::find(names.begin(), names.end(), arg) == names.end())
      throw lmf::cli::UsageError("unknown command '" + arg + "'" + lmf::did_you_mean(arg, names) +
                                 " (see 'lmforge --help')");
    return;
  }
}

// CLI11 starts its messages with a capital ("A subcommand is required"); ours do not.
std::string lower_first(std::string s) {
  if (s.size() > 1 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z')
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

// "lmforge config show" for the deepest subcommand the parser reached, for the help hint.
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* cur = &app;
  while (true) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) return path;
    cur = subs.front();
    path.append(" ").append(cur->get_name());
  }
}

int run(int argc, char** argv) {
  using namespace lmf::cli;
  CLI::App app("lmforge: pre-train, fine-tune, evaluate and compare Mamba and Transformer language models.",
               "lmforge");
  app.set_version_flag("--version", std::string("lmforge ") + lmf::build_info().version);
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);
  app.get_formatter()->label("SUBCOMMAND", "COMMAND");
  set_examples(
      app, {"lmforge version", "lmforge config show --config configs/tiny-mamba.toml --set optimizer.lr=1e-3",
            "lmforge <command> --help        (options of one command)"});

  std::map<const CLI::App*, Action> actions;
  std::vector<std::string> names;
  for (const Subcommand& s : subcommands()) {
    CLI::App* sub = app.add_subcommand(s.name, s.summary);
    sub->group("Commands");
    actions[sub] = s.setup(*sub);
    names.emplace_back(s.name);
  }

  if (argc <= 1) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  check_command_word(argc, argv, names);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    throw UsageError(lower_first(e.what()) + " (see '" + command_path(app) + " --help')");
  }
  auto chosen = app.get_subcommands();
  if (chosen.empty()) throw UsageError("expected a command (see 'lmforge --help')");
  int rc = actions.at(chosen.front())();
  // Output that never arrived (disk full, closed pipe) is a failure, not a silent success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) lmf::fail("cannot write to standard output");
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads that spin between parallel regions starve OpenBLAS's own threads on small
  // machines (measured on 2 cores: 43 % of CPU time in libgomp's spin-wait; 1.7x faster
  // training with passive waiting). libgomp reads the variable when it is loaded, before
  // main(), so set it and re-execute once. A user setting wins.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on with spinning threads
  }
  try {
    return run(argc, argv);
  } catch (const lmf::cli::UsageError& e) {
    print_error(e.what());
    return kExitUsage;
  } catch (const lmf::OverrideError& e) {
    print_error(e.what());
    return kExitUsage;
  } catch (const lmf::Error& e) {
    print_error(e.what());
    return kExitFailure;
  } catch (const std::bad_alloc&) {
    print_error("out of host memory");
    return kExitFailure;
  } catch (const std::exception& e) {
    print_error(std::string("internal error: ") + e.what());
    return kExitFailure;
  } catch (...) {
    print_error("internal error: unknown exception");
    return kExitFailure;
  }
}
