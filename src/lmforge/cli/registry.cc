#include "lmforge/cli/registry.h"

namespace lmf::cli {

// ---- the table: one declaration + one row per subcommand -----------------------------------
Action setup_version(CLI::App&);  // cli/version.cc
Action setup_config(CLI::App&);   // cli/config.cc
Action setup_tokenize(CLI::App&);  // cli/tokenize.cc
Action setup_pretrain(CLI::App&);  // cli/pretrain.cc
Action setup_generate(CLI::App&);  // cli/generate.cc

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> table = {
      {"version", "Print the version, build options and the GPUs this process sees", setup_version},
      {"pretrain", "Pre-train a causal LM (Mamba) from a TOML recipe", setup_pretrain},
      {"generate", "Generate text from a prompt (Mamba: recurrent cache; greedy or sampled)", setup_generate},
      {"tokenize", "Tokenize text / JSONL into memory-mapped shards (.bin + .idx)", setup_tokenize},
      {"config", "Inspect recipes: show the resolved TOML after --set overrides", setup_config},
  };
  return table;
}

}  // namespace lmf::cli
