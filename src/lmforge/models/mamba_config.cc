#include "lmforge/models/mamba_config.h"

#include <cmath>

#include "lmforge/core/error.h"
#include "lmforge/models/config_json.h"

namespace lmf {

using namespace config_json;

MambaConfig parse_mamba_config(const nlohmann::json& j, const std::string& src) {
  if (!j.is_object()) fail(src, ": expected a JSON object");
  MambaConfig c;
  c.raw = j;
  c.vocab_size = get_int(j, src, "vocab_size", c.vocab_size);
  c.hidden_size = get_int(j, src, "hidden_size", c.hidden_size);
  c.state_size = get_int(j, src, "state_size", c.state_size);
  c.num_hidden_layers = get_int(j, src, "num_hidden_layers", c.num_hidden_layers);
  c.layer_norm_epsilon = get_double(j, src, "layer_norm_epsilon", c.layer_norm_epsilon);
  c.expand = get_int(j, src, "expand", c.expand);
  c.conv_kernel = get_int(j, src, "conv_kernel", c.conv_kernel);
  c.use_bias = get_bool(j, src, "use_bias", c.use_bias);
  c.use_conv_bias = get_bool(j, src, "use_conv_bias", c.use_conv_bias);
  c.hidden_act = get_string(j, src, "hidden_act", c.hidden_act);
  c.residual_in_fp32 = get_bool(j, src, "residual_in_fp32", c.residual_in_fp32);
  c.time_step_scale = get_double(j, src, "time_step_scale", c.time_step_scale);
  c.time_step_min = get_double(j, src, "time_step_min", c.time_step_min);
  c.time_step_max = get_double(j, src, "time_step_max", c.time_step_max);
  c.time_step_floor = get_double(j, src, "time_step_floor", c.time_step_floor);
  c.time_step_init_scheme = get_string(j, src, "time_step_init_scheme", c.time_step_init_scheme);
  c.rescale_prenorm_residual = get_bool(j, src, "rescale_prenorm_residual", c.rescale_prenorm_residual);
  c.initializer_range = get_double(j, src, "initializer_range", c.initializer_range);
  c.tie_word_embeddings = get_bool(j, src, "tie_word_embeddings", c.tie_word_embeddings);
  c.pad_token_id = get_int(j, src, "pad_token_id", c.pad_token_id);
  c.bos_token_id = get_int(j, src, "bos_token_id", c.bos_token_id);
  c.eos_token_id = get_int(j, src, "eos_token_id", c.eos_token_id);
  for (auto [k, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                      {"state_size", c.state_size}, {"num_hidden_layers", c.num_hidden_layers},
                      {"expand", c.expand}, {"conv_kernel", c.conv_kernel}})
    require_positive(src, k, v);
  // HF: intermediate_size = int(expand * hidden_size); a stored value must agree.
  int64_t derived_inter = 0;
  if (__builtin_mul_overflow(c.expand, c.hidden_size, &derived_inter))
    fail(src, ": expand * hidden_size = ", c.expand, " * ", c.hidden_size, " overflows a 64-bit integer");
  c.intermediate_size = get_int(j, src, "intermediate_size", derived_inter);
  if (c.intermediate_size != derived_inter)
    fail(src, ": intermediate_size: ", c.intermediate_size, " contradicts expand * hidden_size = ", derived_inter);
  // time_step_rank: "auto" -> ceil(hidden / 16), or an integer.
  if (j.contains("time_step_rank") && j["time_step_rank"].is_string()) {
    if (j["time_step_rank"] != "auto")
      fail(src, ": time_step_rank: expected \"auto\" or an integer, got ", j["time_step_rank"].dump());
    c.time_step_rank = (c.hidden_size + 15) / 16;
  } else {
    c.time_step_rank = get_int(j, src, "time_step_rank", (c.hidden_size + 15) / 16);
  }
  require_positive(src, "time_step_rank", c.time_step_rank);
  if (c.hidden_act != "silu" && c.hidden_act != "swish")
    fail(src, ": hidden_act: Mamba supports \"silu\", got \"", c.hidden_act, "\"");
  if (!(c.layer_norm_epsilon > 0)) fail(src, ": layer_norm_epsilon: expected a positive number");
  if (c.time_step_init_scheme != "random" && c.time_step_init_scheme != "constant")
    fail(src, ": time_step_init_scheme: expected \"random\" or \"constant\", got \"", c.time_step_init_scheme, "\"");
  return c;
}

nlohmann::json mamba_config_to_json(const MambaConfig& c) {
  nlohmann::json j = c.raw.is_object() ? c.raw : nlohmann::json::object();
  j["model_type"] = "mamba";
  j["architectures"] = {"MambaForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["state_size"] = c.state_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["layer_norm_epsilon"] = c.layer_norm_epsilon;
  j["expand"] = c.expand;
  j["intermediate_size"] = c.intermediate_size;
  j["conv_kernel"] = c.conv_kernel;
  j["use_bias"] = c.use_bias;
  j["use_conv_bias"] = c.use_conv_bias;
  j["hidden_act"] = c.hidden_act;
  j["residual_in_fp32"] = c.residual_in_fp32;
  j["time_step_rank"] = c.time_step_rank;
  j["time_step_scale"] = c.time_step_scale;
  j["time_step_min"] = c.time_step_min;
  j["time_step_max"] = c.time_step_max;
  j["time_step_floor"] = c.time_step_floor;
  j["time_step_init_scheme"] = c.time_step_init_scheme;
  j["rescale_prenorm_residual"] = c.rescale_prenorm_residual;
  j["initializer_range"] = c.initializer_range;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["pad_token_id"] = c.pad_token_id;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  return j;
}

}  // namespace lmf
