#include "lmforge/cli/common.h"

#include <cstdio>

namespace lmf::cli {

void add_recipe_options(CLI::App& app, RecipeArgs& args) {
  app.add_option("-c,--config", args.config, "Recipe file (TOML), e.g. configs/tiny-mamba.toml")
      ->required()
      ->type_name("FILE");
  // One value per --set so "--set a=1 --set b=2" and "--set=a=1" both work and nothing after a
  // --set is swallowed as another override.
  app.add_option("--set", args.sets,
                 "Override a recipe key: --set optimizer.lr=3e-4 (repeatable; +key=value adds a new key)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

Recipe load_recipe(const RecipeArgs& args) {
  Recipe r = Recipe::load(args.config);
  r.apply_overrides(args.sets);
  return r;
}

void warn_unused_keys(const Recipe& recipe) {
  for (const auto& m : recipe.unused_key_messages()) warn(m);
}

void set_examples(CLI::App& app, std::initializer_list<std::string_view> lines) {
  std::string footer = "Examples:\n";
  for (auto l : lines) footer.append("  ").append(l).append("\n");
  app.footer(footer);
}

void warn(std::string_view message) {
  std::string line = "lmforge: warning: ";
  line.append(message).append("\n");
  std::fputs(line.c_str(), stderr);
}

}  // namespace lmf::cli
