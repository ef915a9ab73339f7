#include "lmforge/models/mamba.h"

#include <cmath>
#include <tuple>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/philox.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/mamba_ops.h"
#include "lmforge/ops/mask.h"
#include "lmforge/ops/norm.h"
#include "lmforge/ops/slice.h"

namespace lmf {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool mamba_param_decays(const std::string& n) {
  return !(ends_with(n, ".bias") || ends_with(n, "norm.weight") || ends_with(n, "norm_f.weight") ||
           ends_with(n, ".A_log") || ends_with(n, ".D") || ends_with(n, "embeddings.weight"));
}

std::string MambaModel::p(int layer, const std::string& suffix) const {
  return "backbone.layers." + std::to_string(layer) + "." + suffix;
}

MambaModel::MambaModel(const MambaConfig& c, ParamStore& store) : cfg_(c), store_(store) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, N = c.state_size, R = c.time_step_rank,
                K = c.conv_kernel;
  auto add = [&](const std::string& name, Shape shape, bool keep_fp32 = false) {
    store_.add(ParamSpec{name, std::move(shape), true, mamba_param_decays(name), keep_fp32});
  };
  add("backbone.embeddings.weight", {c.vocab_size, H});
  for (int l = 0; l < c.num_hidden_layers; l++) {
    add(p(l, "norm.weight"), {H});
    add(p(l, "mixer.in_proj.weight"), {2 * I, H});
    if (c.use_bias) add(p(l, "mixer.in_proj.bias"), {2 * I});
    add(p(l, "mixer.conv1d.weight"), {I, 1, K});
    if (c.use_conv_bias) add(p(l, "mixer.conv1d.bias"), {I});
    add(p(l, "mixer.x_proj.weight"), {R + 2 * N, I});
    add(p(l, "mixer.dt_proj.weight"), {I, R});
    add(p(l, "mixer.dt_proj.bias"), {I}, true);
    add(p(l, "mixer.A_log"), {I, N}, true);
    add(p(l, "mixer.D"), {I}, true);
    add(p(l, "mixer.out_proj.weight"), {H, I});
    if (c.use_bias) add(p(l, "mixer.out_proj.bias"), {H});
  }
  add("backbone.norm_f.weight", {H});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, H});
}

std::vector<std::string> MambaModel::hf_tensor_names() const {
  std::vector<std::string> names;
  for (const auto& s : store_.specs()) names.push_back(s.name);
  return names;
}

void MambaModel::init_weights(Generator& gen) {
  const MambaConfig& c = cfg_;
  auto fill_host = [&](const std::string& name, auto&& value_of) {
    Tensor m = store_.master(name);
    std::vector<float> v(size_t(m.numel()));
    for (size_t i = 0; i < v.size(); i++) v[i] = value_of(int64_t(i));
    m.copy_from(Tensor::from_vector<float>(v, m.shape()));
  };
  auto normal = [&](const std::string& name, float std) {
    uint64_t off = gen.next_offset();
    fill_host(name, [&](int64_t i) { return std * philox_normal(gen.seed, off, uint64_t(i)); });
  };
  auto uniform = [&](const std::string& name, float bound) {
    uint64_t off = gen.next_offset();
    fill_host(name, [&](int64_t i) { return bound * (2 * philox_uniform(gen.seed, off, uint64_t(i)) - 1); });
  };
  auto constant = [&](const std::string& name, float v) { fill_host(name, [&](int64_t) { return v; }); };
  const float range = float(c.initializer_range);
  normal("backbone.embeddings.weight", range);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    constant(p(l, "norm.weight"), 1.f);
    normal(p(l, "mixer.in_proj.weight"), range);
    if (c.use_bias) constant(p(l, "mixer.in_proj.bias"), 0.f);
    // Kaiming-uniform(a = sqrt(5)) default of nn.Conv1d / nn.Linear: bound = 1 / sqrt(fan_in).
    uniform(p(l, "mixer.conv1d.weight"), 1.f / std::sqrt(float(c.conv_kernel)));
    if (c.use_conv_bias) uniform(p(l, "mixer.conv1d.bias"), 1.f / std::sqrt(float(c.conv_kernel)));
    normal(p(l, "mixer.x_proj.weight"), range);
    // dt_proj: U(-s, s) with s = R^-0.5 * time_step_scale ("random") or the constant s.
    const float s = float(std::pow(double(c.time_step_rank), -0.5) * c.time_step_scale);
    if (c.time_step_init_scheme == "constant")
      constant(p(l, "mixer.dt_proj.weight"), s);
    else
      uniform(p(l, "mixer.dt_proj.weight"), s);
    // dt bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max], floored.
    {
      uint64_t off = gen.next_offset();
      const double lo = std::log(c.time_step_min), hi = std::log(c.time_step_max);
      fill_host(p(l, "mixer.dt_proj.bias"), [&](int64_t i) {
        double dt = std::exp(philox_uniform(gen.seed, off, uint64_t(i)) * (hi - lo) + lo);
        dt = std::max(dt, c.time_step_floor);
        return float(dt + std::log(-std::expm1(-dt)));
      });
    }
    // S4D-real: A_log[d, n] = log(n + 1).
    fill_host(p(l, "mixer.A_log"), [&](int64_t i) { return float(std::log(double(i % c.state_size + 1))); });
    constant(p(l, "mixer.D"), 1.f);
    float out_std = range;
    if (c.rescale_prenorm_residual) out_std /= float(std::sqrt(double(c.num_hidden_layers)));
    normal(p(l, "mixer.out_proj.weight"), out_std);
    if (c.use_bias) constant(p(l, "mixer.out_proj.bias"), 0.f);
  }
  constant("backbone.norm_f.weight", 1.f);
  if (!c.tie_word_embeddings) normal("lm_head.weight", range);
  store_.sync_compute();
}

Tensor MambaModel::mixer(int l, const Tensor& xn, const Tensor& seq_idx, const Tensor& mask) {
  const MambaConfig& c = cfg_;
  const int64_t I = c.intermediate_size, N = c.state_size, R = c.time_step_rank, K = c.conv_kernel;
  auto P = [&](const char* s) { return store_.param(p(l, s)); };
  auto opt = [&](const char* s) { return store_.has(p(l, s)) ? store_.param(p(l, s)) : Tensor(); };
  // in_proj's two halves as two matmuls on row views of the weight (gradients land in the
  // weight's slot rows): the same products as HF's in_proj + chunk(2), without copying the
  // [B, L, 2I] activation into two halves and back in the backward.
  auto half = [&](int64_t h) {
    const std::string w = p(l, "mixer.in_proj.weight"), b = p(l, "mixer.in_proj.bias");
    return ops::linear(xn, store_.param_rows(w, h * I, (h + 1) * I),
                       store_.has(b) ? store_.param_rows(b, h * I, (h + 1) * I) : Tensor());
  };
  const std::vector<Tensor> uz = {half(0), half(1)};  // [B, L, I] each
  Tensor conv_w = P("mixer.conv1d.weight").view({I, K});
  // HF slow_forward masks u before the conv and again after SiLU(conv) (PARITY.md §1 steps 2-3).
  Tensor u_in = mask.defined() ? ops::mul_rows(uz[0], mask) : uz[0];
  Tensor u = ops::causal_conv1d(u_in, conv_w, opt("mixer.conv1d.bias"), seq_idx, /*silu=*/true);
  if (mask.defined()) u = ops::mul_rows(u, mask);
  Tensor xdbl = ops::linear(u, P("mixer.x_proj.weight"), Tensor());  // [B, L, R + 2N]
  auto parts = ops::split_last(xdbl, {R, N, N});
  Tensor delta = ops::linear(parts[0], P("mixer.dt_proj.weight"), Tensor());  // bias added in the scan
  ops::SelectiveScanArgs a;
  a.u = u;
  a.delta = delta;
  a.A_log = P("mixer.A_log");
  a.Bm = parts[1];
  a.Cm = parts[2];
  a.Dskip = P("mixer.D");
  a.z = uz[1];
  a.delta_bias = P("mixer.dt_proj.bias");
  a.seq_idx = seq_idx;
  a.delta_softplus = true;
  Tensor y = ops::selective_scan(a);
  return ops::linear(y, P("mixer.out_proj.weight"), opt("mixer.out_proj.bias"));
}

Tensor MambaModel::block_norm(int l, const Tensor& x) {
  // HF MambaBlock: the norm sees the residual cast to the compute dtype; the sum is formed in
  // the residual dtype (fp32 when residual_in_fp32).
  const Tensor& w = store_.param(p(l, "norm.weight"));
  return ops::rms_norm(x, w, float(cfg_.layer_norm_epsilon), w.dtype());
}

Tensor MambaModel::block(int l, const Tensor& x, const Tensor& seq_idx, const Tensor& mask) {
  return ops::add(x, mixer(l, block_norm(l, x), seq_idx, mask));  // f32 + bf16: no cast kernel
}

Tensor MambaModel::forward_hidden(const Tensor& ids, const Tensor& seq_idx, bool recompute_blocks) {
  return run(ids, seq_idx, Tensor(), recompute_blocks);
}

Tensor MambaModel::forward_hidden_masked(const Tensor& ids, const Tensor& attention_mask, const Tensor& seq_idx,
                                         bool recompute_blocks) {
  Tensor mask;
  if (attention_mask.defined()) {
    if (attention_mask.shape() != ids.shape())
      fail("[mamba] attention_mask must have the shape of input ids ", shape_str(ids.shape()), ", got ",
           shape_str(attention_mask.shape()));
    const DType t = attention_mask.dtype();
    if (t != DType::i32 && t != DType::i64 && t != DType::f32)
      fail("[mamba] attention_mask must be i32, i64 or f32, got ", dtype_name(t));
    mask = ops::cast(attention_mask.to(store_.device()), DType::f32);
  }
  return run(ids, seq_idx, mask, recompute_blocks);
}

Tensor MambaModel::run(const Tensor& ids, const Tensor& seq_idx, const Tensor& mask, bool recompute_blocks) {
  if (ids.dtype() != DType::i32 && ids.dtype() != DType::i64)
    fail("[mamba] input ids must be i32 or i64, got ", dtype_name(ids.dtype()));
  if (ids.dim() != 2) fail("[mamba] input ids must be [batch, length], got ", shape_str(ids.shape()));
  Tensor x = ops::embedding(ids, store_.param("backbone.embeddings.weight"));
  const DType compute = x.dtype();
  const DType residual = cfg_.residual_in_fp32 && compute != DType::f64 ? DType::f32 : compute;
  x = ops::cast(x, residual);
  const int layers = cfg_.num_hidden_layers;
  if (recompute_blocks && autograd::grad_mode_enabled()) {
    for (int l = 0; l < layers; l++)
      x = autograd::recompute([this, l, seq_idx, mask](const Tensor& in) { return block(l, in, seq_idx, mask); }, x,
                              "mamba_block");
  } else {
    // Block l's residual add and block l+1's norm run as one op (one pass over the residual
    // each way); the last block's sum goes to the final norm.
    Tensor xn = layers > 0 ? block_norm(0, x) : Tensor();
    for (int l = 0; l < layers; l++) {
      Tensor out = mixer(l, xn, seq_idx, mask);
      if (l + 1 == layers) {
        x = ops::add(x, out);
        break;
      }
      const Tensor& w = store_.param(p(l + 1, "norm.weight"));
      std::tie(x, xn) = ops::add_rms_norm(x, out, w, float(cfg_.layer_norm_epsilon), w.dtype());
    }
  }
  return ops::rms_norm(x, store_.param("backbone.norm_f.weight"), float(cfg_.layer_norm_epsilon));
}

double MambaModel::train_flops_per_token(int64_t) const {
  const MambaConfig& c = cfg_;
  const double H = double(c.hidden_size), I = double(c.intermediate_size), N = double(c.state_size),
               R = double(c.time_step_rank), K = double(c.conv_kernel), V = double(c.vocab_size);
  const double per_layer_matmul = H * 2 * I + I * (R + 2 * N) + R * I + I * H;
  const double matmul_params = c.num_hidden_layers * per_layer_matmul + V * H;
  const double per_layer_other = I * N * 9 + I * K * 2;  // scan + conv, forward
  return 6 * matmul_params + 3 * c.num_hidden_layers * per_layer_other;
}

Tensor MambaModel::lm_head_weight() const {
  return store_.param(cfg_.tie_word_embeddings ? "backbone.embeddings.weight" : "lm_head.weight");
}

Tensor MambaModel::logits(const Tensor& hidden) const {
  Tensor w = lm_head_weight();
  return ops::cast(ops::linear(ops::cast(hidden, w.dtype()), w, Tensor()), DType::f32);
}

}  // namespace lmf
