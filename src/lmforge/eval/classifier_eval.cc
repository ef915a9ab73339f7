#include "lmforge/eval/classifier_eval.h"

#include <chrono>
#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/error.h"

namespace lmf {

std::vector<std::vector<float>> classifier_logits(SequenceClassifier& model,
                                                  const std::vector<EncodedExample>& ex, int64_t batch_size,
                                                  int64_t pad_id, void (*on_batch)(int64_t, int64_t)) {
  autograd::NoGradGuard ng;
  ClassificationBatcher batcher(ex, batch_size, pad_id, /*shuffle=*/false, 0);
  const int64_t C = model.num_labels();
  std::vector<std::vector<float>> out(ex.size());
  ForwardOptions fo;  // eval mode
  for (int64_t b = 0; b < batcher.num_batches(); b++) {
    ClassificationBatch batch = batcher.batch(b);
    Tensor logits = model.classify(batch.tokens, fo);
    const int64_t B = static_cast<int64_t>(batch.indices.size());
    LMF_CHECK(logits.dim() == 2 && logits.size(0) == B && logits.size(1) == C, "classifier logits shape ",
              shape_str(logits.shape()));
    std::vector<float> v = logits.to_float_vector();
    for (int64_t r = 0; r < B; r++)
      out[size_t(batch.indices[size_t(r)])].assign(v.begin() + r * C, v.begin() + (r + 1) * C);
    if (on_batch) on_batch(b + 1, batcher.num_batches());
  }
  return out;
}

ClassifierEval evaluate_classifier(SequenceClassifier& model, const std::vector<EncodedExample>& ex,
                                   int64_t batch_size, int64_t pad_id, const std::vector<double>& w) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t C = model.num_labels();
  if (!w.empty() && static_cast<int64_t>(w.size()) != C)
    fail("[eval] ", w.size(), " class weights for ", C, " labels");
  ClassifierEval r;
  std::vector<std::vector<float>> logits = classifier_logits(model, ex, batch_size, pad_id);
  std::vector<int32_t> truth(ex.size());
  double loss_sum = 0, weight_sum = 0;
  for (size_t i = 0; i < ex.size(); i++) {
    const int32_t y = ex[i].label;
    if (y < 0 || y >= C) fail("[eval] example ", ex[i].index, " has label id ", y, " outside [0, ", C, ")");
    truth[i] = y;
    r.predictions.push_back(argmax(logits[i]));
    // -log softmax(z)_y = logsumexp(z) - z_y, in double.
    double mx = -INFINITY, s = 0;
    for (float x : logits[i]) mx = std::max(mx, double(x));
    for (float x : logits[i]) s += std::exp(double(x) - mx);
    const double wy = w.empty() ? 1.0 : w[size_t(y)];
    loss_sum += wy * (mx + std::log(s) - double(logits[i][size_t(y)]));
    weight_sum += wy;
    r.tokens += static_cast<int64_t>(ex[i].ids.size());
  }
  r.loss = weight_sum > 0 ? loss_sum / weight_sum : 0.0;
  r.report = classification_report(truth, r.predictions, C);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lmf
