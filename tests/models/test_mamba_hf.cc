// Mamba parity with HF transformers: fixtures made by tools/fixtures/make_mamba_fixtures.py
// (MambaForCausalLM slow path, fp32). Logits, loss and every parameter gradient must match
// to 1e-4 relative; packed documents must equal HF run per document; save -> load round-trips.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/mamba.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
#include "test_util.h"

using namespace lmf;

namespace {

struct Loaded {
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<MambaModel> model;
};

Loaded load(const std::string& dir, Device dev = Device::cpu(), DType compute = DType::f32) {
  Loaded l;
  MambaConfig cfg = parse_mamba_config(config_json::read_json_file(dir + "/config.json"), dir + "/config.json");
  l.store = std::make_unique<ParamStore>(dev, compute);
  l.model = std::make_unique<MambaModel>(cfg, *l.store);
  l.store->finalize();
  load_hf_params(*l.store, dir, l.model->hf_optional_on_load(), l.model->hf_renames_on_load());
  return l;
}

// HF causal-LM loss: logits[:, :-1] predict ids[:, 1:].
Tensor shifted_targets(const Tensor& ids) {
  auto v = ids.to_float_vector();
  const int64_t B = ids.size(0), L = ids.size(1);
  std::vector<int64_t> t(v.size());
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < L; i++) t[size_t(b * L + i)] = i + 1 < L ? int64_t(v[size_t(b * L + i + 1)]) : -100;
  return Tensor::from_vector<int64_t>(t, {B * L});
}

void check_fixture(const std::string& name) {
  const std::string dir = test::source_path("tests/fixtures/" + name);
  Loaded l = load(dir);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  Tensor ids = exp.tensor("input_ids");
  Tensor h = l.model->forward_hidden(ids, Tensor(), false);
  Tensor logits = l.model->logits(h);
  EXPECT_LT(test::rel_error(logits, exp.tensor("logits")), 1e-4) << name << " logits";
  Tensor W = l.model->lm_head_weight();
  auto ce = ops::cross_entropy(h.reshape({-1, h.size(-1)}), W, shifted_targets(ids));
  EXPECT_NEAR(ce.loss.item(), exp.tensor("loss").item(), 1e-4 * std::abs(exp.tensor("loss").item())) << name;
  autograd::backward(ce.loss);
  int checked = 0;
  for (const auto& spec : l.store->specs()) {
    const std::string g = "grad." + spec.name;
    ASSERT_TRUE(exp.contains(g)) << g;
    Tensor mine = l.store->grad(spec.name);
    Tensor ref = exp.tensor(g).reshape(mine.shape());
    EXPECT_LT(test::rel_error(mine, ref), 1e-4) << name << " " << g;
    checked++;
  }
  EXPECT_GT(checked, 10);
  // Packed documents (seq_idx) equal HF run on each document alone.
  {
    autograd::NoGradGuard ng;
    Tensor hp = l.model->forward_hidden(exp.tensor("packed_ids"), exp.tensor("packed_seq_idx"), false);
    EXPECT_LT(test::rel_error(l.model->logits(hp), exp.tensor("packed_logits")), 1e-4) << name << " packed";
  }
  // Save in HF format and load back: identical parameters and logits.
  const std::string out = test::scratch_dir("mamba_save_" + name);
  save_hf_params(*l.store, out, l.model->hf_config(), DType::f32, l.model->hf_skip_on_save());
  Loaded again = load(out);
  EXPECT_EQ(test::max_abs_diff(again.store->flat_master(), l.store->flat_master()), 0.0);
}

}  // namespace

TEST(MambaHF, TiedMatchesTransformers) { check_fixture("mamba_tiny_tied"); }
TEST(MambaHF, UntiedMatchesTransformers) { check_fixture("mamba_tiny_untied"); }

// Recomputed blocks run the unfused layer loop (block = x + mixer(norm(x))); the plain loop fuses
// each residual add with the next norm (ops::add_rms_norm, a kernel of its own with bf16 compute
// and the fp32 residual): both must give the same loss and gradients.
TEST(MambaHF, RecomputeGivesTheSameGradients) {
  const std::string dir = test::source_path("tests/fixtures/mamba_tiny_untied");
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  Tensor ids = exp.tensor("input_ids");
  for (DType compute : {DType::f32, DType::bf16}) {
    std::vector<std::vector<double>> grads;
    std::vector<double> losses;
    for (bool recompute : {false, true}) {
      Loaded l = load(dir, Device::cpu(), compute);
      Tensor h = l.model->forward_hidden(ids, Tensor(), recompute);
      Tensor W = l.model->lm_head_weight();
      auto ce = ops::cross_entropy(ops::cast(h.reshape({-1, h.size(-1)}), W.dtype()), W, shifted_targets(ids));
      autograd::backward(ce.loss);
      grads.push_back(l.store->flat_grads().to_double_vector());
      losses.push_back(ce.loss.item());
    }
    EXPECT_EQ(losses[1], losses[0]) << dtype_name(compute);
    EXPECT_LT(test::rel_error(grads[1], grads[0]), 1e-6) << dtype_name(compute);
    double largest = 0;
    for (double g : grads[0]) largest = std::max(largest, std::abs(g));
    EXPECT_GT(largest, 0.0);
  }
}

TEST(MambaHF, BadConfigsAndCheckpointsFailClearly) {
  auto parse = [](const std::string& text) { return parse_mamba_config(nlohmann::json::parse(text), "m/config.json"); };
  auto msg = [&](const std::string& text) {
    try {
      parse(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(R"({"hidden_size": -3})").find("m/config.json: hidden_size"), std::string::npos);
  EXPECT_NE(msg(R"({"hidden_size": "big"})").find("expected an integer"), std::string::npos);
  EXPECT_NE(msg(R"({"hidden_size": 64, "expand": 2, "intermediate_size": 100})").find("contradicts"), std::string::npos);
  EXPECT_NE(msg(R"({"hidden_act": "relu"})").find("hidden_act"), std::string::npos);
  // A checkpoint whose tensor has the wrong shape for the config.
  const std::string dir = test::source_path("tests/fixtures/mamba_tiny_tied");
  auto cfgj = config_json::read_json_file(dir + "/config.json");
  cfgj["state_size"] = 4;
  ParamStore store(Device::cpu(), DType::f32);
  MambaModel model(parse_mamba_config(cfgj, "x"), store);
  store.finalize();
  try {
    load_hf_params(store, dir);
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mamba_tiny_tied: tensor 'backbone.layers.0.mixer.x_proj.weight'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
}
