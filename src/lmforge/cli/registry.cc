#include "lmforge/cli/registry.h"

namespace lmf::cli {

// ---- the table: one declaration + one row per subcommand -----------------------------------
Action setup_version(CLI::App&);  // cli/version.cc
Action setup_config(CLI::App&);   // cli/config.cc

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> table = {
      {"version", "Print the version, build options and the GPUs this process sees", setup_version},
      {"config", "Inspect recipes: show the resolved TOML after --set overrides", setup_config},
  };
  return table;
}

}  // namespace lmf::cli
