// The table of lmforge subcommands. Adding one = one file cli/<name>.cc defining
// `Action setup_<name>(CLI::App&)` + one row in registry.cc (its declaration sits beside the row).
//
// A setup function adds the subcommand's options (bound to state it owns, e.g. a
// std::shared_ptr<Options> captured by the action), its "Examples:" footer (set_examples) and
// returns the Action that main() runs after a successful parse. The Action returns the exit
// code (0 on success); it reports failures by throwing lmf::Error (exit 1) or
// lmf::cli::UsageError (exit 2) — main() prints them as one line.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string_view>
#include <vector>

namespace lmf::cli {

using Action = std::function<int()>;
using SetupFn = Action (*)(CLI::App& app);

struct Subcommand {
  const char* name;     // what the user types: "pretrain"
  const char* summary;  // one line for `lmforge --help`
  SetupFn setup;
};

// Every subcommand, in the order `lmforge --help` lists them.
const std::vector<Subcommand>& subcommands();

}  // namespace lmf::cli
