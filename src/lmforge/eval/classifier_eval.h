// Running a sequence classifier over encoded examples: logits in data order, and the
// evaluation the fine-tuner logs and `lmforge predict` reproduces. Both go through
// classifier_logits with the same batch size and order, so predictions are bit-identical.
#pragma once

#include <cstdint>
#include <vector>

#include "lmforge/data/classification_batches.h"
#include "lmforge/eval/classification_metrics.h"
#include "lmforge/eval/sampling.h"  // argmax, softmax_probs
#include "lmforge/models/task_model.h"

namespace lmf {

// Logits [n][C] (f32, host) of every example in order, batches of `batch_size` (>= 1) right-
// padded with pad_id, no gradient, eval mode (no dropout). `on_batch(done, total)` (optional)
// reports progress after each batch.
std::vector<std::vector<float>> classifier_logits(SequenceClassifier& model,
                                                  const std::vector<EncodedExample>& examples,
                                                  int64_t batch_size, int64_t pad_id,
                                                  void (*on_batch)(int64_t, int64_t) = nullptr);

struct ClassifierEval {
  double loss = 0;  // class-weighted cross-entropy: sum_i w_y l_i / sum_i w_y (HF CrossEntropyLoss(weight))
  ClassificationReport report;
  std::vector<int32_t> predictions;
  int64_t tokens = 0;
  double seconds = 0;
};

// Evaluates labelled examples (every label in [0, C), else lmf::Error). class_weights: empty
// (all 1) or one per class.
ClassifierEval evaluate_classifier(SequenceClassifier& model, const std::vector<EncodedExample>& examples,
                                   int64_t batch_size, int64_t pad_id,
                                   const std::vector<double>& class_weights);

}  // namespace lmf
