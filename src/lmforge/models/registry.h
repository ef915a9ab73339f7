// Builds a model from a HF config.json object, by its model_type / architectures.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "lmforge/models/causal_lm.h"

namespace lmf {

// Registers the model's parameters in `store` (not finalized). Throws lmf::Error naming
// `source` for an unsupported architecture ("x/config.json: architectures: 'BertModel' is not
// a causal LM lmforge supports (supported: MambaForCausalLM)").
std::unique_ptr<CausalLM> make_causal_lm(const nlohmann::json& config, const std::string& source, ParamStore& store);

// Loads a HF folder (config.json + weights) onto `device` with `compute` dtype.
struct LoadedCausalLM {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<CausalLM> model;
  std::vector<std::string> unused_tensors;  // checkpoint tensors the model did not use
};
LoadedCausalLM load_causal_lm(const std::string& dir, Device device, DType compute);

}  // namespace lmf
