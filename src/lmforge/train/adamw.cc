#include "lmforge/train/adamw.h"

#include <cmath>

#include "lmforge/backend/cpu/adamw.h"
#include "lmforge/core/error.h"
#if LMF_WITH_CUDA
#include "lmforge/backend/cuda/adamw.h"
#endif

namespace lmf {

namespace {

void check_unit_interval(double v, const char* field) {
  if (!(v >= 0.0 && v < 1.0)) fail("AdamW: ", field, ": expected a value in [0, 1), got ", v);
}

void check_nonneg(double v, const char* field) {
  if (!(std::isfinite(v) && v >= 0.0))
    fail("AdamW: ", field, ": expected a finite value >= 0, got ", v);
}

// A flat buffer argument of step(): contiguous, numel elements, on the optimizer's device.
void check_buffer(const Tensor& t, const char* arg, int64_t numel, Device device, bool f32_only) {
  if (!t.defined()) fail("AdamW::step: ", arg, ": tensor is undefined");
  if (f32_only ? t.dtype() != DType::f32 : (t.dtype() != DType::f32 && t.dtype() != DType::bf16))
    fail("AdamW::step: ", arg, ": expected ", f32_only ? "f32" : "f32 or bf16", ", got ",
         dtype_name(t.dtype()));
  if (t.numel() != numel)
    fail("AdamW::step: ", arg, ": expected ", numel, " elements, got ", t.numel(), " (shape ",
         shape_str(t.shape()), ")");
  if (t.device() != device)
    fail("AdamW::step: ", arg, ": expected a tensor on ", device.str(), ", got ", t.device().str());
  if (!t.is_contiguous()) fail("AdamW::step: ", arg, ": expected a contiguous tensor");
}

}  // namespace

AdamW::AdamW(const AdamWConfig& config, int64_t numel, Device device,
             std::vector<AdamWGroup> groups)
    : config_(config), numel_(numel), device_(device), groups_(std::move(groups)) {
  check_unit_interval(config.beta1, "beta1");
  check_unit_interval(config.beta2, "beta2");
  check_nonneg(config.eps, "eps");
  check_nonneg(config.weight_decay, "weight_decay");
  if (numel < 0) fail("AdamW: numel: expected >= 0, got ", numel);
  if (groups_.empty()) groups_.push_back({0, numel, config.weight_decay, 1.0});

  for (size_t i = 0; i < groups_.size(); i++) {
    const AdamWGroup& g = groups_[i];
    if (g.begin < 0 || g.begin > g.end || g.end > numel)
      fail("AdamW: groups[", i, "]: range [", g.begin, ", ", g.end, ") is not inside [0, ", numel,
           ")");
    if (i > 0 && groups_[i - 1].end > g.begin)
      fail("AdamW: groups[", i, "]: range [", g.begin, ", ", g.end,
           ") overlaps or precedes the previous range ending at ", groups_[i - 1].end);
    if (!(std::isfinite(g.weight_decay) && g.weight_decay >= 0))
      fail("AdamW: groups[", i, "].weight_decay: expected a finite value >= 0, got ",
           g.weight_decay);
    if (!(std::isfinite(g.lr_scale) && g.lr_scale >= 0))
      fail("AdamW: groups[", i, "].lr_scale: expected a finite value >= 0, got ", g.lr_scale);
    if (g.begin == g.end) continue;
    if (!merged_.empty() && merged_.back().end == g.begin &&
        merged_.back().weight_decay == g.weight_decay && merged_.back().lr_scale == g.lr_scale)
      merged_.back().end = g.end;
    else
      merged_.push_back(g);
  }
  exp_avg_ = Tensor::zeros({numel}, DType::f32, device);
  exp_avg_sq_ = Tensor::zeros({numel}, DType::f32, device);
}

void AdamW::step(const Tensor& master, const Tensor& grads, const Tensor& compute_copy, double lr,
                 double grad_scale) {
  check_buffer(master, "master", numel_, device_, true);
  check_buffer(grads, "grads", numel_, device_, true);
  if (compute_copy.defined()) check_buffer(compute_copy, "compute_copy", numel_, device_, false);
  if (!(std::isfinite(lr) && lr >= 0))
    fail("AdamW::step: lr: expected a finite value >= 0, got ", lr);
  if (!(std::isfinite(grad_scale) && grad_scale >= 0))
    fail("AdamW::step: grad_scale: expected a finite value >= 0, got ", grad_scale);

  // Scalars in fp64 as torch computes them from Python floats (_single_tensor_adam), then
  // rounded once to fp32 for the kernel.
  const int64_t t = steps_ + 1;
  const double bias_correction1 = 1.0 - std::pow(config_.beta1, double(t));
  const double bias_correction2 = 1.0 - std::pow(config_.beta2, double(t));
  AdamWScalars s;
  s.beta2 = float(config_.beta2);
  s.one_minus_beta1 = float(1.0 - config_.beta1);
  s.one_minus_beta2 = float(1.0 - config_.beta2);
  s.eps = float(config_.eps);
  s.bias_correction2_sqrt = float(std::sqrt(bias_correction2));
  s.grad_scale = float(grad_scale);

  std::vector<AdamWRange> ranges;
  ranges.reserve(merged_.size());
  for (const AdamWGroup& g : merged_) {
    const double group_lr = lr * g.lr_scale;
    ranges.push_back({g.begin, g.end, float(1.0 - group_lr * g.weight_decay),
                      float(group_lr / bias_correction1)});
  }

  void* copy = compute_copy.defined() ? compute_copy.data_ptr() : nullptr;
  const DType copy_dtype = compute_copy.defined() ? compute_copy.dtype() : DType::f32;
  float* p = static_cast<float*>(master.data_ptr());
  const float* g = static_cast<const float*>(grads.data_ptr());
  float* m = exp_avg_.data<float>();
  float* v = exp_avg_sq_.data<float>();
  if (device_.is_cpu()) {
    cpu::adamw_step(p, g, m, v, copy, copy_dtype, numel_, ranges.data(), int(ranges.size()), s);
  } else {
#if LMF_WITH_CUDA
    cuda::adamw_step(device_.index, p, g, m, v, copy, copy_dtype, numel_, ranges.data(),
                     int(ranges.size()), s);
#else
    fail("AdamW::step: device ", device_.str(), ": this lmforge was built without CUDA");
#endif
  }
  steps_ = t;
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  return {{"exp_avg", exp_avg_},
          {"exp_avg_sq", exp_avg_sq_},
          {"step", Tensor::from_vector<int64_t>({steps_}, {})}};
}

void AdamW::load_state_tensors(const std::map<std::string, Tensor>& state) {
  auto get = [&](const char* name) -> const Tensor& {
    auto it = state.find(name);
    if (it == state.end() || !it->second.defined()) fail("AdamW: state '", name, "': missing");
    return it->second;
  };
  const Tensor& m = get("exp_avg");
  const Tensor& v = get("exp_avg_sq");
  const Tensor& step = get("step");
  auto check_moment = [&](const char* name, const Tensor& t) {
    if (t.dtype() != DType::f32)
      fail("AdamW: state '", name, "': expected f32, got ", dtype_name(t.dtype()));
    if (t.numel() != numel_)
      fail("AdamW: state '", name, "': expected ", numel_, " elements, got ", t.numel());
  };
  check_moment("exp_avg", m);
  check_moment("exp_avg_sq", v);
  if (step.numel() != 1)
    fail("AdamW: state 'step': expected a scalar, got shape ", shape_str(step.shape()));
  const double steps = step.item();
  if (!(steps >= 0 && steps == std::floor(steps) && steps < 9.0e15))
    fail("AdamW: state 'step': expected a non-negative integer, got ", steps);
  exp_avg_.copy_from(m.reshape({numel_}));
  exp_avg_sq_.copy_from(v.reshape({numel_}));
  steps_ = int64_t(steps);
}

}  // namespace lmf
