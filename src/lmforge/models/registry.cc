#include "lmforge/models/registry.h"

#include "lmforge/io/hf_params.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/mamba.h"

namespace lmf {

std::unique_ptr<CausalLM> make_causal_lm(const nlohmann::json& j, const std::string& source, ParamStore& store) {
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  const std::string type = config_json::get_string(j, source, "model_type", "");
  if (arch == "MambaForCausalLM" || (arch.empty() && type == "mamba"))
    return std::make_unique<MambaModel>(parse_mamba_config(j, source), store);
  if (arch.empty() && type.empty()) fail(source, ": neither 'architectures' nor 'model_type' is set");
  fail(source, ": architectures: '", arch.empty() ? type : arch,
       "' is not a causal LM lmforge supports (supported: MambaForCausalLM)");
}

LoadedCausalLM load_causal_lm(const std::string& dir, Device device, DType compute) {
  LoadedCausalLM l;
  const std::string cfg_path = dir + "/config.json";
  nlohmann::json j = config_json::read_json_file(cfg_path);
  l.store = std::make_unique<ParamStore>(device, compute);
  l.model = make_causal_lm(j, cfg_path, *l.store);
  l.store->finalize();
  l.unused_tensors = load_hf_params(*l.store, dir, l.model->hf_optional_on_load(), l.model->hf_renames_on_load());
  return l;
}

}  // namespace lmf
