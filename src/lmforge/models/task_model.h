// Interfaces of the non-causal task models: a common HF persistence base, masked LMs and
// sequence classifiers. One implementation per family (bert.cc, modernbert.cc, mamba_seq_cls.cc)
// so the MLM trainer, the fine-tuner, `forward` and `predict` share one loop each.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/core/rng.h"
#include "lmforge/core/tensor.h"
#include "lmforge/models/token_batch.h"
#include "lmforge/nn/param_store.h"

namespace lmf {

struct ForwardOptions {
  bool training = false;        // dropout on (needs gen); HF model.train() semantics
  Generator* gen = nullptr;     // dropout stream (required when training with dropout > 0)
  bool recompute = false;       // activation recomputation per block
};

// What every HF-loadable model offers for saving/loading and for `lmforge forward`.
class HfModel {
 public:
  virtual ~HfModel() = default;
  virtual const char* architecture() const = 0;  // HF name, e.g. "BertForMaskedLM"
  virtual ParamStore& params() = 0;
  // config.json contents for saving, and the parameter names not saved (tied heads).
  virtual nlohmann::json hf_config() const = 0;
  virtual std::vector<std::string> hf_skip_on_save() const { return {}; }
  // Names that may be absent from a checkpoint (tied decoders, pooler of a MaskedLM, a new
  // classifier head when fine-tuning from a base checkpoint), and legacy renames.
  virtual std::vector<std::string> hf_optional_on_load() const { return {}; }
  virtual std::map<std::string, std::string> hf_renames_on_load() const { return {}; }
  // HF-style random init of every parameter from `gen` (master values; then sync_compute()).
  virtual void init_weights(Generator& gen) = 0;
  // The architecture's head output for a padded batch as HF returns it, f32 on the store's
  // device: [B, T, V] for MLM heads, [B, C] for sequence classification, [B, T, H]
  // (last_hidden_state) for base models. Pad positions of [B, T, ...] outputs are 0.
  virtual Tensor forward_output(const TokenBatch& batch, const ForwardOptions& options) = 0;
  // Approximate training FLOPs per real token (forward + backward), for MFU.
  virtual double train_flops_per_token(int64_t seq_len) const = 0;
};

class MaskedLM : public HfModel {
 public:
  virtual int64_t vocab_size() const = 0;
  virtual int64_t hidden_size() const = 0;
  // Encoder hidden states of the real tokens [N, H] (stream order of `ragged`), differentiable.
  virtual Tensor encode(const RaggedBatch& ragged, const ForwardOptions& options) = 0;
  // The MLM head's transform (dense -> act -> norm) for selected rows h [M, H] -> [M, H].
  // Only masked rows are passed, so the vocabulary projection runs on M << N rows.
  virtual Tensor mlm_transform(const Tensor& h) = 0;
  // Vocabulary projection: logits = t W^T + b; W [V, H] (tied to the word embeddings), b [V].
  virtual Tensor decoder_weight() const = 0;
  virtual Tensor decoder_bias() const = 0;
};

class SequenceClassifier : public HfModel {
 public:
  virtual int64_t num_labels() const = 0;
  // Class logits [B, num_labels] (f32), differentiable.
  virtual Tensor classify(const TokenBatch& batch, const ForwardOptions& options) = 0;
  // HF config fields for labels: id2label / label2id (written into hf_config()).
  virtual void set_label_names(const std::vector<std::string>& names) = 0;
};

}  // namespace lmf
