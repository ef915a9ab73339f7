// Mamba parity with HF transformers on CUDA: the same fixtures as tests/models/test_mamba_hf.cc.
// f32 compute on the GPU must match to 1e-4 like the CPU; bf16 compute (fp32 master weights,
// fp32 residual, fp32 scan state) to 2e-2 for logits and loss.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/matmul.h"
#include "test_util.h"

using namespace lmf;

namespace {
Tensor shifted_targets(const Tensor& ids) {
  auto v = ids.to_float_vector();
  const int64_t B = ids.size(0), L = ids.size(1);
  std::vector<int64_t> t(v.size());
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < L; i++) t[size_t(b * L + i)] = i + 1 < L ? int64_t(v[size_t(b * L + i + 1)]) : -100;
  return Tensor::from_vector<int64_t>(t, {B * L});
}

void check(const std::string& name, DType compute, double tol_out, double tol_grad) {
  const std::string dir = test::source_path("tests/fixtures/" + name);
  LoadedCausalLM l = load_causal_lm(dir, Device::cuda(0), compute);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  Tensor ids = exp.tensor("input_ids").to(Device::cuda(0));
  Tensor h = l.model->forward_hidden(ids, Tensor(), false);
  Tensor W = l.model->lm_head_weight();
  Tensor hh = ops::cast(h.reshape({-1, h.size(-1)}), W.dtype());
  {
    autograd::NoGradGuard ng;
    Tensor logits = ops::cast(ops::matmul(hh, W, false, true), DType::f32);
    EXPECT_LT(test::rel_error(logits.reshape(exp.tensor("logits").shape()), exp.tensor("logits")), tol_out)
        << name << " logits " << dtype_name(compute);
  }
  auto ce = ops::cross_entropy(hh, W, shifted_targets(exp.tensor("input_ids")).to(Device::cuda(0)));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, tol_out * ref) << name;
  autograd::backward(ce.loss);
  for (const auto& spec : l.store->specs()) {
    Tensor mine = l.store->grad(spec.name);
    Tensor r = exp.tensor("grad." + spec.name).reshape(mine.shape());
    EXPECT_LT(test::rel_error(mine, r), tol_grad) << name << " grad " << spec.name << " " << dtype_name(compute);
  }
  // Packed documents.
  autograd::NoGradGuard ng;
  Tensor hp = l.model->forward_hidden(exp.tensor("packed_ids").to(Device::cuda(0)),
                                      exp.tensor("packed_seq_idx").to(Device::cuda(0)), false);
  Tensor lp = ops::cast(ops::matmul(ops::cast(hp.reshape({-1, hp.size(-1)}), W.dtype()), W, false, true), DType::f32);
  EXPECT_LT(test::rel_error(lp.reshape(exp.tensor("packed_logits").shape()), exp.tensor("packed_logits")), tol_out)
      << name << " packed";
}
}  // namespace

TEST(CudaMambaHF, F32MatchesTransformers) {
  check("mamba_tiny_tied", DType::f32, 1e-4, 1e-4);
  check("mamba_tiny_untied", DType::f32, 1e-4, 1e-4);
}

TEST(CudaMambaHF, Bf16MatchesTransformers) {
  check("mamba_tiny_tied", DType::bf16, 2e-2, 5e-2);
  check("mamba_tiny_untied", DType::bf16, 2e-2, 5e-2);
}
