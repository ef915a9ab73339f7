#include "lmforge/autograd/tape.h"

#include <deque>

#include "lmforge/autograd/profile.h"
#include "lmforge/backend/kernels.h"

namespace lmf::autograd {

namespace {

struct Node {
  const char* name;
  std::vector<std::shared_ptr<AutogradMeta>> inputs;   // null where no grad is needed
  std::vector<std::shared_ptr<AutogradMeta>> outputs;
  std::vector<Shape> output_shapes;
  std::vector<DType> output_dtypes;
  std::vector<Device> output_devices;
  BackwardFn backward;
};

struct ThreadState {
  // A stack: recompute pushes a nested tape. A deque, so pushing never moves the outer tape
  // while its backward is running.
  std::deque<std::vector<Node>> tapes = std::deque<std::vector<Node>>(1);
  bool grad_enabled = true;
};
thread_local ThreadState g_state;

std::vector<Node>& current_tape() { return g_state.tapes.back(); }

// Adds `g` into meta's gradient: into the param slot, or into (or as) the activation grad.
void accumulate_into(AutogradMeta& meta, const Tensor& g) {
  if (!g.defined()) return;
  if (meta.grad.defined()) {
    if (meta.grad.numel() != g.numel())
      fail("autograd: gradient for '", meta.name, "' has shape ", shape_str(g.shape()),
           ", expected ", shape_str(meta.grad.shape()));
    LMF_DISPATCH(meta.grad, accumulate, meta.grad, g.contiguous());
  } else {
    meta.grad = g;
  }
}

}  // namespace

bool requires_grad(const Tensor& t) { return t.defined() && t.autograd() && t.autograd()->requires_grad; }

void set_requires_grad(Tensor& t, bool on) {
  auto m = std::make_shared<AutogradMeta>();
  m->requires_grad = on;
  t.set_autograd(on ? m : nullptr);
}

void make_param(Tensor& t, const Tensor& grad_slot, std::string name) {
  if (grad_slot.numel() != t.numel())
    fail("autograd::make_param: grad slot of ", name, " has ", grad_slot.numel(), " elements, expected ",
         t.numel());
  auto m = std::make_shared<AutogradMeta>();
  m->requires_grad = true;
  m->is_param = true;
  m->grad = grad_slot.view(t.shape());
  m->name = std::move(name);
  t.set_autograd(m);
}

Tensor grad(const Tensor& t) { return t.autograd() ? t.autograd()->grad : Tensor(); }

Tensor detach(const Tensor& t) {
  Tensor d = t;
  d.set_autograd(nullptr);
  return d;
}

GradContext::GradContext(std::vector<Tensor> grad_outputs, std::vector<std::shared_ptr<AutogradMeta>> inputs)
    : grad_outputs_(std::move(grad_outputs)), inputs_(std::move(inputs)) {}

bool GradContext::needs_grad(int input) const { return inputs_[size_t(input)] != nullptr; }

Tensor GradContext::param_grad_slot(int input) const {
  const auto& m = inputs_[size_t(input)];
  return (m && m->is_param) ? m->grad : Tensor();
}

Tensor GradContext::activation_grad_to_add_into(int input, DType dtype, int64_t numel) const {
  const auto& m = inputs_[size_t(input)];
  if (!m || m->is_param || !m->grad.defined()) return Tensor();
  const Tensor& g = m->grad;
  if (g.dtype() != dtype || g.numel() != numel || !g.is_contiguous()) return Tensor();
  for (const Tensor& out : grad_outputs_)
    if (out.defined() && out.storage() == g.storage()) return Tensor();
  return g;
}

namespace {
// `force`: record even if no input requires grad (a recomputed block may hold parameters).
void record_node(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor*> outputs,
                 BackwardFn backward, bool force) {
  if (!g_state.grad_enabled) return;
  if (profiling()) profile_mark(std::string("fwd:") + name);
  bool any = force;
  for (const auto& t : inputs) any = any || requires_grad(t);
  if (!any) return;
  Node node;
  node.name = name;
  for (const auto& t : inputs) node.inputs.push_back(requires_grad(t) ? t.autograd() : nullptr);
  for (Tensor* out : outputs) {
    auto m = std::make_shared<AutogradMeta>();
    m->requires_grad = true;
    out->set_autograd(m);
    node.outputs.push_back(m);
    node.output_shapes.push_back(out->shape());
    node.output_dtypes.push_back(out->dtype());
    node.output_devices.push_back(out->device());
  }
  node.backward = std::move(backward);
  current_tape().push_back(std::move(node));
}
}  // namespace

void record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor*> outputs,
            BackwardFn backward) {
  record_node(name, inputs, std::move(outputs), std::move(backward), false);
}

namespace {
void run_tape_backward(std::vector<Node>& tape) {
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
    Node& n = *it;
    bool any = false;
    std::vector<Tensor> gouts;
    for (size_t i = 0; i < n.outputs.size(); i++) {
      Tensor g = n.outputs[i]->grad;
      any = any || g.defined();
      gouts.push_back(g);
    }
    if (!any) continue;
    for (size_t i = 0; i < gouts.size(); i++) {
      if (!gouts[i].defined()) {
        gouts[i] = Tensor::zeros(n.output_shapes[i], n.output_dtypes[i], n.output_devices[i]);
      } else if (gouts[i].shape() != n.output_shapes[i]) {
        gouts[i] = gouts[i].contiguous().view(n.output_shapes[i]);
      }
      n.outputs[i]->grad = Tensor();  // activation grads are freed once consumed
    }
    GradContext ctx(std::move(gouts), n.inputs);
    if (profiling()) profile_mark("bwd:(between nodes)");
    std::vector<Tensor> gins = n.backward(ctx);
    if (gins.size() != n.inputs.size())
      fail("autograd: node '", n.name, "' returned ", gins.size(), " gradients for ", n.inputs.size(),
           " inputs");
    for (size_t j = 0; j < gins.size(); j++)
      if (n.inputs[j]) accumulate_into(*n.inputs[j], gins[j]);
    if (profiling()) profile_mark(std::string("bwd:") + n.name);
    n.backward = nullptr;  // release saved tensors early
  }
  tape.clear();
}
}  // namespace

void backward(const Tensor& loss, const Tensor& loss_grad) {
  if (!requires_grad(loss)) fail("autograd::backward: the loss does not require grad (nothing was recorded)");
  if (loss.numel() != 1 && !loss_grad.defined())
    fail("autograd::backward: loss must be a scalar, got ", shape_str(loss.shape()));
  Tensor seed = loss_grad.defined() ? loss_grad : Tensor::full(loss.shape(), 1.0, loss.dtype(), loss.device());
  accumulate_into(*loss.autograd(), seed);
  run_tape_backward(current_tape());
}

void clear_tape() { current_tape().clear(); }
size_t tape_size() { return current_tape().size(); }

bool grad_mode_enabled() { return g_state.grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_state.grad_enabled) { g_state.grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_state.grad_enabled = prev_; }

Tensor recompute(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const char* name) {
  Tensor y;
  {
    NoGradGuard ng;
    y = fn(detach(x));
  }
  Tensor x_saved = detach(x);
  record_node(name, {x}, {&y}, [fn, x_saved](GradContext& ctx) -> std::vector<Tensor> {
    Tensor xin = x_saved;
    set_requires_grad(xin, true);
    g_state.tapes.emplace_back();
    struct Pop {
      ~Pop() { g_state.tapes.pop_back(); }
    } pop;
    Tensor y2 = fn(xin);
    if (!requires_grad(y2)) return {Tensor()};
    backward(y2, ctx.grad_output(0));
    return {xin.autograd()->grad};
  }, /*force=*/true);
  return y;
}

}  // namespace lmf::autograd
