// `lmforge config show`: the recipe exactly as a run would resolve it (file + --set overrides).
#include <cstdio>
#include <memory>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"

namespace lmf::cli {

namespace {

struct ShowOptions {
  RecipeArgs recipe;
  std::string format = "toml";
};

int run_show(const ShowOptions& opt) {
  Recipe r = load_recipe(opt.recipe);
  std::string text = opt.format == "json" ? r.to_json() : r.resolved_text();
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

Action setup_config(CLI::App& app) {
  app.require_subcommand(1);
  set_examples(
      app, {"lmforge config show --config configs/tiny-mamba.toml",
            "lmforge config show -c configs/tiny-mamba.toml --set optimizer.lr=1e-3 --set model.n_layer=4"});

  auto show_opt = std::make_shared<ShowOptions>();
  CLI::App* show =
      app.add_subcommand("show", "Print the resolved recipe (TOML, as written to config.resolved.toml)");
  show->group("Commands");
  add_recipe_options(*show, show_opt->recipe);
  show->add_option("--format", show_opt->format, "Output format")
      ->check(CLI::IsMember({"toml", "json"}))
      ->default_str("toml");
  set_examples(*show, {"lmforge config show --config configs/tiny-mamba.toml",
                       "lmforge config show -c configs/tiny-mamba.toml --set optimizer.lr=1e-3 --format json",
                       "lmforge config show -c configs/tiny-mamba.toml --set +eval.every_steps=100"});

  return [show, show_opt]() -> int {
    if (show->parsed()) return run_show(*show_opt);
    throw UsageError("config: expected a subcommand (see 'lmforge config --help')");
  };
}

}  // namespace lmf::cli
