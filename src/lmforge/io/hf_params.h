// Moving a ParamStore's weights in and out of Hugging Face checkpoint folders.
//
// load_hf_params: every parameter of the store must be found in the checkpoint (a folder with
// model.safetensors or a sharded index) under its HF name, with the same shape; the values are
// converted to fp32 into the master buffer, then the compute copy is synced. `optional` names
// may be absent (e.g. lm_head.weight of a tied checkpoint). `renames` maps legacy checkpoint
// names to ours (mamba_ssm's "embedding." -> "embeddings."): every rename whose key occurs in a
// checkpoint name replaces that occurrence, one after the other in map order; a key "^x" only
// matches a leading x (prefixes: "^bert." -> "" loads a BertForMaskedLM checkpoint into
// BertModel). Returns checkpoint tensor names
// nobody used (callers report them, as transformers does); `missing` (optional) receives the
// optional names the checkpoint lacked (their values are left as they were).
// Errors name the folder, the tensor and both shapes.
//
// save_hf_params: writes the master values as `dtype` (f32 or bf16) safetensors under HF
// names, atomically, plus config.json (atomic).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/nn/param_store.h"

namespace lmf {

std::vector<std::string> load_hf_params(ParamStore& store, const std::string& dir,
                                        const std::vector<std::string>& optional = {},
                                        const std::map<std::string, std::string>& renames = {},
                                        std::vector<std::string>* missing = nullptr);

void save_hf_params(const ParamStore& store, const std::string& dir, const nlohmann::json& config,
                    DType dtype = DType::f32, const std::vector<std::string>& skip = {});

}  // namespace lmf
