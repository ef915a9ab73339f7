// MambaStepDecoder (device-resident recurrent decoding through the decode-step kernels): on a
// CPU fp32 store it equals the host fp32 decoder (MambaDecoder) step by step and after a
// prefill, and the full-sequence forward; bad ids fail clearly and leave the states untouched.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/mamba_decoder.h"
#include "lmforge/models/mamba_step_decoder.h"
#include "lmforge/models/registry.h"
#include "test_util.h"

using namespace lmf;

namespace {

std::vector<int32_t> prompt(int64_t B, int64_t L, int64_t V, uint64_t seed) {
  std::vector<int32_t> ids;
  uint64_t x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < B * L; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ids.push_back(int32_t((x >> 33) % uint64_t(V)));
  }
  return ids;
}

class StepDecoder : public ::testing::TestWithParam<const char*> {};

TEST_P(StepDecoder, MatchesHostDecoderAndFullForward) {
  LoadedCausalLM l = load_causal_lm(test::source_path(std::string("tests/fixtures/") + GetParam()), Device::cpu(),
                                    DType::f32);
  auto& m = dynamic_cast<MambaModel&>(*l.model);
  const int64_t B = 2, L = 7, V = m.vocab_size();
  const auto ids = prompt(B, L, V, 3);
  MambaDecoder host(m, B);
  MambaStepDecoder dev(m, B);
  // Prefill the first 5 tokens, then 2 single steps.
  std::vector<int32_t> head;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < 5; t++) head.push_back(ids[size_t(b * L + t)]);
  EXPECT_LT(test::rel_error(dev.prefill(head, 5), host.prefill(head, 5)), 1e-5);
  Tensor last;
  for (int64_t t = 5; t < L; t++) {
    std::vector<int32_t> col = {ids[size_t(t)], ids[size_t(L + t)]};
    last = dev.step(col);
    EXPECT_LT(test::rel_error(last, host.step(col)), 1e-5) << "position " << t;
  }
  EXPECT_EQ(dev.position(), L);
  // Against the full-sequence forward at the last position.
  autograd::NoGradGuard ng;
  Tensor full = m.logits(m.forward_hidden(Tensor::from_vector(ids, {B, L}), Tensor(), false));
  EXPECT_LT(test::rel_error(last, full.select(1, L - 1).contiguous()), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StepDecoder, ::testing::Values("mamba_tiny_tied", "mamba_tiny_untied"));

TEST(StepDecoderErrors, BadIdsAndBatch) {
  LoadedCausalLM l = load_causal_lm(test::source_path("tests/fixtures/mamba_tiny_tied"), Device::cpu(), DType::f32);
  auto& m = dynamic_cast<MambaModel&>(*l.model);
  EXPECT_THROW(MambaStepDecoder(m, 0), Error);
  MambaStepDecoder dec(m, 1);
  EXPECT_THROW(dec.step({int32_t(m.vocab_size())}), Error);
  EXPECT_THROW(dec.step({1, 2}), Error);
  EXPECT_THROW(dec.prefill({}, 0), Error);
  EXPECT_EQ(dec.position(), 0);
}

}  // namespace
