// A sequence-classification fine-tuning recipe (configs/finetune-*.toml, docs/finetune.md),
// read into a validated FinetuneConfig. Sections and keys (defaults in brackets):
//
//  [task]  type ["seq-cls"]
//  [run]   dir (--out), device ["auto"]
//  [data]  train, eval (CSV / TSV / JSONL files), format ["auto"], text_column ["text"],
//          text_pair_column [""], label_column ["label"], labels [from the training data],
//          header [true], quoting [true], max_length [128], truncation ["longest_first"],
//          group_by_length [false]
//  [model] init_from (a HF folder; --model) or config (a config.json: fresh init),
//          tokenizer [find_tokenizer_file(init_from)], pooling ["": the family's default]
//  [train] seed [42], lr [2e-5], epochs [3], max_steps [0 = epochs decide],
//          per_device_batch [32], grad_accum [1], eval_batch [per_device_batch],
//          warmup_ratio [0.06], schedule ["linear": linear | cosine | wsd | constant],
//          lr_min [0], wsd_decay_fraction [0.2], weight_decay [0.01], betas [[0.9, 0.999]],
//          eps [1e-8], clip [1.0; <= 0 = off], class_weights ["none" | "balanced" | [w0, w1, ...]],
//          eval_every ["epoch" or a number of optimizer steps], log_every [10], bf16 [true: bf16
//          compute on CUDA], dropout [true: the model's dropout is active while training],
//          recompute [false]
//  [train.early_stopping] metric ["accuracy" | "macro_f1" | "loss"], patience [0 = off],
//          min_delta [0]
//
// Defaults follow the fine-tuning guide (seed 000): AdamW as torch/HF (betas 0.9/0.999, wd
// 0.01 on weights only), linear schedule with warmup ratio 0.06, 3 epochs, clip 1.0, bf16.
// Every error names the recipe file and the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/data/classification_batches.h"
#include "lmforge/data/labelled_reader.h"
#include "lmforge/io/recipe.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/early_stop.h"
#include "lmforge/train/schedules.h"

namespace lmf {

struct ClassWeightsSpec {
  enum class Mode { none, balanced, given } mode = Mode::none;
  std::vector<double> given;  // mode given: one positive weight per label, in label order
};

struct FinetuneConfig {
  std::string task = "seq-cls";
  std::string run_dir;
  std::string device = "auto";

  std::string train_path, eval_path;
  LabelledReadOptions read;
  std::vector<std::string> label_names;  // given; empty = from the training data
  SeqEncodeOptions encode;
  bool group_by_length = false;

  std::string init_from, model_config, tokenizer, pooling;

  uint64_t seed = 42;
  double lr = 2e-5;
  int64_t epochs = 3;
  int64_t max_steps = 0;
  int64_t per_device_batch = 32, grad_accum = 1, eval_batch = 32;
  double warmup_ratio = 0.06;
  LrScheduleKind schedule = LrScheduleKind::linear;
  double lr_min = 0.0, wsd_decay_fraction = 0.2;
  AdamWConfig adamw{0.9, 0.999, 1e-8, 0.01};
  double clip = 1.0;
  ClassWeightsSpec class_weights;
  bool eval_per_epoch = true;
  int64_t eval_every_steps = 0;  // when !eval_per_epoch
  int64_t log_every = 10;
  bool bf16 = true, dropout = true, recompute = false;
  EarlyStopConfig early_stopping;
};

// Reads and validates every key above (recipe errors: "<file>: <key>: ...").
FinetuneConfig parse_finetune_recipe(const Recipe& r);

// The per-class loss weights: none -> all 1; balanced -> n / (k * n_c) (scikit-learn
// compute_class_weight "balanced"); given -> as listed. Throws lmf::Error when a class has no
// training example under balanced, or when the list's length differs from the label count.
std::vector<double> resolve_class_weights(const ClassWeightsSpec& spec, const std::vector<int64_t>& counts,
                                          const std::vector<std::string>& label_names);

// The tokenizer file of a HF model folder: the first of tokenizer.json, tokenizer.model,
// sentencepiece.bpe.model, spiece.model, vocab.txt that exists there ("" when none does).
std::string find_tokenizer_file(const std::string& model_dir);

// The LR schedule of a run of `total_steps` optimizer steps.
LrSchedule finetune_schedule(const FinetuneConfig& c, int64_t total_steps);

}  // namespace lmf
