// MambaConfig: the fields of HF `MambaConfig` (configuration_mamba.py) that the model uses,
// parsed from config.json with HF's defaults and derived values (PARITY.md §1).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lmf {

struct MambaConfig {
  int64_t vocab_size = 50280;
  int64_t hidden_size = 768;
  int64_t state_size = 16;
  int64_t num_hidden_layers = 32;
  double layer_norm_epsilon = 1e-5;
  int64_t expand = 2;
  int64_t intermediate_size = 0;  // derived: expand * hidden_size
  int64_t conv_kernel = 4;
  bool use_bias = false;
  bool use_conv_bias = true;
  std::string hidden_act = "silu";
  bool residual_in_fp32 = true;
  int64_t time_step_rank = 0;  // derived from "auto": ceil(hidden_size / 16)
  double time_step_scale = 1.0, time_step_min = 1e-3, time_step_max = 0.1, time_step_floor = 1e-4;
  std::string time_step_init_scheme = "random";
  bool rescale_prenorm_residual = false;
  double initializer_range = 0.1;
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 0, bos_token_id = 0, eos_token_id = 0;
  nlohmann::json raw;  // the original object, written back on save with our values updated
};

// Parses and validates (every size > 0, intermediate/time_step_rank consistent). `source` names
// the file in errors: "model/config.json: hidden_size: expected a positive integer, got -3".
MambaConfig parse_mamba_config(const nlohmann::json& j, const std::string& source);
nlohmann::json mamba_config_to_json(const MambaConfig& c);

}  // namespace lmf
