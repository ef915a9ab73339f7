// MambaDecoder (recurrent generation cache): token-by-token logits equal the full-sequence
// forward (1e-5) and HF's logits (1e-4) on the fixtures; prefill is bit-identical to single
// steps (states and logits); a prompt prefilled then continued step by step equals the full
// forward; biases / untied / other kernel sizes on a random model; bad inputs fail clearly.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/philox.h"
#include "lmforge/eval/sampling.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/mamba_decoder.h"
#include "lmforge/models/registry.h"
#include "test_util.h"

using namespace lmf;

namespace {

LoadedCausalLM load_fixture(const std::string& name) {
  return load_causal_lm(test::source_path("tests/fixtures/" + name), Device::cpu(), DType::f32);
}

MambaModel& mamba_of(LoadedCausalLM& l) { return dynamic_cast<MambaModel&>(*l.model); }

// Full-sequence logits [B, L, V] through MambaModel::forward_hidden.
Tensor full_logits(MambaModel& m, const Tensor& ids) {
  autograd::NoGradGuard ng;
  return m.logits(m.forward_hidden(ids, Tensor(), false));
}

std::vector<int32_t> column(const std::vector<int32_t>& ids, int64_t B, int64_t L, int64_t t) {
  std::vector<int32_t> c;
  for (int64_t b = 0; b < B; b++) c.push_back(ids[size_t(b * L + t)]);
  return c;
}

std::vector<int32_t> as_i32(const Tensor& ids) {
  std::vector<int32_t> v;
  for (float f : ids.to_float_vector()) v.push_back(int32_t(f));
  return v;
}

// Step logits [B, V] at position t vs reference [B, L, V].
Tensor at_position(const Tensor& ref, int64_t t) { return ref.select(1, t).contiguous(); }

void expect_steps_match(MambaModel& model, const Tensor& ids, const Tensor* hf_logits, const std::string& what) {
  const int64_t B = ids.size(0), L = ids.size(1);
  const Tensor full = full_logits(model, ids);
  const auto v = as_i32(ids);
  MambaDecoder dec(model, B);
  for (int64_t t = 0; t < L; t++) {
    Tensor step = dec.step(column(v, B, L, t));
    ASSERT_EQ(step.shape(), (Shape{B, model.vocab_size()}));
    EXPECT_LT(test::rel_error(step, at_position(full, t)), 1e-5) << what << " position " << t;
    if (hf_logits) {
      EXPECT_LT(test::rel_error(step, at_position(*hf_logits, t)), 1e-4) << what << " HF, position " << t;
    }
  }
  EXPECT_EQ(dec.position(), L);
}

}  // namespace

TEST(MambaDecoder, StepsMatchFullForwardAndHF) {
  for (const char* name : {"mamba_tiny_tied", "mamba_tiny_untied"}) {
    LoadedCausalLM l = load_fixture(name);
    auto exp = SafetensorsFile::open(test::source_path(std::string("tests/fixtures/") + name + "/expected.safetensors"));
    Tensor hf = exp.tensor("logits");
    expect_steps_match(mamba_of(l), exp.tensor("input_ids"), &hf, name);
  }
}

TEST(MambaDecoder, PrefillIsBitIdenticalToSteps) {
  LoadedCausalLM l = load_fixture("mamba_tiny_untied");
  MambaModel& m = mamba_of(l);
  auto exp = SafetensorsFile::open(test::source_path("tests/fixtures/mamba_tiny_untied/expected.safetensors"));
  const Tensor ids = exp.tensor("input_ids");
  const int64_t B = ids.size(0), L = ids.size(1);
  const auto v = as_i32(ids);
  MambaDecoder stepped(m, B), whole(m, B), chunked(m, B);
  Tensor last_step;
  for (int64_t t = 0; t < L; t++) last_step = stepped.step(column(v, B, L, t));
  Tensor last_whole = whole.prefill(v, L);
  // Two chunks: 5 then L - 5 tokens per row.
  std::vector<int32_t> first, second;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < L; t++) (t < 5 ? first : second).push_back(v[size_t(b * L + t)]);
  chunked.prefill(first, 5);
  Tensor last_chunked = chunked.prefill(second, L - 5);
  EXPECT_EQ(test::max_abs_diff(last_whole, last_step), 0.0);
  EXPECT_EQ(test::max_abs_diff(last_chunked, last_step), 0.0);
  for (int layer = 0; layer < int(m.config().num_hidden_layers); layer++) {
    EXPECT_EQ(test::max_abs_diff(whole.conv_state(layer), stepped.conv_state(layer)), 0.0) << layer;
    EXPECT_EQ(test::max_abs_diff(whole.ssm_state(layer), stepped.ssm_state(layer)), 0.0) << layer;
    EXPECT_EQ(test::max_abs_diff(chunked.ssm_state(layer), stepped.ssm_state(layer)), 0.0) << layer;
    EXPECT_EQ(whole.conv_state(layer).shape(), (Shape{B, m.config().intermediate_size, m.config().conv_kernel}));
    EXPECT_EQ(whole.ssm_state(layer).shape(), (Shape{B, m.config().intermediate_size, m.config().state_size}));
    EXPECT_GT(test::max_abs_diff(whole.ssm_state(layer), Tensor::zeros(whole.ssm_state(layer).shape(), DType::f32)), 0.0);
  }
  // The logits equal the full forward at the last position.
  EXPECT_LT(test::rel_error(last_whole, at_position(full_logits(m, ids), L - 1)), 1e-5);
}

TEST(MambaDecoder, PrefillThenStepsContinueTheSequence) {
  LoadedCausalLM l = load_fixture("mamba_tiny_tied");
  MambaModel& m = mamba_of(l);
  auto exp = SafetensorsFile::open(test::source_path("tests/fixtures/mamba_tiny_tied/expected.safetensors"));
  const Tensor ids = exp.tensor("input_ids");
  const int64_t B = ids.size(0), L = ids.size(1), P = 7;
  const auto v = as_i32(ids);
  const Tensor full = full_logits(m, ids);
  MambaDecoder dec(m, B);
  std::vector<int32_t> prompt;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < P; t++) prompt.push_back(v[size_t(b * L + t)]);
  EXPECT_LT(test::rel_error(dec.prefill(prompt, P), at_position(full, P - 1)), 1e-5);
  for (int64_t t = P; t < L; t++)
    EXPECT_LT(test::rel_error(dec.step(column(v, B, L, t)), at_position(full, t)), 1e-5) << t;
  // reset() starts over: the same as a fresh decoder.
  dec.reset();
  EXPECT_EQ(dec.position(), 0);
  MambaDecoder fresh(m, B);
  EXPECT_EQ(test::max_abs_diff(dec.prefill(prompt, P), fresh.prefill(prompt, P)), 0.0);
}

TEST(MambaDecoder, GreedyGenerationEqualsFullForwardArgmax) {
  LoadedCausalLM l = load_fixture("mamba_tiny_untied");
  MambaModel& m = mamba_of(l);
  std::vector<int32_t> seq = {5, 17, 42, 3, 60, 8};
  MambaDecoder dec(m, 1);
  Tensor logits = dec.prefill(seq, int64_t(seq.size()));
  std::vector<int32_t> ref = seq;
  for (int i = 0; i < 12; i++) {
    // Reference: the whole sequence through the full forward, argmax at the last position.
    Tensor ids = Tensor::from_vector<int32_t>(ref, {1, int64_t(ref.size())});
    Tensor full = full_logits(m, ids);
    auto last = at_position(full, int64_t(ref.size()) - 1).to_float_vector();
    ref.push_back(argmax(last));
    const int32_t mine = argmax(logits.to_float_vector());
    seq.push_back(mine);
    ASSERT_EQ(mine, ref.back()) << "token " << i;
    logits = dec.step({mine});
  }
}

TEST(MambaDecoder, RandomModelWithBiasesUntiedAndKernel3) {
  MambaConfig c = parse_mamba_config(nlohmann::json{{"vocab_size", 37},
                                                    {"hidden_size", 24},
                                                    {"state_size", 6},
                                                    {"num_hidden_layers", 3},
                                                    {"expand", 2},
                                                    {"conv_kernel", 3},
                                                    {"use_bias", true},
                                                    {"use_conv_bias", false},
                                                    {"tie_word_embeddings", false},
                                                    {"residual_in_fp32", false}},
                                     "random/config.json");
  ParamStore store(Device::cpu(), DType::f32);
  MambaModel m(c, store);
  store.finalize();
  Generator gen{99, 0};
  m.init_weights(gen);
  // init_weights zeroes the biases and sets norms to 1: make them random so they matter.
  uint64_t off = 1000;
  for (const auto& s : store.specs())
    if (s.name.find("bias") != std::string::npos || s.name.find("norm") != std::string::npos) {
      Tensor w = store.master(s.name);
      Tensor r = test::random_tensor(w.shape(), DType::f32, off++, 0.5f, 1.5f);
      w.copy_from(r);
    }
  store.sync_compute();
  std::vector<int32_t> v;
  for (int i = 0; i < 3 * 9; i++) v.push_back(int32_t(philox4x32_10(7, uint64_t(i), 0).v[0] % 37));
  Tensor ids = Tensor::from_vector<int32_t>(v, {3, 9});
  expect_steps_match(m, ids, nullptr, "random model");
}

TEST(MambaDecoder, BadInputsFailClearly) {
  LoadedCausalLM l = load_fixture("mamba_tiny_tied");
  MambaModel& m = mamba_of(l);
  auto msg = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([&] { MambaDecoder d(m, 0); }).find("[mamba_decoder] batch must be >= 1"), std::string::npos);
  MambaDecoder dec(m, 2);
  EXPECT_NE(msg([&] { dec.step({1}); }).find("expected 2 token ids"), std::string::npos);
  EXPECT_NE(msg([&] { dec.step({1, 64}); }).find("token id 64 (row 1, position 0) is outside the vocabulary [0, 64)"),
            std::string::npos);
  EXPECT_NE(msg([&] { dec.step({-1, 3}); }).find("token id -1"), std::string::npos);
  EXPECT_NE(msg([&] { dec.prefill({1, 2}, 0); }).find("length must be >= 1"), std::string::npos);
  EXPECT_EQ(dec.position(), 0);  // nothing ran
  EXPECT_NE(msg([&] { dec.conv_state(2); }).find("layer 2 out of range"), std::string::npos);
  EXPECT_NE(msg([&] { dec.ssm_state(-1); }).find("layer -1 out of range"), std::string::npos);
  // A config that does not match the store's parameters.
  MambaConfig wrong = m.config();
  wrong.state_size = 4;
  EXPECT_NE(msg([&] { MambaDecoder d(wrong, m.params(), 1); }).find("x_proj.weight' has shape"), std::string::npos);
}
