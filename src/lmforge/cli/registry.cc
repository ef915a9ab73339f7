#include "lmforge/cli/registry.h"

namespace lmf::cli {

// ---- the table: one declaration + one row per subcommand -----------------------------------
Action setup_version(CLI::App&);  // cli/version.cc
Action setup_config(CLI::App&);   // cli/config.cc
Action setup_tokenize(CLI::App&);  // cli/tokenize.cc
Action setup_pretrain(CLI::App&);  // cli/pretrain.cc
Action setup_generate(CLI::App&);  // cli/generate.cc
Action setup_eval(CLI::App&);      // cli/eval.cc
Action setup_forward(CLI::App&);   // cli/forward.cc
Action setup_encode(CLI::App&);    // cli/encode.cc
Action setup_decode(CLI::App&);    // cli/decode.cc
Action setup_finetune(CLI::App&);  // cli/finetune.cc
Action setup_predict(CLI::App&);   // cli/predict.cc
Action setup_compare(CLI::App&);   // cli/compare.cc

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> table = {
      {"version", "Print the version, build options and the GPUs this process sees", setup_version},
      {"pretrain", "Pre-train a causal LM (Mamba) from a TOML recipe", setup_pretrain},
      {"generate", "Generate text from a prompt (Mamba: recurrent cache; greedy or sampled)", setup_generate},
      {"eval", "Evaluate a causal LM: loss, perplexity, top-k accuracy, by position", setup_eval},
      {"finetune", "Fine-tune a model for sequence classification (--task seq-cls) from a TOML recipe", setup_finetune},
      {"compare", "Side-by-side table of fine-tuning runs: accuracy, macro-F1, parameters, tokens/s", setup_compare},
      {"predict", "Classify texts with a fine-tuned classifier: JSON lines {label, score, probs}", setup_predict},
      {"tokenize", "Tokenize text / JSONL into memory-mapped shards (.bin + .idx)", setup_tokenize},
      {"encode", "Text lines -> token ids (one JSON array per line)", setup_encode},
      {"decode", "Token ids (one JSON array per line) -> text lines", setup_decode},
      {"forward", "Run a HF model folder on ids from safetensors; write fp32 logits", setup_forward},
      {"config", "Inspect recipes: show the resolved TOML after --set overrides", setup_config},
  };
  return table;
}

}  // namespace lmf::cli
