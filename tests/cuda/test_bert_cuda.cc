// `bert` family parity with HF transformers on CUDA: the fixtures of tests/models/test_bert_hf.cc.
// f32 compute must match like the CPU (1e-4); bf16 compute (fp32 master weights and grads,
// fp32 softmax statistics) to 2e-2 for logits, loss and gradients. Dropout masks are
// counter-based, so a training-mode forward on CUDA equals the CPU one.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/bert.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
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

// Values of [B, T, X] at the real (mask == 1) positions.
std::vector<double> real_rows(const Tensor& x, const Tensor& mask) {
  const auto v = x.to_double_vector();
  const auto m = mask.to_double_vector();
  const size_t X = size_t(x.size(2));
  std::vector<double> out;
  for (size_t i = 0; i < m.size(); i++)
    if (m[i] != 0) out.insert(out.end(), v.begin() + long(i * X), v.begin() + long((i + 1) * X));
  return out;
}

void check_grads(const ParamStore& store, const SafetensorsFile& exp, const std::string& what, double tol) {
  for (const auto& spec : store.specs()) {
    // The key bias's true gradient is 0 (softmax shift invariance): only rounding noise on both sides.
    if (spec.name.ends_with("attention.self.key.bias")) continue;
    Tensor ref = exp.tensor("grad." + spec.name).reshape(spec.shape);
    EXPECT_LT(test::rel_error(store.grad(spec.name), ref), tol) << what << " grad " << spec.name;
  }
}

void check_mlm(const std::string& name, DType compute, double tol) {
  const std::string dir = fixture_dir(name);
  const std::string what = name + " " + std::string(dtype_name(compute));
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  LoadedTaskModel l = load_task_model(dir, Device::cuda(0), compute, {});
  auto* mlm = dynamic_cast<MaskedLM*>(l.model.get());
  ASSERT_NE(mlm, nullptr);
  TokenBatch batch = fixture_batch(exp);
  {
    autograd::NoGradGuard ng;
    Tensor logits = l.model->forward_output(batch, {});
    EXPECT_TRUE(logits.device().is_cuda());
    EXPECT_EQ(logits.dtype(), DType::f32);
    EXPECT_LT(test::rel_error(real_rows(logits, batch.attention_mask),
                              real_rows(exp.tensor("logits"), batch.attention_mask)),
              tol)
        << what;
  }
  RaggedBatch r = unpad(batch);
  const auto labels = exp.tensor("labels").to_double_vector();
  std::vector<int64_t> targets(size_t(r.num_tokens()));
  for (int64_t b = 0, i = 0; b < r.batch; b++)
    for (; i < r.cu_seqlens[size_t(b + 1)]; i++)
      targets[size_t(i)] = int64_t(labels[size_t(b * r.seq_len + r.column[size_t(i)])]);
  Tensor logits = ops::cast(
      ops::linear(mlm->mlm_transform(mlm->encode(r, {})), mlm->decoder_weight(), mlm->decoder_bias()),
      DType::f32);
  auto ce = ops::cross_entropy_logits(logits, to_index_tensor(targets, Device::cuda(0)));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, tol * ref) << what;
  autograd::backward(ce.loss);
  check_grads(*l.store, exp, what, tol);
}

void check_classifier(const std::string& name, DType compute, double tol) {
  const std::string dir = fixture_dir(name);
  const std::string what = name + " " + std::string(dtype_name(compute));
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  LoadedTaskModel l = load_task_model(dir, Device::cuda(0), compute, {});
  auto* cls = dynamic_cast<SequenceClassifier*>(l.model.get());
  ASSERT_NE(cls, nullptr);
  Tensor logits = cls->classify(fixture_batch(exp), {});
  EXPECT_LT(test::rel_error(logits, exp.tensor("logits")), tol) << what;
  auto ce = ops::cross_entropy_logits(logits, exp.tensor("labels").to(Device::cuda(0)));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, tol * ref) << what;
  autograd::backward(ce.loss);
  check_grads(*l.store, exp, what, tol);
}

}  // namespace

TEST(CudaBertHF, F32MatchesTransformers) {
  check_mlm("bert_mlm", DType::f32, 1e-4);
  check_mlm("bert_xlmr_mlm", DType::f32, 1e-4);
  check_classifier("bert_cls", DType::f32, 1e-4);
  check_classifier("bert_xlmr_cls", DType::f32, 1e-4);
}

TEST(CudaBertHF, Bf16MatchesTransformers) {
  check_mlm("bert_mlm", DType::bf16, 2e-2);
  check_mlm("bert_xlmr_mlm", DType::bf16, 2e-2);
  check_classifier("bert_cls", DType::bf16, 2e-2);
  check_classifier("bert_xlmr_cls", DType::bf16, 2e-2);
}

TEST(CudaBertHF, TrainingDropoutMatchesTheCpu) {
  const std::string dir = fixture_dir("bert_cls");
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  std::vector<std::vector<double>> out;
  for (Device dev : {Device::cpu(), Device::cuda(0)}) {
    LoadedTaskModel l = load_task_model(dir, dev, DType::f32, {});
    Generator gen{99, 0};
    ForwardOptions o;
    o.training = true;
    o.gen = &gen;
    autograd::NoGradGuard ng;
    out.push_back(l.model->forward_output(fixture_batch(exp), o).to_double_vector());
  }
  EXPECT_LT(test::rel_error(out[1], out[0]), 1e-4);
  EXPECT_GT(test::rel_error(out[0], exp.tensor("logits").to_double_vector()), 1e-3);  // dropout was on
}
