// ParamStore: every parameter of a model in flat buffers (DESIGN.md §4).
//
//   master  [P] f32   the optimizer's copy (trainable params first, then frozen ones)
//   compute [P] bf16  on CUDA (what forward reads); on CPU compute == master (no copy)
//   grads   [T] f32   trainable params only (T <= P); frozen params have no grad slice
//
// Each parameter is a named view (HF tensor names, e.g. "backbone.layers.3.mixer.in_proj.weight").
// Params flagged keep_fp32 (Mamba's A_log, D, dt_proj.bias) read the master view in forward
// even when compute is bf16. Offsets are aligned to 64 elements so vectorised kernels can use
// 16-byte accesses on every parameter.
//
// Contract
//  - add() all specs, then finalize() once (allocates, zero-filled); names are unique.
//  - param(name) returns the forward tensor: it carries the autograd parameter record, so its
//    gradient accumulates into its grads slice. Throws lmf::Error for unknown names.
//  - After writing master values (init, checkpoint load), call sync_compute().
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

struct ParamSpec {
  std::string name;
  Shape shape;
  bool trainable = true;
  bool weight_decay = true;  // false for norms, biases, embeddings (by the model's rules)
  bool keep_fp32 = false;    // compute in fp32 even under bf16
};

// A contiguous range of the flat trainable buffers with one weight-decay setting.
struct DecayRange {
  int64_t begin = 0, end = 0;
  bool weight_decay = true;
};

class ParamStore {
 public:
  ParamStore(Device device, DType compute_dtype);

  void add(const ParamSpec& spec);
  // Marks a parameter frozen/trainable (before finalize), e.g. for LoRA or partial fine-tuning.
  void set_trainable(const std::string& name, bool trainable);
  void finalize();
  bool finalized() const { return finalized_; }

  bool has(const std::string& name) const { return index_.count(name) > 0; }
  const Tensor& param(const std::string& name) const;   // forward view (with autograd)
  // Rows [begin, end) of parameter `name` (dim 0; elements of a 1-D parameter) as a parameter
  // of its own: a forward view whose gradient is added straight into the same rows of the
  // parameter's slot. Lets a model run two matmuls on the halves of a fused projection (Mamba's
  // in_proj) instead of splitting (copying) its activation. Cached: the same tensor each call.
  // Errors: unknown name, store not finalized, a range outside [0, size(0)].
  const Tensor& param_rows(const std::string& name, int64_t begin, int64_t end) const;
  Tensor master(const std::string& name) const;         // f32 master view
  Tensor grad(const std::string& name) const;           // f32 grad view (undefined if frozen)
  const ParamSpec& spec(const std::string& name) const;
  const std::vector<ParamSpec>& specs() const { return specs_; }  // in registration order

  Device device() const { return device_; }
  DType compute_dtype() const { return compute_dtype_; }
  int64_t num_params() const { return total_; }           // elements, all
  int64_t num_trainable() const { return trainable_total_; }  // elements with a grad slice
  const Tensor& flat_master() const { return master_; }
  const Tensor& flat_grads() const { return grads_; }
  // The bf16 compute buffer, or undefined when compute == master (CPU / f32 compute).
  const Tensor& flat_compute() const { return compute_; }
  std::vector<DecayRange> decay_ranges() const;  // over [0, num_trainable())

  void zero_grad();
  void sync_compute();  // compute <- master (cast), after loads / external writes

 private:
  struct Entry {
    int64_t offset = 0;
    Tensor forward;  // the view param() returns
  };
  Device device_;
  DType compute_dtype_;
  std::vector<ParamSpec> specs_;
  std::map<std::string, size_t> index_;
  std::vector<Entry> entries_;
  mutable std::map<std::tuple<std::string, int64_t, int64_t>, Tensor> row_views_;
  Tensor master_, grads_, compute_;
  int64_t total_ = 0, trainable_total_ = 0;
  bool finalized_ = false;
};

}  // namespace lmf
