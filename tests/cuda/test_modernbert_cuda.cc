// ModernBERT parity with HF transformers on CUDA: the fixtures of tests/models/test_modernbert_hf.cc
// (eager fp32, right-padded). f32 compute must match like the CPU; bf16 compute (fp32 master
// weights, fp32 residual stream and LayerNorms, bf16 matmuls / RoPE / attention) to 2e-2 for
// logits, hidden states and losses, 5e-2 for parameter gradients. Pad positions are exactly 0.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/modernbert.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"
#include "test_util.h"

using namespace lmf;

namespace {

std::vector<double> real_rows(const Tensor& padded, const Tensor& mask, double* pad_max) {
  auto v = padded.contiguous().to_double_vector();
  auto m = mask.to_double_vector();
  const size_t row = v.size() / m.size();
  std::vector<double> out;
  *pad_max = 0;
  for (size_t i = 0; i < m.size(); i++) {
    if (m[i] != 0)
      out.insert(out.end(), v.begin() + long(i * row), v.begin() + long((i + 1) * row));
    else
      for (size_t k = 0; k < row; k++) *pad_max = std::max(*pad_max, std::fabs(v[i * row + k]));
  }
  return out;
}

Tensor stream_labels(const Tensor& labels, const Tensor& mask) {
  auto l = labels.to_double_vector(), m = mask.to_double_vector();
  std::vector<int64_t> t;
  for (size_t i = 0; i < m.size(); i++)
    if (m[i] != 0) t.push_back(int64_t(l[i]));
  return Tensor::from_vector<int64_t>(t, {int64_t(t.size())}, Device::cuda(0));
}

LoadedTaskModel load(const std::string& name, DType compute, TaskHead head = TaskHead::from_config) {
  TaskModelRequest req;
  req.head = head;
  return load_task_model(test::source_path("tests/fixtures/" + name), Device::cuda(0), compute, req);
}

void expect_grads(const LoadedTaskModel& l, const SafetensorsFile& exp, const std::string& what, double tol) {
  for (const auto& spec : l.store->specs()) {
    Tensor mine = l.store->grad(spec.name);
    Tensor ref = exp.tensor("grad." + spec.name).reshape(mine.shape());
    EXPECT_LT(test::rel_error(mine, ref), tol) << what << " grad " << spec.name;
  }
}

void check_mlm(DType compute, double tol_out, double tol_grad) {
  const std::string dir = test::source_path("tests/fixtures/modernbert_mlm");
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  Tensor mask = exp.tensor("attention_mask");
  TokenBatch batch{exp.tensor("input_ids"), mask, Tensor()};
  const std::string what = std::string("mlm ") + std::string(dtype_name(compute));
  LoadedTaskModel l = load("modernbert_mlm", compute);
  auto* mlm = dynamic_cast<MaskedLM*>(l.model.get());
  ASSERT_NE(mlm, nullptr);
  double pad_max = 0;
  {
    autograd::NoGradGuard ng;
    Tensor logits = l.model->forward_output(batch, ForwardOptions());
    EXPECT_TRUE(logits.device().is_cuda());
    auto mine = real_rows(logits, mask, &pad_max);
    double ref_pad = 0;
    EXPECT_LT(test::rel_error(mine, real_rows(exp.tensor("logits"), mask, &ref_pad)), tol_out) << what << " logits";
    EXPECT_EQ(pad_max, 0.0) << what;
  }
  RaggedBatch r = unpad(batch);
  Tensor h = mlm->encode(r, ForwardOptions());
  Tensor logits = ops::cast(ops::linear(mlm->mlm_transform(h), mlm->decoder_weight(), mlm->decoder_bias()), DType::f32);
  auto ce = ops::cross_entropy_logits(logits, stream_labels(exp.tensor("labels"), mask));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, tol_out * std::fabs(ref)) << what;
  autograd::backward(ce.loss);
  expect_grads(l, exp, what, tol_grad);
  // The base model (last_hidden_state).
  LoadedTaskModel b = load("modernbert_mlm", compute, TaskHead::base);
  autograd::NoGradGuard ng;
  Tensor hidden = b.model->forward_output(batch, ForwardOptions());
  double ref_pad = 0;
  EXPECT_LT(test::rel_error(real_rows(hidden, mask, &pad_max), real_rows(exp.tensor("hidden"), mask, &ref_pad)), tol_out)
      << what << " hidden";
  EXPECT_EQ(pad_max, 0.0) << what;
}

void check_classifier(const std::string& name, DType compute, double tol_out, double tol_grad) {
  const std::string dir = test::source_path("tests/fixtures/" + name);
  auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  LoadedTaskModel l = load(name, compute);
  auto* cls = dynamic_cast<SequenceClassifier*>(l.model.get());
  ASSERT_NE(cls, nullptr);
  const std::string what = name + " " + std::string(dtype_name(compute));
  Tensor logits = cls->classify(TokenBatch{exp.tensor("input_ids"), exp.tensor("attention_mask"), Tensor()},
                                ForwardOptions());
  EXPECT_LT(test::rel_error(logits, exp.tensor("logits")), tol_out) << what << " logits";
  auto ce = ops::cross_entropy_logits(logits, exp.tensor("labels").to(Device::cuda(0)));
  const double ref = exp.tensor("loss").item();
  EXPECT_NEAR(ce.loss.item(), ref, tol_out * std::fabs(ref)) << what;
  autograd::backward(ce.loss);
  expect_grads(l, exp, what, tol_grad);
}

}  // namespace

TEST(CudaModernBertHF, F32MatchesTransformers) {
  check_mlm(DType::f32, 1e-4, 2e-4);
  check_classifier("modernbert_cls_mean", DType::f32, 1e-4, 2e-4);
  check_classifier("modernbert_cls_cls", DType::f32, 1e-4, 2e-4);
}

TEST(CudaModernBertHF, Bf16MatchesTransformers) {
  check_mlm(DType::bf16, 2e-2, 5e-2);
  check_classifier("modernbert_cls_mean", DType::bf16, 2e-2, 5e-2);
  check_classifier("modernbert_cls_cls", DType::bf16, 2e-2, 5e-2);
}
