// Helpers shared by subcommands: the --config/--set pair, help footers, warnings and the
// usage-error type.
#pragma once

#include <CLI/CLI.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/core/error.h"
#include "lmforge/io/recipe.h"

namespace lmf::cli {

// A mistake in how the command was called (conflicting flags, a bad flag value found after
// parsing): main() exits with 2 instead of 1.
class UsageError : public Error {
 public:
  using Error::Error;
};

// `--config FILE` and repeatable `--set KEY=VALUE` (see docs/cli.md).
struct RecipeArgs {
  std::string config;
  std::vector<std::string> sets;
};
void add_recipe_options(CLI::App& app, RecipeArgs& args);
// Loads args.config and applies args.sets in order. Throws lmf::Error (bad file) or
// lmf::OverrideError (bad --set: a usage error).
Recipe load_recipe(const RecipeArgs& args);

// After a command has read everything it needs: warns once per recipe key nobody read
// ("lmforge: warning: configs/x.toml: unused key 'optimizer.lrr' (did you mean 'optimizer.lr'?)").
// Commands that must refuse typos call recipe.reject_unused() instead.
void warn_unused_keys(const Recipe& recipe);

// Sets the help footer to an "Examples:" block, one command per line.
void set_examples(CLI::App& app, std::initializer_list<std::string_view> lines);

// Prints "lmforge: warning: <message>" on stderr.
void warn(std::string_view message);

}  // namespace lmf::cli
