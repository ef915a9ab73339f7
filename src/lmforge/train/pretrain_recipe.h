// Reads a pre-training recipe (TOML, see configs/*.toml and docs/recipes.md) into a
// PretrainConfig. Every error names the recipe file and the key.
#pragma once

#include "lmforge/io/recipe.h"
#include "lmforge/train/pretrain_config.h"

namespace lmf {

struct PretrainRecipe {
  PretrainConfig config;
  std::string model_config;   // [model] config: a HF config.json to build a fresh model from
  std::string init_from;      // [model] init_from: a HF folder whose weights start the run
  std::string tokenizer;      // [data] tokenizer
  std::string device = "auto";     // [run] device: auto | cpu | cuda | cuda:N
  std::string precision = "auto";  // [run] precision: auto | f32 | bf16
};

// `device` is resolved by the caller from [run] device ("auto" | "cpu" | "cuda[:N]").
PretrainRecipe parse_pretrain_recipe(const Recipe& r);

}  // namespace lmf
