// MambaStepDecoder on CUDA: the decode-step kernels and GEMV projections against the host fp32
// decoder on the HF fixtures: fp32 store <= 1e-4, bf16 store <= 2e-2 (bf16 weights and
// activations, fp32 states), over a prefill and 6 single steps.
#include <gtest/gtest.h>

#include "lmforge/models/mamba.h"
#include "lmforge/models/mamba_decoder.h"
#include "lmforge/models/mamba_step_decoder.h"
#include "lmforge/models/registry.h"
#include "test_util.h"

using namespace lmf;

namespace {

void check(const char* fixture, DType compute, double tol) {
  const std::string dir = test::source_path(std::string("tests/fixtures/") + fixture);
  LoadedCausalLM host_l = load_causal_lm(dir, Device::cpu(), DType::f32);
  LoadedCausalLM dev_l = load_causal_lm(dir, Device::cuda(0), compute);
  auto& hm = dynamic_cast<MambaModel&>(*host_l.model);
  auto& dm = dynamic_cast<MambaModel&>(*dev_l.model);
  const int64_t B = 3, V = hm.vocab_size();
  std::vector<int32_t> head;
  for (int64_t i = 0; i < B * 9; i++) head.push_back(int32_t((i * 37 + 11) % V));
  MambaDecoder host(hm, B);
  MambaStepDecoder dev(dm, B);
  EXPECT_LT(test::rel_error(dev.prefill(head, 9), host.prefill(head, 9)), tol) << fixture << " prefill";
  for (int t = 0; t < 6; t++) {
    std::vector<int32_t> col = {int32_t((t * 5 + 1) % V), int32_t((t * 7 + 2) % V), int32_t((t * 3 + 4) % V)};
    EXPECT_LT(test::rel_error(dev.step(col), host.step(col)), tol) << fixture << " step " << t;
  }
}

TEST(CudaMambaStepDecoder, Fp32MatchesHostDecoder) {
  check("mamba_tiny_tied", DType::f32, 1e-4);
  check("mamba_tiny_untied", DType::f32, 1e-4);
}

TEST(CudaMambaStepDecoder, Bf16MatchesHostDecoder) {
  check("mamba_tiny_tied", DType::bf16, 2e-2);
  check("mamba_tiny_untied", DType::bf16, 2e-2);
}

}  // namespace
