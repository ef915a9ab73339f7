// AdamW over flat parameter buffers (the ParamStore's fp32 master, fp32 grads, compute copy).
//
// Semantics are torch.optim.AdamW's (decoupled weight decay, bias correction, eps outside the
// sqrt); the per-element arithmetic and its operation order are written out in
// backend/cpu/adamw.h. One fused pass per step reads p, g, m, v and writes p, m, v and the
// compute copy; the clip factor is multiplied into g inside that pass (grad_scale).
//
// Groups: contiguous element ranges [begin, end) with their own weight_decay and lr_scale (the
// group's lr is lr * lr_scale), e.g. no decay on biases, norms and embeddings. Ranges must be
// sorted, disjoint and inside [0, numel); elements outside every range are frozen (p, m, v and
// the copy are left untouched). No groups = one range [0, numel) with config.weight_decay.
// Adjacent ranges with equal settings are merged internally (fewer kernel launches).
//
// Checkpoint state (as torch's optimizer state names): "exp_avg" and "exp_avg_sq" (f32 [numel]
// on device()) and "step" (i64 scalar, cpu) = number of steps taken.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/core/device.h"
#include "lmforge/core/tensor.h"

namespace lmf {

// torch.optim.AdamW defaults (betas (0.9, 0.999), eps 1e-8, weight_decay 0.01). Recipes here
// use beta2 0.95 and weight_decay 0.1 (Mambaoutai, GPT-Neo) or 8e-5 (mmBERT).
struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // used only when no groups are given
};

struct AdamWGroup {
  int64_t begin = 0, end = 0;  // element range [begin, end) of the flat buffers
  double weight_decay = 0.0;
  double lr_scale = 1.0;
};

class AdamW {
 public:
  // State (m, v) is allocated zeroed as f32 [numel] on `device`. Throws lmf::Error
  // "AdamW: <field>: ..." for beta outside [0, 1), eps < 0, weight_decay < 0, numel < 0, a group
  // with begin > end, outside [0, numel), unsorted or overlapping, weight_decay < 0 or
  // lr_scale < 0 (all checks as torch.optim.AdamW's constructor where it has one).
  AdamW(const AdamWConfig& config, int64_t numel, Device device,
        std::vector<AdamWGroup> groups = {});
  // Move-only: a copy would alias the state tensors (Tensor copies share storage).
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;
  AdamW(AdamW&&) = default;
  AdamW& operator=(AdamW&&) = default;

  // One update with learning rate `lr` (>= 0) and gradient multiplier `grad_scale` (>= 0,
  // usually clip_factor(grad_norm(grads), max_norm)); increments the step count first, so the
  // first call uses bias corrections with t = 1.
  //  master: f32, contiguous, numel() elements, on device(); updated in place.
  //  grads:  f32, contiguous, numel() elements, on device(); read only.
  //  compute_copy: undefined (Tensor()), or f32/bf16, contiguous, numel() elements, on device();
  //          overwritten with the updated master (bf16 rounded to nearest even) in the same pass.
  // Throws lmf::Error "AdamW::step: <arg>: ..." on a dtype/size/device/contiguity mismatch, a
  // non-finite or negative lr/grad_scale, or a cuda device in a build without CUDA; on a throw
  // nothing is updated and the step count is unchanged. On CUDA the update is queued on the
  // default stream and step returns before it completes.
  void step(const Tensor& master, const Tensor& grads, const Tensor& compute_copy, double lr,
            double grad_scale = 1.0);

  int64_t steps_taken() const { return steps_; }
  int64_t numel() const { return numel_; }
  Device device() const { return device_; }
  const AdamWConfig& config() const { return config_; }
  const std::vector<AdamWGroup>& groups() const { return groups_; }  // as given (or the default)
  const Tensor& exp_avg() const { return exp_avg_; }
  const Tensor& exp_avg_sq() const { return exp_avg_sq_; }

  // {"exp_avg", m}, {"exp_avg_sq", v} (aliases of the live state, not copies) and
  // {"step", i64 scalar on cpu}.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Restores state saved by state_tensors(): moments f32 with numel() elements (any shape, any
  // device: copied), "step" a scalar holding a non-negative integer (any numeric dtype, torch
  // saves f32). Throws lmf::Error "AdamW: state '<name>': ..." for a missing or mismatched entry;
  // on a throw the state is unchanged.
  void load_state_tensors(const std::map<std::string, Tensor>& state);

 private:
  AdamWConfig config_;
  int64_t numel_ = 0;
  Device device_;
  std::vector<AdamWGroup> groups_;  // as given
  std::vector<AdamWGroup> merged_;  // adjacent equal groups merged, empty ranges dropped
  Tensor exp_avg_, exp_avg_sq_;     // f32 [numel] on device_
  int64_t steps_ = 0;
};

}  // namespace lmf
