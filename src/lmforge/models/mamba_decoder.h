// MambaDecoder: token-by-token inference for MambaForCausalLM with the recurrent cache, so each
// new token costs the same whatever the length of the text before it (HF MambaCache; PARITY.md
// §1 "Generation cache").
//
// Per layer it keeps
//   conv state [B, I, K] f32   the last K inputs u of the causal conv (newest in column K-1)
//   ssm state  [B, I, N] f32   h of the selective scan
// and one step for a token per row is
//   x = emb[id] -> per layer: xn = RMSNorm(x) (HF MambaRMSNorm), (u | z) = in_proj(xn),
//   conv state rolled left by 1 with u in the last column, c = SiLU(sum_j state[:, :, j] w[:, 0, j] + b),
//   (dt_raw | B | C) = x_proj(c), dt = softplus(dt_proj(dt_raw) + dt_bias), A = -exp(A_log),
//   h = exp(dt A) h + dt B c, y = (h . C + D c) SiLU(z), x += out_proj(y)
//   -> norm_f -> logits = lm_head(x)  [B, V] f32.
// That is HF's slow-path decode step (MambaMixer.slow_forward with a cache) for an fp32 model;
// the prefill (prompt) runs the same per-token recurrence, which is what HF's prefill computes
// (its conv state = the last K inputs zero-padded on the left, its ssm state = the final h).
//
// Where the work runs: on the host, always, in fp32 (the scan, conv and norms accumulate in
// fp64; projections in fp32 with 16 partial sums, like an sgemm), parallel over channels with
// OpenMP. The weights are the model's fp32 master weights, taken at construction: a CPU store
// is read in place (no copy), a CUDA store is copied to the host ONCE (the host then holds a
// full fp32 copy of the model). Build a new decoder after changing the model's weights.
//
// Determinism: every output element is a sum in a fixed order, independent of how many tokens
// are processed together and of the thread count, so prefill(ids) leaves bit-identical states and
// logits to feeding the same ids one step() at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "lmforge/core/tensor.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/mamba_config.h"
#include "lmforge/nn/param_store.h"

namespace lmf {

class MambaDecoder {
 public:
  // `store` must be finalized and hold the parameters MambaModel registers for `config`
  // (any device, any compute dtype: the f32 master weights are used). batch >= 1.
  // Throws lmf::Error "[mamba_decoder] ..." for a bad batch size or a missing parameter.
  MambaDecoder(const MambaConfig& config, const ParamStore& store, int64_t batch);
  MambaDecoder(MambaModel& model, int64_t batch);

  int64_t batch() const { return batch_; }
  int64_t vocab_size() const { return cfg_.vocab_size; }
  const MambaConfig& config() const { return cfg_; }
  // Tokens fed per row since construction or the last reset().
  int64_t position() const { return position_; }

  // Zeroes every state (a new sequence in every row).
  void reset();

  // One token per row: ids has batch() entries in [0, vocab_size()). Advances the states and
  // returns the next-token logits [B, V] f32 on the cpu (a fresh tensor).
  // Throws lmf::Error for a wrong count or an id out of range (states untouched then).
  Tensor step(const std::vector<int32_t>& ids);

  // `length` tokens per row, ids row-major [B, length] (length >= 1), continuing from the
  // current states (call reset() first for a fresh prompt). Returns the logits after the last
  // token [B, V] f32 cpu. Equivalent to `length` step() calls, bit for bit, but the
  // projections read each weight row once for all tokens and the LM head runs once.
  Tensor prefill(const std::vector<int32_t>& ids, int64_t length);

  // The cache of layer `layer`: conv [B, I, K] and ssm [B, I, N], f32 cpu (views of the live
  // state: they change with the next step). Throws lmf::Error for a layer out of range.
  const Tensor& conv_state(int layer) const;
  const Tensor& ssm_state(int layer) const;

 private:
  struct Layer {
    Tensor norm_w, in_w, in_b, conv_w, conv_b, x_w, dt_w, dt_b, D, out_w, out_b;
    std::vector<double> A;  // -exp(A_log) [I, N]
    Tensor conv_state, ssm_state;
  };
  Tensor run(const std::vector<int32_t>& ids, int64_t length);
  void run_layer(Layer& layer, std::vector<float>& x, int64_t length);
  void check_ids(const std::vector<int32_t>& ids, int64_t length) const;

  MambaConfig cfg_;
  int64_t batch_ = 0;
  int64_t position_ = 0;
  Tensor embed_, norm_f_, lm_head_;
  std::vector<Layer> layers_;
};

}  // namespace lmf
