// `bert` family parity with HF transformers: fixtures made by tools/fixtures/make_bert_fixtures.py
// (transformers 5.x, fp32, eager attention, eval mode). On the CPU in fp32, logits (real
// positions), loss and every parameter gradient must match to 1e-4 relative; the base model's
// output must equal HF's last hidden state; save -> load round-trips bit-exactly with HF's
// tensor names and config keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/bert.h"
#include "lmforge/models/config_json.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/linear.h"
#include "test_util.h"

using namespace lmf;

namespace {

std::string fixture_dir(const std::string& name) { return test::source_path("tests/fixtures/" + name); }

TokenBatch fixture_batch(const SafetensorsFile& exp) {
  TokenBatch b;
  b.input_ids = exp.tensor("input_ids");
  b.attention_mask = exp.tensor("attention_mask");
  b.token_type_ids = exp.tensor("token_type_ids");
  return b;
}

// The values of a [B, T, X] tensor at the positions where mask == 1 (or == 0), row-major.
std::vector<double> at_mask(const Tensor& x, const Tensor& mask, int64_t want) {
  const auto v = x.to_double_vector();
  const auto m = mask.to_double_vector();
  const size_t X = size_t(x.size(2));
  std::vector<double> out;
  for (size_t i = 0; i < m.size(); i++)
    if (int64_t(m[i]) == want) out.insert(out.end(), v.begin() + long(i * X), v.begin() + long((i + 1) * X));
  return out;
}

// Every parameter gradient equals HF's d loss / d param of the same name. Returns the largest
// relative error (printed with the other parity numbers).
double expect_grads_match(const ParamStore& store, const SafetensorsFile& exp, const std::string& name) {
  int checked = 0;
  double worst = 0;
  for (const auto& spec : store.specs()) {
    const std::string g = "grad." + spec.name;
    if (!exp.contains(g)) {
      ADD_FAILURE() << name << ": no " << g << " in the fixture";
      continue;
    }
    const std::string key_bias = "attention.self.key.bias";
    if (spec.name.size() > key_bias.size() && spec.name.ends_with(key_bias)) {
      // The key bias adds q.b_k to a whole softmax row: its true gradient is exactly 0, and
      // both sides hold rounding noise (~1e-9 in HF). Compare against the key weight's scale.
      const std::string kw = spec.name.substr(0, spec.name.size() - 4) + "weight";
      const Tensor zero = Tensor::zeros(spec.shape, DType::f32);
      const double scale = test::max_abs_diff(exp.tensor("grad." + kw),
                                              Tensor::zeros(exp.tensor("grad." + kw).shape(), DType::f32));
      EXPECT_LT(test::max_abs_diff(store.grad(spec.name), zero), 1e-5 * scale) << name << " " << g;
      EXPECT_LT(test::max_abs_diff(exp.tensor(g).reshape(spec.shape), zero), 1e-5 * scale)
          << name << " " << g;
    } else {
      const double e = test::rel_error(store.grad(spec.name), exp.tensor(g).reshape(spec.shape));
      EXPECT_LT(e, 1e-4) << name << " " << g;
      worst = std::max(worst, e);
    }
    checked++;
  }
  EXPECT_GT(checked, 30) << name;
  return worst;
}

void report(const std::string& name, double logits, double loss, double grads) {
  std::printf("[parity] %s: logits rel %.2e, loss rel %.2e, worst grad rel %.2e\n", name.c_str(), logits,
              loss, grads);
}

void check_mlm(const std::string& name, const char* arch) {
  const std::string dir = fixture_dir(name);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, {});
  EXPECT_TRUE(l.unused_tensors.empty()) << name;
  EXPECT_TRUE(l.missing_tensors.empty()) << name;
  ASSERT_EQ(std::string(l.model->architecture()), arch);
  auto* mlm = dynamic_cast<MaskedLM*>(l.model.get());
  ASSERT_NE(mlm, nullptr);
  TokenBatch batch = fixture_batch(exp);
  const Tensor mask = exp.tensor("attention_mask");
  double logits_err = 0;
  {
    autograd::NoGradGuard ng;
    Tensor logits = l.model->forward_output(batch, {});
    ASSERT_EQ(logits.shape(), exp.tensor("logits").shape());
    logits_err = test::rel_error(at_mask(logits, mask, 1), at_mask(exp.tensor("logits"), mask, 1));
    EXPECT_LT(logits_err, 1e-4) << name;
    for (double v : at_mask(logits, mask, 0)) ASSERT_EQ(v, 0.0) << name << ": pad rows must be 0";
  }
  // The MLM loss over the labelled real tokens, through the interface the MLM trainer uses.
  RaggedBatch r = unpad(batch);
  const auto labels = exp.tensor("labels").to_double_vector();
  std::vector<int64_t> targets(size_t(r.num_tokens()));
  for (int64_t b = 0, i = 0; b < r.batch; b++)
    for (; i < r.cu_seqlens[size_t(b + 1)]; i++)
      targets[size_t(i)] = int64_t(labels[size_t(b * r.seq_len + r.column[size_t(i)])]);
  Tensor h = mlm->encode(r, {});
  Tensor logits = ops::linear(mlm->mlm_transform(h), mlm->decoder_weight(), mlm->decoder_bias());
  auto ce = ops::cross_entropy_logits(logits, Tensor::from_vector<int64_t>(targets, {r.num_tokens()}));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, 1e-4 * std::abs(ref)) << name;
  const double loss_err = std::abs(ce.loss.item() - ref) / std::abs(ref);
  autograd::backward(ce.loss);
  report(name, logits_err, loss_err, expect_grads_match(*l.store, exp, name));
}

void check_classifier(const std::string& name, const char* arch) {
  const std::string dir = fixture_dir(name);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, {});
  EXPECT_TRUE(l.unused_tensors.empty()) << name;
  EXPECT_TRUE(l.missing_tensors.empty()) << name;
  ASSERT_EQ(std::string(l.model->architecture()), arch);
  auto* cls = dynamic_cast<SequenceClassifier*>(l.model.get());
  ASSERT_NE(cls, nullptr);
  EXPECT_EQ(cls->num_labels(), 3);
  EXPECT_EQ(l.model->hf_config()["id2label"]["2"], "positive");
  Tensor logits = cls->classify(fixture_batch(exp), {});
  ASSERT_EQ(logits.shape(), (Shape{4, 3}));
  const double logits_err = test::rel_error(logits, exp.tensor("logits"));
  EXPECT_LT(logits_err, 1e-4) << name;
  auto ce = ops::cross_entropy_logits(logits, exp.tensor("labels"));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, 1e-4 * std::abs(ref)) << name;
  const double loss_err = std::abs(ce.loss.item() - ref) / std::abs(ref);
  autograd::backward(ce.loss);
  report(name, logits_err, loss_err, expect_grads_match(*l.store, exp, name));
}

// The MLM folder loaded as the base model: forward_output is HF's last hidden state.
void check_base(const std::string& name, const char* arch) {
  const std::string dir = fixture_dir(name);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  TaskModelRequest req;
  req.head = TaskHead::base;
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, req);
  ASSERT_EQ(std::string(l.model->architecture()), arch);
  EXPECT_EQ(l.missing_tensors.size(), 2u);  // the pooler: MLM checkpoints have none
  autograd::NoGradGuard ng;
  Tensor h = l.model->forward_output(fixture_batch(exp), {});
  const Tensor mask = exp.tensor("attention_mask");
  ASSERT_EQ(h.shape(), exp.tensor("hidden").shape());
  const double err = test::rel_error(at_mask(h, mask, 1), at_mask(exp.tensor("hidden"), mask, 1));
  EXPECT_LT(err, 1e-4) << name;
  std::printf("[parity] %s as %s: last hidden state rel %.2e\n", name.c_str(), arch, err);
}

// Save in HF format: the same tensor names as transformers' save_pretrained, every HF config
// key kept with its value, and a bit-exact reload.
void check_round_trip(const std::string& name) {
  const std::string dir = fixture_dir(name);
  LoadedTaskModel l = load_task_model(dir, Device::cpu(), DType::f32, {});
  const std::string out = test::scratch_dir("bert_hf_save_" + name);
  save_hf_params(*l.store, out, l.model->hf_config(), DType::f32, l.model->hf_skip_on_save());
  EXPECT_EQ(SafetensorsFile::open(out + "/model.safetensors").names(),
            SafetensorsFile::open(dir + "/model.safetensors").names())
      << name;
  nlohmann::json theirs = config_json::read_json_file(dir + "/config.json");
  nlohmann::json ours = config_json::read_json_file(out + "/config.json");
  for (auto it = theirs.begin(); it != theirs.end(); ++it) {
    if (it.key() == "dtype" || it.key() == "transformers_version") continue;
    ASSERT_TRUE(ours.contains(it.key())) << name << ": config key " << it.key();
    EXPECT_EQ(ours[it.key()], it.value()) << name << ": config key " << it.key();
  }
  LoadedTaskModel again = load_task_model(out, Device::cpu(), DType::f32, {});
  EXPECT_EQ(std::string(again.model->architecture()), std::string(l.model->architecture()));
  EXPECT_EQ(test::max_abs_diff(again.store->flat_master(), l.store->flat_master()), 0.0) << name;
}

}  // namespace

TEST(BertHF, BertForMaskedLMMatchesTransformers) { check_mlm("bert_mlm", "BertForMaskedLM"); }
TEST(BertHF, XLMRobertaForMaskedLMMatchesTransformers) {
  check_mlm("bert_xlmr_mlm", "XLMRobertaForMaskedLM");
}
TEST(BertHF, BertForSequenceClassificationMatchesTransformers) {
  check_classifier("bert_cls", "BertForSequenceClassification");
}
TEST(BertHF, XLMRobertaForSequenceClassificationMatchesTransformers) {
  check_classifier("bert_xlmr_cls", "XLMRobertaForSequenceClassification");
}
TEST(BertHF, BaseModelIsTheLastHiddenState) {
  check_base("bert_mlm", "BertModel");
  check_base("bert_xlmr_mlm", "XLMRobertaModel");
}
TEST(BertHF, SaveLoadKeepsHfNamesAndConfig) {
  for (const char* name : {"bert_mlm", "bert_cls", "bert_xlmr_mlm", "bert_xlmr_cls"}) check_round_trip(name);
}

TEST(BertHF, FixturePositionsAreTheOnesTheModelUses) {
  // The fixture records HF's position ids; ours come from the unpadded batch (column for BERT,
  // pad + 1 + rank for XLM-R). Check the derivation on the fixture's left-padded row.
  for (const char* name : {"bert_mlm", "bert_xlmr_mlm"}) {
    auto exp = SafetensorsFile::open(fixture_dir(name) + "/expected.safetensors");
    const bool roberta = std::string(name) == "bert_xlmr_mlm";
    RaggedBatch r = unpad(fixture_batch(exp));
    const auto pos = exp.tensor("position_ids").to_double_vector();
    for (int64_t b = 0, i = 0; b < r.batch; b++)
      for (; i < r.cu_seqlens[size_t(b + 1)]; i++) {
        const int64_t mine = roberta ? 1 + 1 + r.rank[size_t(i)] : r.column[size_t(i)];
        ASSERT_EQ(mine, int64_t(pos[size_t(b * r.seq_len + r.column[size_t(i)])])) << name << " row " << b;
      }
  }
}
