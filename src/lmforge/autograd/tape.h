// Reverse-mode autograd over a per-step tape of coarse nodes (Linear, LayerNorm, Scan, ...).
//
// How it works
//  - An op whose inputs require grad (and while grad mode is on) records one Node on the
//    current thread's tape: which inputs need gradients, its outputs, and a backward closure
//    that saved what it needs.
//  - backward(loss) walks the tape in reverse, hands each node the gradients of its outputs,
//    and accumulates what it returns into its inputs. The tape is cleared afterwards.
//  - Parameter gradients ACCUMULATE (+=) into a preallocated fp32 slot (the ParamStore's flat
//    grad buffer), so micro-batches add up until zero_grad; activation gradients are assigned
//    and freed as soon as the node that consumed them has run (llm.c's rule).
//  - A node may write a parameter's gradient straight into its slot (e.g. a GEMM with beta=1)
//    and return an undefined Tensor for that input: nothing more is done for it.
//
// Contract
//  - Tape and grad mode are thread-local. Nodes are recorded only when grad mode is on AND at
//    least one input requires grad.
//  - backward() requires a scalar (numel 1) floating loss that requires grad; throws lmf::Error
//    otherwise. Gradient shapes must equal their tensor's shape (checked).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

struct AutogradMeta {
  bool requires_grad = false;
  // Gradient accumulated so far (undefined until the first contribution).
  Tensor grad;
  // For parameters: a preallocated fp32 slot that gradients are added into. When defined,
  // `grad` aliases it.
  bool is_param = false;
  std::string name;  // parameter name, for error messages
};

namespace autograd {

bool requires_grad(const Tensor& t);
// Makes `t` a leaf that collects its gradient in `grad` (allocated on first use).
void set_requires_grad(Tensor& t, bool on = true);
// Makes `t` a parameter leaf whose gradient accumulates into `grad_slot` (fp32, same shape).
void make_param(Tensor& t, const Tensor& grad_slot, std::string name);
// The accumulated gradient of a leaf (undefined if none reached it).
Tensor grad(const Tensor& t);
// A tensor sharing t's data but with no autograd record (like torch's detach()).
Tensor detach(const Tensor& t);

// Passed to a node's backward closure.
class GradContext {
 public:
  GradContext(std::vector<Tensor> grad_outputs, std::vector<std::shared_ptr<AutogradMeta>> inputs);
  // Gradient flowing into output i; zeros of the output's shape if none reached it.
  const Tensor& grad_output(int i) const { return grad_outputs_[size_t(i)]; }
  bool needs_grad(int input) const;
  // The fp32 slot of a parameter input (undefined for non-parameters): add into it directly.
  Tensor param_grad_slot(int input) const;
  // The gradient a non-parameter input has collected so far, for a node that can add its own
  // contribution straight into it (a GEMM with beta = 1, an accumulating cast) instead of
  // returning a fresh tensor the tape would then add: the node returns an undefined Tensor for
  // that input. Defined only when that gradient exists, is contiguous, has `dtype` and `numel`
  // elements, and shares no storage with this node's output gradients (which the node still
  // reads); otherwise undefined and the node returns its gradient as usual.
  Tensor activation_grad_to_add_into(int input, DType dtype, int64_t numel) const;

 private:
  std::vector<Tensor> grad_outputs_;
  std::vector<std::shared_ptr<AutogradMeta>> inputs_;
};

// Returns one gradient per input (undefined = none / already written into the param slot).
using BackwardFn = std::function<std::vector<Tensor>(GradContext&)>;

// Records a node if grad mode is on and any input requires grad; then marks every output as
// requiring grad. `inputs` may contain undefined tensors (optional arguments).
void record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor*> outputs,
            BackwardFn backward);

// Runs the tape backward from `loss` (seed gradient 1, or `loss_grad` if given), then clears it.
void backward(const Tensor& loss, const Tensor& loss_grad = Tensor());
// Drops every recorded node (e.g. after an eval forward that recorded by mistake).
void clear_tape();
size_t tape_size();

bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Activation recomputation (checkpointing) of a block: runs fn(x) without recording, keeps only
// x, and during backward re-runs fn on a fresh tape to get the gradients. Parameter gradients
// of the block accumulate into their slots as usual. fn must be deterministic given x (it must
// reseed any dropout from its own counter).
Tensor recompute(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const char* name);

}  // namespace autograd
}  // namespace lmf
