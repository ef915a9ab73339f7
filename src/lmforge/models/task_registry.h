// Builds and loads the task models (masked LMs, sequence classifiers, base encoders) from HF
// folders, by model_type, with the head the caller asks for. Fine-tuning a pre-trained base or
// MLM checkpoint for classification = load it with head sequence_classification: the new head
// is initialized (HF _init_weights rules) and reported as missing, as transformers does.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/models/task_model.h"

namespace lmf {

enum class TaskHead { from_config, base, masked_lm, sequence_classification };

struct TaskModelRequest {
  TaskHead head = TaskHead::from_config;  // from_config: the config's architectures[0]
  int64_t num_labels = 0;                 // sequence_classification (0 = config's num_labels / id2label)
  std::string pooling;                    // sequence_classification: "" (family default) | cls | mean | last
};

// One family's factory: registers parameters in `store` (not finalized). Throws lmf::Error
// naming `source` for contradictory or missing config keys or an unsupported head.
using TaskModelFactory = std::unique_ptr<HfModel> (*)(const nlohmann::json& config, const std::string& source,
                                                      ParamStore& store, const TaskModelRequest& request);

std::unique_ptr<HfModel> make_task_model(const nlohmann::json& config, const std::string& source,
                                         ParamStore& store, const TaskModelRequest& request);

struct LoadedTaskModel {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
  std::vector<std::string> unused_tensors;   // in the checkpoint, not in the model
  std::vector<std::string> missing_tensors;  // in the model, not in the checkpoint (newly initialized)
};

// Loads config.json + weights from `dir`. Parameters the checkpoint lacks must be among the
// model's hf_optional_on_load() (else lmf::Error naming the tensor); they keep their init from
// `init_seed`. Frozen/trainable flags can be changed by the caller only before finalize, so
// `configure` (optional) runs on the store after registration, before finalize.
LoadedTaskModel load_task_model(const std::string& dir, Device device, DType compute, const TaskModelRequest& request,
                                uint64_t init_seed = 0, void (*configure)(ParamStore&) = nullptr);

}  // namespace lmf
