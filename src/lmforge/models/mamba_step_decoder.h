// MambaStepDecoder: recurrent decoding with the model's own weights where they live (CUDA or
// CPU), one token per row per step: the projections are the model's linear ops (cuBLAS GEMVs
// on CUDA, in the compute dtype), the conv and scan updates are the decode-step kernels
// (backend/mamba_decode_kernels.h) over fp32 states. Same recurrence as MambaDecoder (the host
// fp32 reference, models/mamba_decoder.h) and the same dtype flow as MambaModel's forward
// (residual in fp32 when residual_in_fp32), so on a CPU fp32 store both agree to rounding and
// on CUDA bf16 to bf16 precision.
//
// Cost per token: one read of the weights (GEMVs), no host work besides the launch sequence
// and the final [B, V] copy of the logits. The prompt is fed one token per step (prefill ==
// `length` steps).
#pragma once

#include <cstdint>
#include <vector>

#include "lmforge/core/tensor.h"
#include "lmforge/models/mamba.h"

namespace lmf {

class MambaStepDecoder {
 public:
  // `model`'s store must be finalized; the decoder reads its parameters live (no copy), so it
  // must not outlive the model. batch >= 1, else lmf::Error "[mamba_decoder] ...".
  MambaStepDecoder(MambaModel& model, int64_t batch);

  int64_t batch() const { return batch_; }
  int64_t position() const { return position_; }
  void reset();
  // One token per row (ids.size() == batch, each in [0, V)); returns next-token logits [B, V]
  // f32 on the cpu. Throws lmf::Error for a wrong count or an id out of range (states untouched).
  Tensor step(const std::vector<int32_t>& ids);
  // `length` tokens per row, row-major [B, length]; the logits after the last one.
  Tensor prefill(const std::vector<int32_t>& ids, int64_t length);

 private:
  Tensor run_step(const std::vector<int32_t>& ids);
  MambaModel& model_;
  int64_t batch_;
  int64_t position_ = 0;
  std::vector<Tensor> conv_state_, ssm_state_;  // per layer, f32 on the model's device
};

}  // namespace lmf
