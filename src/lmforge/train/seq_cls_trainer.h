// The sequence-classification fine-tuning loop, for any SequenceClassifier (Mamba, BERT,
// ModernBERT, ...): it uses only that interface.
//
//  - epochs over the training examples, shuffled per epoch from the seed (optionally grouped
//    by length); a step = grad_accum micro-batches of per_device_batch examples (the last step
//    of an epoch takes what is left); effective batch = per_device_batch x grad_accum x world
//    (world = 1 here), reported in the "start" event;
//  - loss: class-weighted cross-entropy with HF CrossEntropyLoss(weight=w) semantics,
//    sum_i w_{y_i} l_i / sum_i w_{y_i} per micro-batch, divided by the number of micro-batches;
//  - AdamW on the ParamStore's decay ranges (no decay where the model says so), global-norm
//    clipping, the LR schedule with warmup = ceil(warmup_ratio x total steps) (HF
//    get_warmup_steps); a step whose gradient norm is not finite is skipped (event);
//  - evaluation every eval_every steps or at every epoch end, and after the last step;
//    early stopping (train/early_stop.h) and the best model exported in HF format to
//    <run>/best/ atomically (written beside, then renamed into place): model.safetensors,
//    config.json (id2label ...), the tokenizer files, lmforge_finetune.json (how to encode
//    inputs + the eval report). Without eval data the final model is exported as best.
//  - callbacks for metrics.jsonl records and events (start, eval, best, early_stop,
//    skipped_step, done).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/core/rng.h"
#include "lmforge/data/classification_batches.h"
#include "lmforge/eval/classifier_eval.h"
#include "lmforge/models/task_model.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/early_stop.h"
#include "lmforge/train/finetune_config.h"
#include "lmforge/train/schedules.h"

namespace lmf {

struct SeqClsData {
  std::vector<EncodedExample> train, eval;  // labels assigned
  std::vector<std::string> label_names;
  std::vector<double> class_weights;  // one per label
  int64_t pad_id = 0;
  std::vector<std::string> tokenizer_files;  // copied into every exported model folder
};

struct SeqClsSummary {
  int64_t steps = 0, epochs_started = 0;
  bool early_stopped = false;
  bool has_eval = false;
  double best_metric = 0;
  int64_t best_step = 0;
  nlohmann::json best_eval;  // the best evaluation's record (empty without eval data)
  ClassificationReport best_report;
  std::string best_dir;
};

class SeqClsTrainer {
 public:
  struct Callbacks {
    std::function<void(const nlohmann::json&)> on_log;    // one per log_every steps
    std::function<void(const nlohmann::json&)> on_event;  // start, eval, best, ...
  };

  // `model` is loaded (or freshly initialized) with label names set; `run_dir` exists.
  // Throws lmf::Error for empty training data or inconsistent sizes.
  SeqClsTrainer(const FinetuneConfig& config, SequenceClassifier& model, const SeqClsData& data,
                std::string run_dir, Callbacks callbacks);
  ~SeqClsTrainer();

  SeqClsSummary train();
  // Evaluates the current model on data.eval.
  ClassifierEval evaluate();

  int64_t total_steps() const { return total_steps_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t warmup_steps() const { return schedule_.warmup_steps; }
  int64_t effective_batch() const { return cfg_.per_device_batch * cfg_.grad_accum * 1; }

 private:
  double run_step(ClassificationBatcher& batcher, int64_t first_micro, int64_t n_micro, int64_t* tokens);
  nlohmann::json eval_record(const ClassifierEval& e) const;
  void export_model(const std::string& dir, const nlohmann::json& eval_record);

  FinetuneConfig cfg_;
  SequenceClassifier& model_;
  const SeqClsData& data_;
  std::string run_dir_;
  Callbacks cb_;
  std::unique_ptr<AdamW> opt_;
  ResolvedLrSchedule schedule_{};
  Generator dropout_gen_;
  Tensor class_weight_dev_;  // [C] f32 on the model's device (undefined when all 1)
  int64_t steps_per_epoch_ = 0, total_steps_ = 0, step_ = 0;
};

// Writes `model` as a HF folder into `dir` atomically (a sibling temp folder renamed over it):
// weights + config.json, `extra_files` (copied by name), and lmforge_finetune.json = `info`.
void export_classifier(SequenceClassifier& model, const std::string& dir,
                       const std::vector<std::string>& extra_files, const nlohmann::json& info);

}  // namespace lmf
