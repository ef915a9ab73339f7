#include "lmforge/models/mamba_step_decoder.h"

#include <string>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/backend/mamba_decode_kernels.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/norm.h"
#include "lmforge/ops/slice.h"

namespace lmf {

namespace {
std::string layer_name(int l, const char* s) { return "backbone.layers." + std::to_string(l) + "." + s; }
}  // namespace

MambaStepDecoder::MambaStepDecoder(MambaModel& model, int64_t batch) : model_(model), batch_(batch) {
  if (batch < 1) fail("[mamba_decoder] batch must be >= 1, got ", batch);
  if (!model.params().finalized()) fail("[mamba_decoder] the parameter store is not finalized");
  const MambaConfig& c = model.config();
  const Device dev = model.params().device();
  for (int l = 0; l < c.num_hidden_layers; l++) {
    conv_state_.push_back(Tensor::zeros({batch, c.intermediate_size, c.conv_kernel}, DType::f32, dev));
    ssm_state_.push_back(Tensor::zeros({batch, c.intermediate_size, c.state_size}, DType::f32, dev));
  }
}

void MambaStepDecoder::reset() {
  for (auto& t : conv_state_) t.zero_();
  for (auto& t : ssm_state_) t.zero_();
  position_ = 0;
}

Tensor MambaStepDecoder::step(const std::vector<int32_t>& ids) { return prefill(ids, 1); }

Tensor MambaStepDecoder::prefill(const std::vector<int32_t>& ids, int64_t length) {
  const int64_t V = model_.vocab_size();
  if (length < 1) fail("[mamba_decoder] prefill: length must be >= 1, got ", length);
  if (int64_t(ids.size()) != batch_ * length)
    fail("[mamba_decoder] expected ", batch_ * length, " token ids (batch ", batch_, " x length ", length, "), got ",
         ids.size());
  for (size_t i = 0; i < ids.size(); i++)
    if (ids[i] < 0 || ids[i] >= V)
      fail("[mamba_decoder] token id ", ids[i], " (row ", int64_t(i) / length, ", position ", int64_t(i) % length,
           ") is outside the vocabulary [0, ", V, ")");
  Tensor logits;
  std::vector<int32_t> col(static_cast<size_t>(batch_));
  for (int64_t t = 0; t < length; t++) {
    for (int64_t b = 0; b < batch_; b++) col[size_t(b)] = ids[size_t(b * length + t)];
    logits = run_step(col);
  }
  return logits;
}

Tensor MambaStepDecoder::run_step(const std::vector<int32_t>& ids) {
  autograd::NoGradGuard no_grad;
  const MambaConfig& c = model_.config();
  ParamStore& store = model_.params();
  const Device dev = store.device();
  const int64_t B = batch_, I = c.intermediate_size, R = c.time_step_rank, K = c.conv_kernel;
  auto P = [&](int l, const char* s) { return store.param(layer_name(l, s)); };
  auto opt = [&](int l, const char* s) {
    const std::string n = layer_name(l, s);
    return store.has(n) ? store.param(n) : Tensor();
  };
  Tensor id_t = Tensor::from_vector(ids, {B}).to(dev);
  Tensor x = ops::embedding(id_t, store.param("backbone.embeddings.weight"));  // [B, H] compute dtype
  const DType compute = x.dtype();
  const DType residual = c.residual_in_fp32 && compute != DType::f64 ? DType::f32 : compute;
  x = ops::cast(x, residual);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    Tensor xn = ops::rms_norm(x, P(l, "norm.weight"), float(c.layer_norm_epsilon), compute);
    Tensor uz = ops::linear(xn, P(l, "mixer.in_proj.weight"), opt(l, "mixer.in_proj.bias")).contiguous();  // [B, 2I]
    Tensor conv_in = Tensor::empty({B, I}, uz.dtype(), dev);
    Tensor conv_w = P(l, "mixer.conv1d.weight").view({I, K});
    LMF_DISPATCH(uz, mamba_conv_step, uz, conv_state_[size_t(l)], conv_w, opt(l, "mixer.conv1d.bias"), conv_in);
    Tensor xdbl = ops::linear(conv_in, P(l, "mixer.x_proj.weight"), Tensor()).contiguous();  // [B, R + 2N]
    Tensor dt = ops::linear(ops::slice_last(xdbl, 0, R), P(l, "mixer.dt_proj.weight"), Tensor()).contiguous();
    Tensor y = Tensor::empty({B, I}, uz.dtype(), dev);
    LMF_DISPATCH(uz, mamba_ssm_step, conv_in, dt, store.master(layer_name(l, "mixer.dt_proj.bias")),
                 store.master(layer_name(l, "mixer.A_log")), xdbl, R, store.master(layer_name(l, "mixer.D")), uz,
                 ssm_state_[size_t(l)], y);
    Tensor out = ops::linear(y, P(l, "mixer.out_proj.weight"), opt(l, "mixer.out_proj.bias"));
    x = ops::add(x, ops::cast(out, x.dtype()));
  }
  Tensor h = ops::rms_norm(x, store.param("backbone.norm_f.weight"), float(c.layer_norm_epsilon));
  position_ += 1;
  return model_.logits(h).to(Device::cpu()).contiguous();
}

}  // namespace lmf
