#include "lmforge/models/task_registry.h"

#include <utility>

#include "lmforge/io/hf_params.h"
#include "lmforge/models/bert.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/modernbert.h"

namespace lmf {
namespace {

// model_type -> factory. Each family adds its line here (and nowhere else).
const std::vector<std::pair<std::string, TaskModelFactory>>& families() {
  static const std::vector<std::pair<std::string, TaskModelFactory>> table = {
      {"bert", make_bert_model},
      {"roberta", make_bert_model},
      {"xlm-roberta", make_bert_model},
      {"modernbert", &make_modernbert},
  };
  return table;
}

std::string supported_types() {
  std::string s;
  for (const auto& [name, factory] : families()) s += (s.empty() ? "" : ", ") + name;
  return s.empty() ? "none" : s;
}

}  // namespace

std::unique_ptr<HfModel> make_task_model(const nlohmann::json& config, const std::string& source,
                                         ParamStore& store, const TaskModelRequest& request) {
  if (!config.is_object()) fail(source, ": expected a JSON object");
  const std::string type = config_json::get_string(config, source, "model_type", "");
  if (type.empty()) fail(source, ": model_type: missing (expected one of ", supported_types(), ")");
  for (const auto& [name, factory] : families())
    if (name == type) return factory(config, source, store, request);
  fail(source, ": model_type: '", type, "' is not a task model lmforge supports (supported: ", supported_types(), ")");
}

LoadedTaskModel load_task_model(const std::string& dir, Device device, DType compute, const TaskModelRequest& request,
                                uint64_t init_seed, void (*configure)(ParamStore&)) {
  LoadedTaskModel l;
  const std::string cfg_path = dir + "/config.json";
  nlohmann::json j = config_json::read_json_file(cfg_path);
  l.store = std::make_unique<ParamStore>(device, compute);
  l.model = make_task_model(j, cfg_path, *l.store, request);
  if (configure) configure(*l.store);
  l.store->finalize();
  Generator gen{init_seed, 0};
  l.model->init_weights(gen);
  l.unused_tensors = load_hf_params(*l.store, dir, l.model->hf_optional_on_load(), l.model->hf_renames_on_load(),
                                    &l.missing_tensors);
  return l;
}

}  // namespace lmf
